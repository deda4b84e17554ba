#pragma once

#include <cstddef>
#include <string>
#include <system_error>
#include <vector>

namespace actors {

/// Everything that can go wrong in libactors, as one error-code enum.
///
/// Every failure a user can cause ends in an `actors::error` exception (or a
/// `std::error_code` from a non-throwing call) carrying one of these codes,
/// so callers can tell a timeout from a dead process without parsing text.
/// The codes compare equal to `std::error_code`s of the `actors` category:
/// @code
/// try { p.start(); }
/// catch (const actors::error& e) {
///   if (e.code() == actors::errc::already_started) ...
/// }
/// @endcode
enum class errc {
  /// `start()` on a process that was already started.
  already_started = 1,
  /// `join()`, `terminate()` or `kill()` on a process never started.
  not_started,
  /// A property that is fixed once started, changed after `start()`.
  already_running,
  /// A bounded wait ran out.
  ///
  /// Timeouts, for every blocking call of libactors: none (`std::nullopt`,
  /// the default) waits without bound, zero does not wait, and a negative
  /// one is zero, as in Python. (Durations in options structs are settings,
  /// not waits: each says what it accepts.)
  timeout,
  /// The OS refused what a new process, pool or actor system needs: a
  /// process (fork/exec), a thread, a file descriptor, memory.
  spawn_failed,
  /// A child could not resolve the function it was asked to run: the two
  /// processes do not run the same binary.
  function_not_found,
  /// The owning node went away or refused us; nothing more can be done.
  owner_unreachable,
  /// A connecting node did not prove the run's key.
  unauthenticated,
  /// `actors::init` was not called first in `main` of a program that starts
  /// child processes, or was called in the wrong place.
  not_initialized,
  /// An argument outside its documented range.
  invalid_argument,
  /// `put` on a full queue ran out of time (Python's `queue.Full`).
  queue_full,
  /// `get` on an empty queue ran out of time (Python's `queue.Empty`).
  queue_empty,
  /// A queue was closed: no more `put`s, and `get` once it is drained.
  closed,
  /// `task_done` called more often than items were put.
  too_many_task_done,
  /// `recv` after the other end closed and everything sent was received
  /// (Python's `EOFError`).
  end_of_pipe,
  /// `send` to an end that was closed (Python's `BrokenPipeError`).
  broken_pipe,
  /// `send` on the read end or `recv` on the write end of a one-way pipe.
  wrong_direction,
  /// A handle's element type differs from what the other side sent.
  type_mismatch,
  /// A task threw; the message names the exception type and its text.
  task_failed,
  /// The worker process running a task died more often than the task may
  /// be retried; the message names the signal or exit code.
  worker_lost,
  /// Work submitted to a pool after `close()` or `terminate()`.
  pool_not_running,
  /// `join()` on a pool that was neither closed nor terminated.
  pool_running,
  /// The pool was terminated before the task finished.
  terminated,
  /// The pool gave up: an initializer failed, or workers died more often
  /// than its restart budget allows. Every outstanding and later task fails.
  pool_broken,
  /// The task was cancelled before it finished.
  cancelled,
  /// `unlock()` of a lock this thread does not hold.
  not_owner,
  /// `lock()` of a (non-reentrant) lock by the thread that holds it, which
  /// would wait for itself forever.
  would_deadlock,
  /// An actor ended by an uncaught exception; the message names its type and
  /// text. The exit reason of its `down_msg` (actor_process.hpp).
  actor_failed,
  /// The OS process of an actor ended before its actor did; the message
  /// names the signal or the exit code (actor_process.hpp).
  process_died,
  /// The connection to an actor's process broke while the process still ran;
  /// the process is killed (actor_process.hpp).
  connection_lost,
  /// A supervisor's children failed more often than its restart intensity
  /// allows: it stopped them and ended with this reason (supervisor.hpp).
  escalated,
  /// A message type was not registered (`actors::message_types`), so it
  /// cannot cross a process boundary.
  not_registered,
  /// A service name that a living actor already holds.
  name_taken,
  /// A barrier was broken (a wait timed out, `abort`, `reset`, a party
  /// died inside a call): Python's `BrokenBarrierError`.
  broken_barrier,
  /// A message longer than the buffer given to `recv_bytes_into` (Python's
  /// `BufferTooShort`); the exception is a `buffer_too_short` holding it.
  buffer_too_short,
  /// A key a shared dict does not hold, an index outside a shared list
  /// (Python's `KeyError`, `IndexError`): manager.hpp.
  not_found,
};

/// The `std::error_category` of `errc`, named "actors".
const std::error_category& category() noexcept;

/// Makes `errc` usable wherever a `std::error_code` is expected.
std::error_code make_error_code(errc code) noexcept;

/// The exception libactors throws: a `std::system_error` whose code is an
/// `errc` and whose message says what happened and to what.
class error : public std::system_error {
public:
  /// An error of `code`; `what` says what happened and to what.
  error(errc code, const std::string& what);
};

/// What `connection::recv_bytes_into` throws when the message does not fit
/// the caller's buffer (Python's `BufferTooShort`, whose `args[0]` is the
/// message): the message has left the pipe, so it travels here, whole.
class buffer_too_short : public error {
public:
  /// The message `bytes`, for a buffer with `room` bytes after the offset.
  buffer_too_short(std::vector<char> bytes, std::size_t room);

  /// The whole message that did not fit.
  const std::vector<char>& message() const noexcept {
    return message_;
  }

private:
  std::vector<char> message_;
};

} // namespace actors

namespace std {
template <>
struct is_error_code_enum<actors::errc> : true_type {};
} // namespace std
