// Locks (actors/lock.hpp): a handle's operations. The mutexes of this host
// are in lock/arena.hpp; those of another host, used by a worker of that
// host's pool, go through lock/remote.hpp.

#include "actors/lock.hpp"

#include "base/deadline.hpp"
#include "lock/arena.hpp"
#include "lock/remote.hpp"

#include <cerrno>
#include <cstring>
#include <string>

namespace actors {

namespace detail {

template <class Handle>
Handle make_lock_of_type(int type) {
  Handle result;
  result.ref_ = make_lock_slot(type);
  return result;
}

pthread_mutex_t* lock_handle::native() const {
  // Threads may share one handle: the cache is read and written atomically.
  if (auto* m = __atomic_load_n(&mapped_, __ATOMIC_ACQUIRE))
    return m;
  auto* m = map_lock(ref_);
  __atomic_store_n(&mapped_, m, __ATOMIC_RELEASE);
  return m;
}

lock_handle::acquired lock_handle::acquire(std::optional<duration> timeout) {
  if (timeout && *timeout < duration::zero())
    timeout = duration::zero(); // as Python: a negative timeout is zero
  if (ref_.slot == 0)
    throw error(errc::invalid_argument, "the lock handle is empty");
  if (auto result = acquire_remote(ref_, timeout))
    return *result;
  auto* m = native();
  bool once = timeout && *timeout == duration::zero();
  // A bound of decades is none (and the clock's sum cannot overflow).
  bool bounded = timeout && !once
                 && *timeout < std::chrono::hours{24 * 365 * 30};
  timespec until;
  if (bounded)
    until = deadline{timeout}.monotonic();
  switch (auto rc = take_native(m, once, bounded ? &until : nullptr)) {
    case 0:
      return acquired::yes;
    case EOWNERDEAD:
      return acquired::previous_owner_died;
    case ETIMEDOUT:
    case EBUSY:
      return acquired::no;
    case EDEADLK:
      // Held by this thread: a bounded call cannot get it, an unbounded
      // one would wait for itself forever.
      if (timeout)
        return acquired::no;
      throw error(errc::would_deadlock,
                  "this thread holds the lock already (use an rlock to "
                  "acquire it again)");
    default:
      throw error(errc::invalid_argument,
                  std::string{"the lock cannot be acquired: "}
                    + std::strerror(rc));
  }
}

void lock_handle::release() {
  if (ref_.slot == 0)
    throw error(errc::invalid_argument, "the lock handle is empty");
  if (release_remote(ref_))
    return;
  if (pthread_mutex_unlock(native()) != 0)
    throw error(errc::not_owner, "this thread does not hold the lock");
}

} // namespace detail

mutex make_lock() {
  return detail::make_lock_of_type<mutex>(PTHREAD_MUTEX_ERRORCHECK);
}

rlock make_rlock() {
  return detail::make_lock_of_type<rlock>(PTHREAD_MUTEX_RECURSIVE);
}

} // namespace actors
