#pragma once

// The untyped core of actors::queue and actors::pipe: a handle to a queue
// actor and the blocking operations on it. Public templates need it; users
// never name it.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <caf/actor.hpp>

#include "actors/detail/value.hpp"

namespace actors::detail {

using duration = std::chrono::steady_clock::duration;

/// What a failed operation should be reported as, so a pipe can say
/// end-of-pipe and broken-pipe where a queue says closed.
struct error_names {
  errc when_closed_on_get = errc::closed;
  errc when_closed_on_put = errc::closed;
  errc when_empty = errc::queue_empty;
};

/// How a process uses a queue that serves as one direction of a pipe.
enum class holder_role : std::uint8_t { reader, writer };

/// A pipe end on its way to another process. The process that hands it
/// over (puts it into a queue or a pipe, passes it to a process or a pool
/// task) goes on holding it on the receiver's behalf, as Python duplicates
/// a descriptor when it pickles it: from the moment it hands it over until
/// the receiver holds it, or until the sender's process ends. `id` names
/// the hand-over among the sender's (0: none yet).
struct end_flight {
  std::uint64_t id = 0;
  caf::actor sender; // the root actor of the sending process

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 end_flight& x) {
    return f(x.id, x.sender);
  }
};

class queue_ref;

///@{
/// What serializing and deserializing a pipe end means (pipe.hpp calls
/// them from its `inspect`; the queue's reader is `inbox` if `readable`,
/// its writer `outbox` if `writable`). Serializing a handle that is not
/// closed hands it over: it gets a flight (once: a copy serialized again,
/// as an item handed out anew, keeps it). Deserializing it makes this
/// process a holder and ends the flight, unless this thread only carries
/// it (a hub landing an item in its queue: the getter will hold it).
void end_saved(const queue_ref& inbox, const queue_ref& outbox, bool readable,
               bool writable, bool closed, end_flight& flight);
void end_loaded(const queue_ref& inbox, const queue_ref& outbox,
                bool readable, bool writable, bool closed, end_flight& flight);
///@}

/// What a pipe end serialized or deserialized on this thread means (see
/// end_saved and end_loaded in queue_ref.hpp): handed over to another
/// process and received from one (the default); or, serialized, taken
/// from a queue of this process (this process holds it now); or,
/// deserialized, only carried: into a queue of this process for its
/// getter, or inside a call for the thread that will run it (take_ends).
enum class end_pass : std::uint8_t { hand_over, take, carry };

/// Sets this thread's end_pass for its life, and tells whether a pipe end
/// that is not closed was serialized or deserialized meanwhile.
class end_pass_scope {
public:
  explicit end_pass_scope(end_pass pass);
  ~end_pass_scope();
  end_pass_scope(const end_pass_scope&) = delete;
  end_pass_scope& operator=(const end_pass_scope&) = delete;
  bool saw_ends() const noexcept;

private:
  end_pass prev_;
  std::uint64_t seen_;
};

class queue_ref {
public:
  queue_ref() = default;

  /// Makes a queue owned by this process; `maxsize` 0 means unbounded.
  /// With `buffered` (unbounded queues only), a put from another process
  /// is not answered once the hub has said the queue is open (and nothing
  /// of its hub has closed since): it returns once the kernel holds the
  /// item (queue_hub.hpp).
  static queue_ref make(long maxsize, bool buffered = false);

  /// Blocks while full, at most `timeout`: `errc::queue_full` then.
  void put(value item, std::optional<duration> timeout,
           error_names names = {}) const;

  /// Blocks while empty, at most `timeout`: `errc::queue_empty` then.
  value get(std::optional<duration> timeout, error_names names = {}) const;

  /// Waits until an item is available without taking it; false on timeout,
  /// true when an item is there or the queue is closed and drained.
  bool poll(std::optional<duration> timeout) const;

  struct stats {
    std::uint64_t size = 0;    // items in the queue
    std::uint64_t maxsize = 0; // 0: unbounded
    std::uint64_t getters = 0; // callers waiting in get
    std::uint64_t putters = 0; // callers waiting in put
  };

  /// A snapshot of the queue.
  stats snapshot() const;

  void close() const;

  /// Registers this process as holding a reader or writer of the queue, or
  /// withdraws it. Once no process holds a reader (or a writer) any more,
  /// because each detached or died, the queue closes by itself: a pipe whose
  /// every descriptor of one side was closed.
  void attach(holder_role role) const;
  void detach(holder_role role) const;
  void task_done() const;
  bool join(std::optional<duration> timeout) const;

  /// The queue's actor: its identity, and the path of `wait_any`.
  const caf::actor& actor() const noexcept {
    return actor_;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, queue_ref& x) {
    return f(x.actor_, x.hub_, x.key0_, x.key1_, x.buffered_);
  }

private:
  caf::actor actor_;
  // Where other processes reach the queue (queue_hub.hpp): the owning
  // process's hub and the key it asks for.
  std::string hub_;
  std::uint64_t key0_ = 0;
  std::uint64_t key1_ = 0;
  bool buffered_ = false;
};

/// The untyped handles under the public queue and pipe types, for
/// libactors itself and its tests (the public types befriend it).
struct queue_access {
  /// The queue under a `queue<T>` or `joinable_queue<T>`.
  template <class Queue>
  static const queue_ref& ref(const Queue& q) noexcept {
    return q.ref_;
  }

  /// The queue a `connection<T>` receives from.
  template <class Connection>
  static const queue_ref& inbox(const Connection& c) noexcept {
    return c.inbox_;
  }

  /// A duplex end on `ends` (inbox, outbox), which this process holds.
  template <class Connection>
  static Connection make_end(std::pair<queue_ref, queue_ref> ends) {
    Connection c;
    c.inbox_ = std::move(ends.first);
    c.outbox_ = std::move(ends.second);
    c.readable_ = c.writable_ = true;
    return c;
  }
};

} // namespace actors::detail
