#pragma once

// The synchronization primitives besides the locks (actors/lock.hpp):
// semaphore, bounded_semaphore, event, condition, barrier.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "actors/detail/code_ref.hpp"
#include "actors/detail/queue_ref.hpp"
#include "actors/error.hpp"
#include "actors/lock.hpp"

namespace actors {

/// A counting semaphore shared by threads and processes: Python's
/// `threading.Semaphore` / `multiprocessing.Semaphore`.
///
/// @code
/// auto slots = actors::make_semaphore(2);  // at most two at a time
/// if (slots.acquire(std::chrono::seconds{1})) {
///   ...
///   slots.release();
/// }
/// @endcode
///
/// It is a queue of tokens underneath (see `actors::queue`): waiters are
/// served in FIFO order, every wait can be bounded, a waiter that dies takes
/// nothing with it, and if the owning process dies, calls fail with
/// `errc::owner_unreachable`. As in Python, `release` does not check that the
/// caller acquired; a token taken by a process that then dies is not given
/// back. A `bounded_semaphore` refuses a release beyond its initial value.
class semaphore {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// An empty handle; `make_semaphore` creates one.
  semaphore() = default;

  /// Takes a token, waiting at most `timeout`; false if none came.
  bool acquire(std::optional<duration> timeout = std::nullopt) const {
    try {
      ref_.get(timeout);
      return true;
    } catch (const error& e) {
      if (e.code() == errc::queue_empty)
        return false;
      throw;
    }
  }

  /// Returns a token. A `bounded_semaphore` that holds its initial value
  /// already throws `errc::invalid_argument` (Python's `ValueError`) and
  /// changes nothing.
  void release() const {
    try {
      ref_.put(detail::value::make(true), duration::zero());
    } catch (const error& e) {
      if (e.code() != errc::queue_full) // only a bounded one fills
        throw;
      throw error(errc::invalid_argument,
                  "a bounded semaphore released more often than acquired");
    }
  }

  /// How many tokens it holds right now (Python's `get_value()`).
  long value() const {
    return static_cast<long>(ref_.snapshot().size);
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, semaphore& x) {
    return f(x.ref_);
  }

protected:
  /// A semaphore of `value` tokens that holds at most `bound` (0: no
  /// bound).
  semaphore(long value, long bound) {
    if (value < 0)
      throw error(errc::invalid_argument, "a semaphore's value must not be "
                                          "negative");
    ref_ = detail::queue_ref::make(bound);
    for (long i = 0; i < value; ++i)
      release();
  }

private:
  friend semaphore make_semaphore(long value);
  detail::queue_ref ref_;
};

/// A semaphore with `value` tokens (negative: `errc::invalid_argument`).
inline semaphore make_semaphore(long value) {
  return semaphore{value, 0};
}

/// A semaphore that never holds more than its initial value: Python's
/// `BoundedSemaphore`. Otherwise a `semaphore`, and usable as one.
///
/// @code
/// auto slots = actors::make_bounded_semaphore(2);
/// slots.release();  // errc::invalid_argument: nobody acquired
/// @endcode
class bounded_semaphore : public semaphore {
public:
  /// An empty handle; `make_bounded_semaphore` creates one.
  bounded_semaphore() = default;

private:
  friend bounded_semaphore make_bounded_semaphore(long value);
  explicit bounded_semaphore(long value) : semaphore(value, value) {
    // nop
  }
};

/// A bounded semaphore with `value` tokens (zero or negative:
/// `errc::invalid_argument`: it could never be acquired).
inline bounded_semaphore make_bounded_semaphore(long value) {
  if (value <= 0)
    throw error(errc::invalid_argument, "a bounded semaphore's value must be "
                                        "positive");
  return bounded_semaphore{value};
}

/// A flag that threads and processes can wait for: Python's
/// `threading.Event` / `multiprocessing.Event`.
///
/// @code
/// auto ready = actors::make_event();
/// actors::process p{worker, ready};   // worker calls ready.set()
/// ready.wait(std::chrono::seconds{5});
/// @endcode
///
/// A queue of at most one token underneath: `set` puts it, `clear` takes
/// it, `wait` polls for it without taking it.
class event {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// An empty handle; `make_event` creates one.
  event() = default;

