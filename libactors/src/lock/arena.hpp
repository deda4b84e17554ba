#pragma once

// The locks of this host: robust, process-shared pthread mutexes in memory
// shared by the processes of a run.
//
// Each process that makes locks keeps them in an arena of its own: a memfd
// mapped shared (shm/shared_memory.hpp), a header and then one slot per
// lock, never reused. A handle names the arena (the making process's pid
// and the memfd's descriptor number there, and the arena's random id) and
// the slot; a process that receives one maps the arena once through
// /proc/PID/fd/N. Locking is then a futex operation in shared memory, as
// for Python's locks, and the kernel's robust-mutex list releases a lock
// whose holder thread or process ends (EOWNERDEAD for the next acquirer,
// which is told). An error-checking mutex refuses a second acquisition by
// its holder (EDEADLK) instead of waiting forever; a recursive one counts
// them.
//
//   make_lock_slot(type)   a new mutex in this process's arena
//   make_slots(n)          n slots for a condition or a barrier (lock/waiters.hpp)
//   map_lock(ref)          the mutex of a handle, mapped here
//   take_native(m, ...)    one attempt to acquire a mapped mutex
//   lock_is_local / mark_lock_local: which arenas a worker of another
//                          host's pool uses directly (lock/remote.hpp)

#include <cstdint>
#include <cstddef>
#include <ctime>
#include <utility>

#include <pthread.h>

#include "actors/lock.hpp"

namespace actors::detail {

/// Every slot's size: a mutex, or a part of a condition's or a barrier's
/// state (lock/waiters.hpp).
constexpr std::size_t slot_size = 64;

/// Makes `m` a robust, process-shared mutex of pthread type `type`.
void init_robust_mutex(pthread_mutex_t* m, int type);

/// `n` consecutive new slots of this process's arena, zeroed: the ref of
/// the first and its address. Throws as `make_lock_slot`.
std::pair<lock_handle_ref, char*> make_slots(std::uint32_t n);

/// The first of the `n` slots that begin at `ref`, mapped here. Throws
/// as `map_lock`.
char* map_slots(const lock_handle_ref& ref, std::uint32_t n);

/// A new mutex of pthread type `type` (PTHREAD_MUTEX_ERRORCHECK or
/// PTHREAD_MUTEX_RECURSIVE) in this process's arena, made on first use;
/// its ref. Throws `errc::spawn_failed` when the arena cannot be made,
/// `errc::invalid_argument` once the arena is full.
lock_handle_ref make_lock_slot(int type);

/// The mutex of `ref`, mapped into this process on first use. Throws
/// `errc::invalid_argument` for an empty handle or a slot that was never
/// made, `errc::owner_unreachable` when the lock's memory is not (or no
/// longer) reachable from this host.
pthread_mutex_t* map_lock(const lock_handle_ref& ref);

/// One attempt to acquire `m` for the calling thread: a single try when
/// `once`, else waiting until `deadline` (CLOCK_MONOTONIC; forever when
/// null). The pthread result: 0, EOWNERDEAD (already made consistent),
/// ETIMEDOUT or EBUSY (not acquired), EDEADLK (this thread holds it), or
/// another error.
int take_native(pthread_mutex_t* m, bool once, const timespec* deadline);

/// Whether `ref` is a lock of this host that this process uses directly
/// even as a worker of another host's pool: one it made, or one whose
/// arena was marked local.
bool lock_is_local(const lock_handle_ref& ref);

/// Marks the arena `arena` (a lock_handle_ref's id) as one of this host.
void mark_lock_local(std::uint64_t arena);

} // namespace actors::detail
