#pragma once

// Locks of another host, from the client's side. In a worker process of
// another host (runtime::owner_elsewhere()), a lock this process did not
// make is acquired and released through the lock server of the pool's
// process (lock/lock_server.hpp), over one connection per thread; a lock
// the server does not find on its host is one of this host, used here
// (lock/arena.hpp) from then on, as any other.
//
//   acquire_remote(ref, timeout)  what the pool's host answered, or none:
//                                 acquire it here
//   release_remote(ref)           true when released there, false: here

#include <optional>

#include "actors/lock.hpp"

namespace actors::detail {

/// Acquires the lock of `ref` through the pool's host when this process
/// is a worker of another host's pool and the lock is not one of this
/// host; none when it is to be acquired here. Throws
/// `errc::owner_unreachable` when the pool's host cannot be reached, its
/// answer does not come or the lock is on neither host, and the error the
/// server answered otherwise.
std::optional<lock_handle::acquired>
acquire_remote(const lock_handle_ref& ref,
               std::optional<lock_handle::duration> timeout);

/// Releases the lock of `ref` through the pool's host, as
/// `acquire_remote`; false when it is to be released here.
bool release_remote(const lock_handle_ref& ref);

} // namespace actors::detail
