#pragma once

// The untyped core of actors::pool: tasks are closures whose result comes
// back as a value; outcomes are delivered to sinks. Public templates need
// it; users never name it.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/detail/closure.hpp"
#include "actors/detail/status.hpp"
#include "actors/detail/value.hpp"
#include "actors/error.hpp"

namespace actors::detail {

/// What running one task produced: its result when ok.
struct outcome : status {
  std::uint64_t task = 0;
  value result;
};

// The result right after the flag, where fuzz/channel_frames.cpp looks.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, outcome& x) {
  return f(x.task, x.ok, x.result, x.code, x.what);
}

/// Receives the outcome of a task, on one of the pool's threads (a worker
/// process's feeder, or a worker thread of a thread pool), outside the
/// pool's lock.
class result_sink {
public:
  virtual ~result_sink();
  virtual void deliver(outcome&& x) = 0;

  /// As `deliver(x)`, from the pool's reference to this sink (`self`),
  /// which the sink may take over.
  virtual void deliver_from(outcome&& x, std::shared_ptr<result_sink>& self);
};

/// Where the thread that runs a task of a worker process shows which input
/// of the task's chunk it runs (a word shared with the pool, which charges
/// a worker's death to that input only); null elsewhere: in the owner, on
/// other threads, in a worker of another host.
std::atomic<std::uint64_t>* running_input() noexcept;

/// Runs the callbacks of a pool's results (`async_result::then`) on a
/// thread of the pool kept for them, one at a time in the order the
/// results arrived, so that a callback never holds up the delivery of
/// other results and may wait for them.
class callback_runner;

/// The runner of the pool delivering results on this thread now; null when
/// no pool delivers here (then callbacks run at once, on this thread).
callback_runner* delivering_callbacks_to() noexcept;

/// Queues `fn` on `runner`; false if it cannot take it (the pool has ended,
/// or no thread could be made): the caller runs `fn` itself.
bool post_callback(callback_runner* runner, std::function<void()>& fn);

/// Whether this thread is the one that runs the callbacks of `runner`.
bool runs_callbacks_of(const callback_runner* runner) noexcept;

class pool_state;

/// A running pool: its task table and its workers, which are processes
/// (actors::pool) or threads of this process (actors::thread_pool).
class pool_core {
public:
  struct options {
    bool threads = false; // workers are threads of this process
    int processes = 0;   // how many workers; 0: the number of cores
    int retries = 1;     // how often a task lost with its worker is rerun
    closure initializer; // run once in each worker; may be empty
    int max_tasks_per_child = 0; // 0: unlimited
    std::optional<std::chrono::steady_clock::duration> task_timeout;
    int max_restarts = 10;       // more deaths than this within ...
    std::chrono::steady_clock::duration restart_window
      = std::chrono::seconds{10}; // ... this window break the pool
    std::string listen;   // "HOST:PORT" where worker hosts join; empty: none
    std::string key_file; // the key they prove (created if missing)
    std::chrono::milliseconds lost_after{5000}; // a silent host is lost
    std::string tls_ca, tls_certificate, tls_private_key; // or the key's PSK
  };

  explicit pool_core(options opts);
  ~pool_core();

  /// Queues a task and returns its id; throws `errc::pool_not_running` after
  /// close/terminate.
  std::uint64_t submit(closure task, std::shared_ptr<result_sink> sink);

  using job = std::pair<closure, std::shared_ptr<result_sink>>;

  /// Queues several tasks at once, in order (a map's chunks); returns the
  /// id of the first, the others follow.
  std::uint64_t submit(std::vector<job> jobs);

  /// Cancels a task: a queued one is removed, a running one is stopped by
  /// replacing its worker process; its result fails with `errc::cancelled`.
  /// False if it had already finished, or runs on a thread (which cannot be
  /// stopped).
  bool cancel(std::uint64_t task);

  /// `cancel(task)` for a task of `host_actor` whose actor lost its link:
  /// its host counts as just lost (placements avoid it for a while).
  bool cancel_lost(std::uint64_t task);

  void close();
  void terminate();
  void join();

  int processes() const noexcept;

  /// Workers serving now: processes() and those of other hosts.
  std::size_t workers() const;

  /// The port worker hosts join on (0 when the pool does not listen).
  std::uint16_t port() const noexcept;

  /// Waits until at least `n` workers of other hosts serve the pool; false
  /// if `timeout` ran out first.
  bool wait_remote(std::size_t n, std::chrono::steady_clock::duration timeout);

  /// Workers of other hosts serving the pool now.
  std::size_t remote_workers() const;

  /// Runs `target` (the body of an actor: it returns when the actor ends)
  /// on a worker process of another host named `host` (its
  /// --actors-host-name; any joined host when empty), which takes no other
  /// task until it returns. Chooses the host that runs the fewest such
  /// tasks and has not just lost a worker, and on it an idle worker if
  /// there is one. The task is never rerun: losing its worker fails it
  /// with `errc::worker_lost`. Returns its id (for `cancel`) and sets
  /// `where` to "PID on HOST". Throws `errc::spawn_failed` saying why no
  /// worker can take it (none of that host serves the pool, all of its
  /// workers run actors, the pool has a task timeout or has stopped).
  std::uint64_t host_actor(const std::string& host, closure target,
                           std::shared_ptr<result_sink> sink,
                           std::string& where);

  /// Terminates and joins every process pool still alive (at exit, before
  /// the runtime ends its children): Python's exit handler for pools.
  static void end_all();

private:
  // Another handle on a running pool's state (end_all).
  explicit pool_core(std::shared_ptr<pool_state> state) noexcept;

  std::uint64_t enqueue(job* jobs, std::size_t n);

  std::shared_ptr<pool_state> state_;
};

} // namespace actors::detail
