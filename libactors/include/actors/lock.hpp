#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include <pthread.h>

#include "actors/error.hpp"

namespace actors {

namespace detail {

/// Where a lock lives: the memory of locks made by process `pid` (its
/// descriptor `fd`; `arena` tells that memory from any other), slot `slot`
/// (0: an empty handle).
struct lock_handle_ref {
  std::int32_t pid = 0;     ///< the process that made the lock
  std::int32_t fd = -1;     ///< its descriptor of the locks' memory
  std::uint64_t arena = 0;  ///< a random id of that memory
  std::uint32_t slot = 0;   ///< the lock's place in it (0: none)
};

/// What `lock` and `rlock` share: a handle to a robust, process-shared
/// mutex in memory shared by the processes that use it.
class lock_handle {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// What `acquire` got: nothing (the timeout ran out), the lock, or the
  /// lock of a holder that died holding it.
  enum class acquired { no, yes, previous_owner_died };

  /// Waits for the lock at most `timeout` (forever when empty, not at all
  /// when zero or negative). The thread holding it asking again gets `no`
  /// at once with a timeout, and `errc::would_deadlock` without one.
  acquired acquire(std::optional<duration> timeout = std::nullopt);

  /// Releases it; `errc::not_owner` unless this thread holds it.
  void release();

  ///@{
  /// The standard Lockable and TimedLockable requirements, so that
  /// `std::lock_guard`, `std::unique_lock` and `std::scoped_lock` work:
  /// `try_lock` and `try_lock_for` by the thread holding the lock are false,
  /// `lock` is `errc::would_deadlock`.
  void lock() {
    remember(acquire());
  }
  bool try_lock() {
    return remember(acquire(duration::zero()));
  }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return remember(
      acquire(std::chrono::duration_cast<duration>(timeout)));
  }
  void unlock() {
    release();
  }
  ///@}

  /// Whether the last acquisition through this handle took the lock over
  /// from a holder that had died.
  bool previous_owner_died() const noexcept {
    return previous_owner_died_;
  }

protected:
  /// Records what an acquisition got; true if it got the lock.
  bool remember(acquired result) {
    previous_owner_died_ = result == acquired::previous_owner_died;
    return result != acquired::no;
  }

  /// The mutex, mapped into this process on first use.
  pthread_mutex_t* native() const;

  /// Where the lock lives.
  lock_handle_ref ref_;
  /// What the last acquisition through this handle was told.
  bool previous_owner_died_ = false;

private:
  // native(), cached for this handle and its copies (a forked copy of this
  // process keeps the shared mapping, so the address stays right there).
  mutable pthread_mutex_t* mapped_ = nullptr;
};

template <class Handle>
Handle make_lock_of_type(int type);

} // namespace detail

/// A mutual-exclusion lock shared by threads and processes: the counterpart
/// of Python's `threading.Lock` / `multiprocessing.Lock`, robust where
/// Python's is not. Also spelled `actors::lock` (C++ does not allow a class
/// named `lock` to have the member function `lock()` that `std::lock_guard`
/// needs, hence the class name `mutex`).
///
/// @code
/// void writer(actors::lock l, std::string text) {
///   std::lock_guard<actors::lock> guard{l};  // Lockable: lock_guard works
///   ...
/// }
///
/// auto l = actors::make_lock();
/// actors::process p{writer, l, "hi"};
/// @endcode
///
/// **Ownership.** The lock is a robust, process-shared mutex in memory
/// shared by the processes of this machine that use it, as Python's are; a
/// `lock` is a handle that can be copied, passed to processes and put into
/// queues. The holder is the calling thread (of whichever process); the
/// kernel wakes waiters in no guaranteed order.
///
/// **Errors.** `unlock()` by a thread that does not hold the lock is
/// `errc::not_owner`; `lock()` by the thread that holds it is
/// `errc::would_deadlock` (Python would wait forever; use `rlock` to
/// acquire again), while a call with a timeout (`try_lock`, `try_lock_for`,
/// `acquire(t)`) by that thread returns false at once, as Python's
/// `acquire(timeout=t)` returns False (after waiting); a negative timeout
/// is zero. A
/// process that receives a handle maps the lock's memory through the
/// process that made it: if that one has ended by then, the first call
/// fails with `errc::owner_unreachable` (processes that already used the
/// lock go on using it).
///
/// **Robustness.** If the holder's thread or process ends while holding the
/// lock, the lock is released and the next acquirer learns it:
/// `acquire` returns `acquired::previous_owner_died` (like `EOWNERDEAD` for a
/// robust mutex), and `previous_owner_died()` reports it after `lock()`.
/// Python's lock would stay held forever.
///
/// **Across hosts** (a pool with `pool_options::listen`). A lock made on
/// the pool's host (by the process that made the pool or any other process
/// there) is shared with every host of the pool: a task on a worker
/// process of another host uses it as a local one would, with the same
/// ownership, timeouts and errors. Each thread there that uses such locks
/// has a connection of its own to the pool's process, whose lock server
/// acquires and releases on that thread's behalf (a round trip per call).
/// A lock made by the worker process itself stays its own, used directly.
/// The holder's thread ending, its process or host dying, or its link being
/// lost (silent for `pool_options::lost_after`) counts as the holder dying:
/// the next acquirer is told `previous_owner_died`; a holder that vanished
/// while it waited is not given the lock. On that host, a call whose
/// connection is lost (or cannot be made) fails with
/// `errc::owner_unreachable` saying what happened, within the call's
/// timeout plus `lost_after` (never a hang), and the locks that thread held
/// count as released by a dead holder; its next call connects again. A
/// lock made on a host other than the pool's is usable only on its own
/// host.
class mutex : public detail::lock_handle {
public:
  /// An empty handle (every call throws `errc::invalid_argument`); exists
  /// to be assigned or deserialized. `make_lock()` creates a lock.
  mutex() = default;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, mutex& x) {
    return f(x.ref_.pid, x.ref_.fd, x.ref_.arena, x.ref_.slot);
  }

private:
  template <class Handle>
  friend Handle detail::make_lock_of_type(int);
};

/// Python's name for it.
using lock = mutex;

/// Creates a new, unlocked lock (at most 16384 per process).
mutex make_lock();

/// A re-entrant lock: Python's `threading.RLock` / `multiprocessing.RLock`.
/// The thread holding it may acquire it again; it is released when every
/// acquisition was released. Otherwise exactly `actors::lock`: shared by
/// threads and processes, Lockable, robust to a dying holder (which
/// releases all its acquisitions).
///
/// @code
/// auto r = actors::make_rlock();
/// std::lock_guard<actors::rlock> outer{r};
/// std::lock_guard<actors::rlock> inner{r};  // the same thread: fine
/// @endcode
class rlock : public detail::lock_handle {
public:
  /// An empty handle; `make_rlock()` creates one.
  rlock() = default;

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, rlock& x) {
    return f(x.ref_.pid, x.ref_.fd, x.ref_.arena, x.ref_.slot);
  }

private:
  template <class Handle>
  friend Handle detail::make_lock_of_type(int);
};

/// Creates a new, unlocked re-entrant lock (at most 16384 per process).
rlock make_rlock();

} // namespace actors