  /// Sets the flag: `wait` returns true until `clear`. Setting it again
  /// does nothing.
  void set() const {
    try {
      ref_.put(detail::value::make(true), duration::zero());
    } catch (const error& e) {
      if (e.code() != errc::queue_full) // already set
        throw;
    }
  }

  /// Clears the flag; clearing it again does nothing.
  void clear() const {
    try {
      ref_.get(duration::zero());
    } catch (const error& e) {
      if (e.code() != errc::queue_empty) // already clear
        throw;
    }
  }

  /// Whether the flag is set right now.
  bool is_set() const {
    return ref_.snapshot().size > 0;
  }

  /// Waits until the flag is set, at most `timeout`; returns whether it is.
  bool wait(std::optional<duration> timeout = std::nullopt) const {
    return ref_.poll(timeout);
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, event& x) {
    return f(x.ref_);
  }

private:
  friend event make_event();
  detail::queue_ref ref_;
};

/// A new event, not set.
inline event make_event() {
  event result;
  result.ref_ = detail::queue_ref::make(1);
  return result;
}

/// A condition variable shared by threads and processes: Python's
/// `threading.Condition` / `multiprocessing.Condition`.
///
/// @code
/// auto cond = actors::make_condition();      // with a new rlock
/// // a consumer (any thread of any process of this host):
/// std::unique_lock<actors::condition> guard{cond};
/// cond.wait_for([&] { return ready(); }, std::chrono::seconds{5});
/// // a producer:
/// std::lock_guard<actors::condition> guard{cond};
/// make_ready();
/// cond.notify();
/// @endcode
///
/// **The lock.** A condition is its lock and a list of waiters: it is
/// Lockable as the lock is (`lock`, `unlock`, `try_lock`, `acquire`,
/// `release`), and `make_condition(l)` shares the lock `l` with whoever
/// holds `l`. Without one, it makes an `rlock`, as Python does. `wait` and
/// `notify` by a thread that does not hold the lock throw
/// `errc::not_owner` (Python's `RuntimeError`); `wait` releases the lock
/// however often this thread acquired it (an rlock) and takes it back as
/// often before it returns.
///
/// **Waking.** `notify(n)` wakes the `n` threads that have waited longest,
/// exactly those, and no wait returns without a notification or its
/// timeout (no spurious wake-ups). A waiter whose thread or process died is
/// passed over: it never swallows a notification. At most `max_waiters`
/// threads (given when made, 64 by default) wait at once; one more throws
/// `errc::invalid_argument`.
///
/// **Where.** A condition is used on the host where it was made (its list
/// of waiters is memory shared there); on another host, calls throw
/// `errc::owner_unreachable`. If the thread holding the lock dies, the next
/// one to take it, a waiter returning included, is told as for a lock
/// (`previous_owner_died()`).
class condition : public detail::lock_handle {
public:
  /// An empty handle (every call throws `errc::invalid_argument`);
  /// `make_condition` creates one.
  condition() = default;

  /// Releases the lock, waits for a `notify` or `timeout`, takes the lock
  /// back; true when notified (Python's return value: false on timeout).
  bool wait(std::optional<duration> timeout = std::nullopt);

  /// Waits until `pred()` is true, at most `timeout` in all; returns the
  /// last value of `pred()` (Python's `wait_for`). Called with the lock
  /// held, as `pred` is.
  template <class Predicate>
  auto wait_for(Predicate pred, std::optional<duration> timeout = std::nullopt)
    -> decltype(pred()) {
    auto result = pred();
    if (result)
      return result;
    auto start = std::chrono::steady_clock::now();
    while (!result) {
      std::optional<duration> left;
      if (timeout) {
        left = *timeout - (std::chrono::steady_clock::now() - start);
        if (*left <= duration::zero())
          break;
      }
      wait(left);
      result = pred();
    }
    return result;
  }

  /// Wakes the `n` threads that have waited longest (fewer if fewer wait).
  void notify(int n = 1);

  /// Wakes every waiting thread.
  void notify_all();

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, condition& x) {
    return f(x.ref_.pid, x.ref_.fd, x.ref_.arena, x.ref_.slot, x.recursive_,
             x.waiters_.pid, x.waiters_.fd, x.waiters_.arena,
             x.waiters_.slot);
  }

private:
  friend condition make_condition(const detail::lock_handle& lock,
                                  bool recursive, std::uint32_t max_waiters);

