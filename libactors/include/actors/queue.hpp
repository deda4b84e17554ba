#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>

#include "actors/detail/queue_ref.hpp"
#include "actors/error.hpp"

namespace actors {

/// The `maxsize` of a queue without a bound.
inline constexpr long unbounded = 0;

/// A FIFO queue shared by threads and processes: the counterpart of Python's
/// `multiprocessing.Queue`.
///
/// @code
/// void produce(actors::queue<int> q) {
///   for (int i = 0; i < 10; ++i)
///     q.put(i);
/// }
///
/// actors::queue<int> q{4};          // at most 4 items, or actors::unbounded
/// actors::process producer{produce, q};
/// producer.start();
/// for (int i = 0; i < 10; ++i)
///   std::cout << q.get() << '\n';  // blocks while empty
/// @endcode
///
/// **Ownership.** The queue lives in the process that created it, as long
/// as that process; a `queue` is a cheap handle to it that can be copied,
/// passed to processes as an argument, and put into other queues. Threads
/// of the owning process use it directly; other processes through the
/// owner's queue hub (see docs/architecture.md).
///
/// **Semantics.** Items of any serializable `T` (including other handles);
/// per-producer FIFO order; each item goes to exactly one `get`. `put` blocks
/// while the queue is full, `get` while it is empty, each at most `timeout`,
/// then they throw `errc::queue_full` / `errc::queue_empty` (Python's
/// `queue.Full` / `queue.Empty`). A timeout of zero does not wait (the
/// `_nowait` forms), nor does a negative one. Into an
/// unbounded queue, a `put` from another process returns once the kernel
/// holds the item, as Python's returns once its feeder thread has it (a
/// bounded or joinable queue answers each put).
///
/// **Nothing is lost.** An item whose `put` returned is in the queue until a
/// `get` returns it, even if its producer dies at once; `get_nowait`, `empty`
/// and `qsize` already count it. A process that dies while waiting in `get`
/// takes no item with it; one that dies while waiting in `put` put nothing.
/// An item handed to a process that dies before it has read the item goes
/// back to the front of the queue; one that a `get` returned is never handed
/// out again. If the process owning the queue dies, every call on it fails
/// with `errc::owner_unreachable` instead of blocking.
///
/// **Closing.** After `close()`, `put` fails with `errc::closed`, and `get`
/// fails with `errc::closed` once the queue is drained (Python would block).
/// A put that begins after `close()` returned fails, from any process of the
/// queue's host, also one that did not exist yet at the close; a put into an
/// unbounded queue that races the close may land (it returned: it is in the
/// queue, for whoever drains it). From another host, a producer is refused
/// once the close has reached it over its stream (its first put into a
/// queue is answered).
///
/// `qsize`, `empty` and `full` are snapshots, as in Python.
///
/// **Across hosts** (a pool with `pool_options::listen`). A queue made by
/// the pool's own process (and a pipe, which is two of them) is shared with
/// the worker processes of other hosts: each of their threads reaches it
/// over a TCP stream to that process, authenticated with the pool's key,
/// with the same calls, timeouts and errors. An item handed to a getter on
/// another host that dies, or whose link is lost, before the item's receipt
/// arrived goes back to the queue: across hosts, delivery is at least once
/// (within a host, exactly once). A call on another host whose stream is
/// lost fails with `errc::owner_unreachable`. A queue made in any other
/// process is reachable from its own host only.
template <class T>
class queue {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// A queue with room for `maxsize` items; `unbounded` (0) means no bound,
  /// negative is `errc::invalid_argument`.
  explicit queue(long maxsize)
    : ref_(detail::queue_ref::make(maxsize, /*buffered=*/true)) {
    // nop
  }

  /// An empty handle, refers to no queue (every call throws
  /// `errc::invalid_argument`); it exists to be assigned or deserialized.
  queue() = default;

  /// Appends `item`, waiting while the queue is full (at most `timeout`).
  void put(T item, std::optional<duration> timeout = std::nullopt) const {
    ref_.put(detail::value::make(std::move(item)), timeout);
  }

  /// Removes and returns the first item, waiting while the queue is empty
  /// (at most `timeout`).
  T get(std::optional<duration> timeout = std::nullopt) const {
    return ref_.get(timeout).template take<T>();
  }

  ///@{
  /// `put` / `get` without waiting: `errc::queue_full` / `errc::queue_empty`.
  void put_nowait(T item) const {
    put(std::move(item), duration::zero());
  }
  T get_nowait() const {
    return get(duration::zero());
  }
  ///@}

  ///@{
  /// Non-throwing forms for the full and empty cases (other failures still
  /// throw): false / nothing instead of `queue_full` / `queue_empty`.
  bool try_put(T item, duration timeout = duration::zero()) const {
    try {
      put(std::move(item), timeout);
      return true;
    } catch (const error& e) {
      if (e.code() == errc::queue_full)
        return false;
      throw;
    }
  }
  std::optional<T> try_get(duration timeout = duration::zero()) const {
    try {
      return get(timeout);
    } catch (const error& e) {
      if (e.code() == errc::queue_empty)
        return std::nullopt;
      throw;
    }
  }
  ///@}

  ///@{
  /// The number of items, whether there are none, whether the queue is at
  /// its bound: right now (may change at once).
  std::size_t qsize() const {
    return static_cast<std::size_t>(ref_.snapshot().size);
  }
  bool empty() const {
    return qsize() == 0;
  }
  bool full() const {
    auto s = ref_.snapshot();
    return s.maxsize != 0 && s.size >= s.maxsize;
  }
  ///@}

  /// No more items may be put; see **Closing** above.
  void close() const {
    ref_.close();
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, queue& x) {
    return f(x.ref_);
  }

protected:
  friend struct detail::queue_access;

  /// A queue whose every put is answered (`joinable_queue`: `join` must
  /// count each item the moment its put returns).
  queue(long maxsize, bool buffered)
    : ref_(detail::queue_ref::make(maxsize, buffered)) {
    // nop
  }

  /// The queue and the blocking calls on it.
  detail::queue_ref ref_;
};

/// A queue whose consumers report each item as processed: the counterpart of
/// Python's `multiprocessing.JoinableQueue`. `join` returns once every item
/// ever put has been matched by a `task_done`.
template <class T>
class joinable_queue : public queue<T> {
public:
  using typename queue<T>::duration;

  /// A joinable queue with room for `maxsize` items (see `queue`).
  explicit joinable_queue(long maxsize) : queue<T>(maxsize, false) {
    // nop
  }

  joinable_queue() = default;

  /// Marks one item as processed; one call too many is
  /// `errc::too_many_task_done`.
  void task_done() const {
    this->ref_.task_done();
  }

  /// Waits until every item put has been marked done; false on timeout.
  bool join(std::optional<duration> timeout = std::nullopt) const {
    return this->ref_.join(timeout);
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 joinable_queue& x) {
    return f(x.ref_);
  }
};

/// Python's `SimpleQueue`: an unbounded queue (`simple_queue<T> q{unbounded}`).
template <class T>
using simple_queue = queue<T>;

} // namespace actors
