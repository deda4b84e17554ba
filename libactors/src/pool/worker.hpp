#pragma once

// The worker side of a pool: what runs in a worker process, whether the
// pool started it on this machine or it joined from another host.
//
// A local worker gets its channel (channel.hpp) from the pool at spawn. A
// worker host (actors::init with --actors-worker HOST:PORT) starts worker
// processes of its own, each of which connects to the pool's listener over
// TCP, proves the run's key (auth.hpp, purpose::worker) and then speaks the
// same frames, after a greeting:
//   worker -> pool   hello(program id, host name, pid)
//   pool -> worker   welcome(initializer, lost_after ms) | refused(why)
//                    | closed (the pool is stopping: the worker just ends)
// Once welcomed, a remote worker also sends an empty `alive` frame every
// lost_after/4 from a thread of its own, while it runs a task too; the pool
// counts a worker from which nothing at all arrived for lost_after as lost
// (its host is stopped or hung, or the link is cut: its kernel may still
// answer TCP's keepalives), tells it to retire (read if it ever resumes)
// and drops its connection.
// The program id (the executable's GNU build id) must be the pool's own:
// tasks travel as code addresses of that program (closure.hpp).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "actors/detail/closure.hpp"
#include "actors/detail/pool_core.hpp"
#include "wire/channel.hpp"

namespace actors::detail {

/// The kinds of frames on a worker's channel.
enum : std::uint8_t {
  task_frame = 1,    ///< pool -> worker: id, closure
  outcome_frame,     ///< worker -> pool: outcome, running time in us
  init_failed_frame, ///< worker -> pool: what the initializer threw
  hello_frame,       ///< remote worker -> pool: program id, host, pid
  welcome_frame,     ///< pool -> remote worker: initializer, lost_after ms
  refused_frame,     ///< pool -> remote worker: why it may not join
  retire_frame,      ///< pool -> remote worker: make way for a fresh one
  closed_frame,      ///< pool -> remote worker: the pool takes no workers
  alive_frame,       ///< remote worker -> pool: nothing; it is alive
};

/// How a worker's service ended.
enum class worker_end {
  released, ///< the channel ended: the pool needs this worker no more
  retired,  ///< the pool asked for a fresh process in its place
  init_failed,
};

/// Runs the initializer, then the tasks the channel brings, in order, until
/// it ends. While a task runs, `*running` (if given) is true. Once
/// `*dropped` (if given) is true, the pool has dropped the connection
/// (shut its side): the tasks still read are skipped, as the pool gave
/// them to other workers.
worker_end serve_tasks(channel& ch, const closure& initializer,
                       std::atomic<bool>* running = nullptr,
                       const std::atomic<bool>* dropped = nullptr);

/// The body of a local worker process (started by its pool's feeder):
/// serves the pool over its channel, showing its progress in page `slot`
/// of the `pages` progress pages that the pool's process `owner` shares as
/// its descriptor `progress_fd`.
void worker_main(closure initializer, std::int32_t owner,
                 std::int32_t progress_fd, std::uint32_t pages,
                 std::uint32_t slot);

/// Runs task `id`: its result, or what it threw.
outcome run_task(std::uint64_t id, const closure& call);

/// An error as text (through the actor system).
std::string render(const caf::error& err);

/// What identifies this program's code: its GNU build id (hex), or, for an
/// executable without one, a SHA-256 of the executable file.
const std::string& program_id();

/// The worker-host role's settings, from the command line.
struct worker_host_args {
  std::string address;  ///< the pool's HOST:PORT
  std::string key_file; ///< the run's key, as the pool's key_file
  int processes = 0;    ///< worker processes on this host; 0: one per core
  std::chrono::seconds connect_timeout{30}; ///< to reach the pool
  std::string tls_ca, tls_certificate, tls_private_key; ///< or the key's PSK
  /// What the pool calls this host (actor_options::host); its hostname
  /// when empty.
  std::string name;
};

/// Finds `--actors-worker` and its companions in argv: true if this process
/// is a worker host. Exits with a message on malformed arguments.
bool parse_worker_host(int argc, char** argv, worker_host_args& out);

/// Runs the worker-host role (never returns): keeps `processes` workers
/// joined to the pool until it lets them go, restarting those that die.
[[noreturn]] void run_worker_host(const worker_host_args& args);

} // namespace actors::detail
