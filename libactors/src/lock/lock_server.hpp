#pragma once

// Locks across hosts. A lock lives in the memory of the host whose process
// made it; a worker process of another host reaches a lock of the pool's
// host through the lock server of the pool's process, over a connection of
// its own per thread (purpose::lock, watched like every link of the pool).
//
// One connection stands for one thread of the other host, and one thread
// of the server serves it: that thread acquires and releases the mutexes
// on behalf of its client thread, so that holding, an rlock's recursion
// and would_deadlock are the mutex's own. When the connection ends (the
// client thread or process ended, its host died, the link was lost) the
// serving thread ends too, holding whatever its client held: the robust
// mutex then tells the next acquirer that the previous owner died, as it
// would if the client had run here and died.
//
// Frames (channel.hpp), the client asks and the server answers each:
//   acquire_frame  pid fd arena slot (the lock_handle_ref), timeout_ns
//                  (i64: -1 forever, 0 a single try)
//   release_frame  pid fd arena slot
//   answer_frame   lock_answer (below): ok, code (an errc when not
//                  ok), what, outcome (u8)

#include <chrono>
#include <cstdint>
#include <functional>

#include "actors/detail/status.hpp"
#include "actors/lock.hpp"

namespace actors::detail {

namespace lock_protocol {

enum frame_kind : std::uint8_t {
  acquire_frame = 1,
  release_frame = 2,
  answer_frame = 3,
};

enum outcome : std::uint8_t {
  not_acquired = 0,        ///< the timeout ran out
  acquired = 1,            ///< the client's thread holds the lock now
  owner_died = 2,          ///< acquired, from a holder that died
  released = 3,            ///< the release is done
  not_on_this_host = 5,    ///< the lock's memory is not on the server's host
                           ///< (`what` says why)
};

} // namespace lock_protocol

/// The body of an answer_frame: an error, or what the request came to.
struct lock_answer : status {
  std::uint8_t outcome = lock_protocol::not_acquired; // when ok
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lock_answer& x) {
  return f(static_cast<status&>(x), x.outcome);
}

/// Serves the lock operations of one thread of another host on `fd`, an
/// authenticated connection of purpose::lock whose link the caller watches
/// (watch_link), on a thread of its own; takes ownership of `fd`.
void serve_lock_stream(int fd);

/// What the lock server of this process did, for tests.
struct lock_server_stats {
  std::uint64_t connections = 0; ///< connections served (ever)
  std::uint64_t requests = 0;    ///< acquire and release requests answered
  std::uint64_t active = 0;      ///< connections being served now
  std::uint64_t waiting = 0;     ///< acquisitions waiting for their lock now
};

lock_server_stats lock_server_statistics();

/// Waits until `pred(statistics)` holds; false if `timeout` ran out first.
bool lock_server_await(const std::function<bool(const lock_server_stats&)>& pred,
                       std::chrono::milliseconds timeout);

/// Cuts every connection being served (both directions), as a lost link
/// would: for tests of what clients see.
void lock_server_cut_all();

} // namespace actors::detail
