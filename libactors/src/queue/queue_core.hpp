#pragma once

// The state of one queue, in the process that owns it: the items, the
// callers waiting in each line, and the rules that move items between them.
// Every operation locks the queue's mutex; callers of this process wait on
// it directly (no message, no thread hand-off), callers of other processes
// through the hub (queue_hub.hpp), and wait_any through the queue's actor.
//
// A caller that cannot be answered at once is parked with an `answer`
// function, called (under the lock) exactly once: with the outcome, or when
// its deadline passes, or never if it is cancelled first. An item handed to
// an answer that returns false (its receiver is gone) goes back to the front.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <caf/actor_addr.hpp>

#include "actors/detail/queue_ref.hpp"
#include "actors/detail/status.hpp"
#include "actors/detail/value.hpp"
#include "actors/error.hpp"
#include "base/relax.hpp"

namespace actors::detail {

/// The answer to one queue operation (named apart from the pool's outcome).
struct q_outcome : status {
  value item;        // get
  bool flag = false; // poll: ready

  static q_outcome fail(errc code, std::string what) {
    q_outcome result;
    static_cast<status&>(result) = status::failure(code, std::move(what));
    return result;
  }
};

/// Makes this process the holder of the pipe ends in `item`, which a
/// thread of this process takes from one of its queues (no-op unless the
/// item carries ends), as take_ends(closure&) does.
void take_ends(value& item);

/// How long a waiting thread looks for its answer before it sleeps, and
/// the hub's thread for more requests (a wake-up costs tens of
/// microseconds across cores): 20 us unless ACTORS_QUEUE_SPIN_US says
/// otherwise (0: never spin).
std::chrono::nanoseconds spin_time() noexcept;


class queue_core {
public:
  /// Receives the q_outcome of a parked operation; false if the receiver is
  /// gone (an item it was given then goes back to the queue).
  using answer_fn = std::function<bool(q_outcome&&)>;

  /// Answered at once, or parked under this serial (for expire/cancel).
  using result = std::variant<q_outcome, std::uint64_t>;

  /// A queue of at most `maxsize` items (0: unbounded). A thread of this
  /// process that waits on it calls `idle` while it spins (the hub's
  /// poll_once); `idle` says whether it did anything.
  queue_core(std::size_t maxsize, std::function<bool()> idle)
    : maxsize_(maxsize), idle_(std::move(idle)) {
    // nop
  }

  ///@{
  /// The operations. With `wait` false, one that would block fails at once
  /// (full, empty, not ready, unfinished); with `wait`, it is parked.
  result put(value item, bool wait, answer_fn answer);
  result get(bool wait, answer_fn answer);
  result poll(bool wait, answer_fn answer);
  result join(bool wait, answer_fn answer);
  ///@}

  /// Puts whose callers do not wait for the answer: they always land, even
  /// on a closed queue (its caller believes it landed, so it must be there
  /// for whoever drains the queue). Returns false if the queue is closed, so
  /// the caller can tell its sender.
  bool put_buffered(std::vector<value>& items);

  q_outcome task_done();
  void close();
  queue_ref::stats snapshot();

  /// The deadline of parked operation `serial` passed: answers it with the
  /// timeout q_outcome of its line, if it is still parked.
  void expire(std::uint64_t serial);

  /// Forgets parked operation `serial` without answering it.
  void cancel(std::uint64_t serial);

  /// An item handed out that its receiver never took: back to the front.
  void requeue(value item);

  ///@{
  /// Processes holding a pipe end that reads or writes this queue, and the
  /// ends on their way to another process (end_flight: `sender`, `id`).
  /// When the last reader or the last writer is gone, and none is on its
  /// way, the queue closes. `attach` with a flight ends it (the receiver
  /// holds the end now); it may come before the flight's `depart`, from
  /// another process: the two then cancel out. `attach` says whether
  /// `holder` is new.
  bool attach(holder_role role, const caf::actor_addr& holder,
              const caf::actor_addr& sender = {}, std::uint64_t id = 0);
  void depart(holder_role role, const caf::actor_addr& sender,
              std::uint64_t id);
  void detach(holder_role role, const caf::actor_addr& holder);
  /// The holder's process ended: it holds nothing any more, and the ends it
  /// sent that have not arrived are no longer held on their way.
  void holder_gone(const caf::actor_addr& holder);
  /// The process that `sender`'s flight `id` went to ended before it held
  /// the end (it had not attached): the flight is over. Nothing if it had.
  void lost_in_flight(holder_role role, const caf::actor_addr& sender,
                      std::uint64_t id);
  ///@}

  /// Runs `fn` (without the queue's lock) whenever the queue closes, once:
  /// the hub tells its clients (set by the hub before the queue is used).
  void on_close(std::function<void()> fn) {
    on_close_ = std::move(fn);
  }

  ///@{
  /// The blocking forms for a thread of this process: park, then wait on
  /// the queue's mutex at most `timeout` (nothing: forever).
  using duration = std::chrono::steady_clock::duration;
  q_outcome put_blocking(value item, std::optional<duration> timeout);
  q_outcome get_blocking(std::optional<duration> timeout);
  q_outcome poll_blocking(std::optional<duration> timeout);
  q_outcome join_blocking(std::optional<duration> timeout);
  ///@}

private:
  struct waiter {
    std::uint64_t serial;
    answer_fn answer;
    value item; // putters: what they put
  };

  // Parks `answer` in `line` under a new serial.
  std::uint64_t park(std::deque<waiter>& line, answer_fn answer,
                     value item = {});

  // Moves items to parked getters and parked puts into free room; answers
  // pollers and, once closed, every parked get and put.
  void settle();

  bool has_room() const noexcept {
    return maxsize_ == 0 || items_.size() < maxsize_;
  }

  // Closes the queue (mtx_ held); true if it was open.
  bool close_locked();

  // Tells on_close_ once close_locked() said so (mtx_ not held).
  void closed_now(bool yes) {
    if (yes && on_close_)
      on_close_();
  }

  // The holders of one side of a pipe.
  struct holders {
    using flight = std::pair<caf::actor_addr, std::uint64_t>;
    std::set<caf::actor_addr> processes;
    std::set<flight> flights;
    std::set<flight> attached_early; // attached before their departure
    bool none() const noexcept {
      return processes.empty() && flights.empty();
    }
  };

  holders& side(holder_role role) noexcept {
    return role == holder_role::reader ? readers_ : writers_;
  }

  template <class Op>
  q_outcome wait_blocking(Op op, std::optional<duration> timeout);

  std::mutex mtx_;
  const std::size_t maxsize_;
  const std::function<bool()> idle_;
  std::deque<value> items_;
  std::deque<waiter> getters_;
  std::deque<waiter> putters_;
  std::deque<waiter> pollers_;
  std::deque<waiter> joiners_;
  bool closed_ = false;
  std::uint64_t unfinished_ = 0;
  std::uint64_t next_serial_ = 1;
  holders readers_;
  holders writers_;
  std::function<void()> on_close_;
};

} // namespace actors::detail