  // The list of waiters, mapped here on first use.
  char* waiters() const;

  bool recursive_ = false;
  detail::lock_handle_ref waiters_;
  mutable char* waiters_mapped_ = nullptr;
};

/// How many threads may wait on one condition at once, by default.
constexpr std::uint32_t default_max_waiters = 64;

/// A condition with a new rlock (Python's default).
condition make_condition(std::uint32_t max_waiters = default_max_waiters);

/// A condition on the lock `l`.
condition make_condition(const lock& l,
                         std::uint32_t max_waiters = default_max_waiters);

/// A condition on the re-entrant lock `l`.
condition make_condition(const rlock& l,
                         std::uint32_t max_waiters = default_max_waiters);

/// A meeting point for a fixed number of threads and processes: Python's
/// `threading.Barrier` / `multiprocessing.Barrier`.
///
/// @code
/// auto b = actors::make_barrier(3);
/// // in each of three processes:
/// auto index = b.wait(std::chrono::seconds{10});  // 0, 1, 2 by arrival
/// @endcode
///
/// `wait` returns once `parties()` threads have called it, each with its
/// arrival index (0 for the first, `parties() - 1` for the last), and the
/// barrier is ready for the next round. A wait that times out breaks the
/// barrier: it and every other waiter, and each later `wait` until
/// `reset()`, throw `errc::broken_barrier` (Python's `BrokenBarrierError`),
/// as after `abort()`. `reset()` breaks the round under way (its waiters
/// throw) and makes the barrier whole again.
///
/// **Deaths.** A party that dies while it waits has arrived: the round
/// completes without it having to come back, and the next round is not
/// held up by it. If a process dies inside a call (holding the barrier's
/// own lock, for microseconds), the barrier is broken and its waiters are
/// told so. A party that never arrives holds the others until their
/// timeout, as in Python: give one.
///
/// **Action.** A barrier made with an `action` (a plain function or a
/// lambda without captures) runs it in the last party to arrive, before
/// any party leaves, once per round, in whichever process that party runs
/// (all run this binary). If it throws, the barrier breaks: that party's
/// `wait` throws the action's exception, the others' `errc::broken_barrier`.
/// A barrier is used on the host where it was made (`errc::owner_unreachable`
/// elsewhere).
class barrier {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// An empty handle; `make_barrier` creates one.
  barrier() = default;

  /// Waits for the others, at most `timeout` (none: the barrier's default
  /// timeout); the arrival index. Throws `errc::broken_barrier`.
  std::size_t wait(std::optional<duration> timeout = std::nullopt) const;

  /// Breaks the round under way, if any, then makes the barrier whole.
  void reset() const;

  /// Breaks the barrier for good (until `reset`): waiters throw.
  void abort() const;

  /// The number of threads the barrier waits for.
  std::size_t parties() const;

  /// The number of threads waiting in the round under way.
  std::size_t n_waiting() const;

  /// Whether it is broken.
  bool broken() const;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, barrier& x) {
    return f(x.ref_.pid, x.ref_.fd, x.ref_.arena, x.ref_.slot, x.action_);
  }

private:
  friend barrier make_barrier(std::size_t, void (*)(),
                              std::optional<duration>);

  // The barrier's memory, mapped here on first use.
  char* memory() const;

  detail::lock_handle_ref ref_;
  mutable char* mapped_ = nullptr;
  // The action, as every process of this binary finds it; offset 0: none.
  detail::code_ref action_;
};

/// A barrier for `parties` threads (at least 1, at most 4096:
/// `errc::invalid_argument` otherwise), whose `wait` is bounded by
/// `timeout` when it is given none.
barrier make_barrier(std::size_t parties,
                     std::optional<barrier::duration> timeout = std::nullopt);

/// A barrier as above whose last party to arrive in each round runs
/// `action` before the round is released (Python's `action`).
barrier make_barrier(std::size_t parties, void (*action)(),
                     std::optional<barrier::duration> timeout = std::nullopt);

} // namespace actors
