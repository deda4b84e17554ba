#pragma once

#include <chrono>
#include <optional>

#include "actors/detail/queue_ref.hpp"
#include "actors/error.hpp"

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
/// back.
class semaphore {
public:
  /// The type of timeouts: any `std::chrono` duration converts to it.
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

  /// Returns a token.
  void release() const {
    ref_.put(detail::value::make(true), std::nullopt);
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, semaphore& x) {
    return f(x.ref_);
  }

private:
  friend semaphore make_semaphore(long value);
  detail::queue_ref ref_;
};

/// A semaphore with `value` tokens (negative: `errc::invalid_argument`).
inline semaphore make_semaphore(long value) {
  if (value < 0)
    throw error(errc::invalid_argument, "a semaphore's value must not be "
                                        "negative");
  semaphore result;
  result.ref_ = detail::queue_ref::make(0);
  for (long i = 0; i < value; ++i)
    result.release();
  return result;
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
  /// The type of timeouts: any `std::chrono` duration converts to it.
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

} // namespace actors
