#pragma once

// The state of a running pool, shared by the users' threads and the
// pool's own threads under `mtx`: its task table (task_table.hpp), its
// workers and how the pool ends.
//
// One scheduler, two kinds of workers taking tasks from the table:
// - worker threads (thread_pool; thread_workers.cpp) run the tasks they
//   take. A thread cannot die alone, be killed or be replaced, so a thread
//   pool never retries, kills or respawns;
// - worker processes (pool; process_workers.cpp) are each fed by a thread
//   of this process (its feeder) over a direct channel (channel.hpp), up
//   to a window of tasks; the feeder learns of the process's death when the
//   channel ends and starts another in its place. Workers of other hosts
//   (remote_workers.cpp) join at the pool's listener and are fed the same
//   way.
// Callbacks of results run on one more thread per pool (callback_runner),
// before the result counts as done, so that they neither hold up a feeder
// nor run after a waiter woke. The worker side is worker.cpp.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <functional>
#include <thread>
#include <vector>

#include "actors/detail/pool_core.hpp"
#include "base/fd.hpp"
#include "net/auth.hpp"
#include "net/listener.hpp"
#include "pool/progress_page.hpp"
#include "shm/shared_memory.hpp"
#include "pool/task_table.hpp"
#include "node/runtime.hpp"
#include "process/children.hpp"
#include "wire/channel.hpp"

namespace actors::detail {

/// Locks `m`, trying briefly before sleeping: the sections under the pool's
/// lock are a few hundred nanoseconds, much less than a sleep and wake-up.
template <class Lock>
void lock_soon(Lock& m) {
  for (int i = 0; i < 200; ++i)
    if (m.try_lock())
      return;
  m.lock();
}

/// Runs result callbacks off the threads that deliver results
/// (callback_runner.cpp).
class callback_runner;

class pool_state : public std::enable_shared_from_this<pool_state> {
public:
  using clock = std::chrono::steady_clock;

  struct worker {
    std::thread thread;            ///< the worker thread, or the feeder
    task_table::holding* tasks = nullptr; ///< what it took, in the table
    std::shared_ptr<child> proc;   ///< the worker process, while it runs
    unique_fd wake_fd;   ///< a feeder's eventfd, written when it should look
    bool idle = false;   ///< the feeder waits on its wake_fd
    bool woken = false;  ///< ... which was written: it is about to look
    /// A worker of another host: its connection while it serves, and
    /// whether the slot is free for the next one that joins.
    bool remote = false;
    int link = -1;
    bool vacant = false;
    /// A remote worker's host (its --actors-host-name) and process id.
    std::string host;
    std::uint32_t pid = 0;
    /// It runs an actor (host_actor): it takes no other task until that
    /// task settles; `hosted` holds the actor's task until the feeder
    /// sends it.
    bool hosting = false;
    std::vector<std::pair<std::uint64_t, closure>> hosted;
    bool shutting = false; ///< its feeder has stopped sending tasks
  };

  explicit pool_state(pool_core::options opts);
  ~pool_state();

  // -- pool_core.cpp ------------------------------------------------------

  bool ended() const {
    return terminated || !broken.empty();
  }

  /// Adds a worker slot (under the lock, or before the workers start).
  worker& add_worker();

  void start_workers();

  /// A feeder's wake_fd (an eventfd); throws errc::spawn_failed.
  static unique_fd make_wake_fd();

  /// A thread of this pool's (a worker, a feeder, a host link's) running
  /// `fn`: on_own_thread() is true on it.
  std::thread own_thread(std::function<void()> fn);

  /// Whether the calling thread is one of this pool's (own_thread).
  bool on_own_thread() const noexcept;

  /// Stops a worker process at once: kills a local one, and drops the
  /// connection of a remote one (which ends when it sees that).
  static void kill(worker& w);

  /// Stops worker processes at once; threads finish their task first.
  void kill_workers();

  /// Gives up (under the lock): fails everything outstanding and later
  /// with errc::pool_broken and stops the workers.
  void break_pool(const std::string& why, std::vector<delivery>& out);

  /// Settles an outcome of a task `w` took (under the lock).
  bool settle(worker& w, outcome&& o, std::vector<delivery>& out);

  /// The worker holding `task`, or null (under the lock).
  worker* holder(std::uint64_t task);

  /// Fails a task a worker process holds and replaces the process (the
  /// only way to stop a running function); under the lock.
  void stop_task(worker& w, std::uint64_t task, errc code,
                 const std::string& what, std::vector<delivery>& out);

  /// The worker process of `w` ended unplanned, or with tasks (under the
  /// lock): see task_table::on_worker_lost; the death counts against the
  /// restart budget if `counts` (a local process that the pool replaces).
  void on_worker_lost(worker& w, const std::string& why, bool counts,
                      std::vector<delivery>& out,
                      std::optional<last_run> ran = std::nullopt);

  /// Workers serving now: the local ones and the remote ones joined.
  std::size_t serving() const {
    return static_cast<std::size_t>(opts.processes) + remote_workers;
  }

  /// Tells every worker that there is work, or that it is time to stop.
  void wake();

  /// Wakes up to `n` idle feeders (under the lock).
  void wake_idle(std::size_t n);

  /// Wakes the feeder of `w` if it is idle and not woken yet (under the
  /// lock); false if it was not.
  bool wake_feeder(worker& w);

  /// Delivers outcomes (outside the lock); the callbacks of their results
  /// go to this pool's callback thread.
  void deliver(std::vector<delivery>& xs);

  // -- thread_workers.cpp -------------------------------------------------

  /// A worker thread: takes queued tasks until the pool stops or ends.
  void thread_loop(worker& me);

  // -- process_workers.cpp ------------------------------------------------

  /// A worker process's feeder: starts the process of its slot, feeds it,
  /// and starts the next one when it ends, until the pool stops or ends.
  void feeder_loop(worker& w, std::uint32_t slot);

  /// Feeds the worker process of `w` over `ch` until the channel ends;
  /// true if the feeder ended it (the pool stops, or the worker retires).
  bool feed(worker& w, channel& ch, std::vector<delivery>& out);

  // -- remote_workers.cpp -------------------------------------------------

  /// A connection authenticated at the pool's listener (on its thread).
  void on_connection(int fd, purpose p);

  /// Milliseconds until the remote worker of `w` counts as lost if nothing
  /// arrives from it; -1 for a local one.
  int silence_left(const worker& w, const channel& ch) const;

  /// Whether the remote worker of `w` said nothing for lost_after (then it
  /// is told to retire and its connection is dropped).
  bool silent(const worker& w, channel& ch);

  /// Counts `host` as just lost (under the lock): host_actor avoids it
  /// for 2 x lost_after.
  void note_loss(const std::string& host);

  /// Whether `host` lost a worker since `since` (and within 2 x
  /// lost_after; under the lock).
  bool lost_since(const std::string& host, clock::time_point since) const;

  /// pool_core::host_actor.
  std::uint64_t host_actor(const std::string& host, closure target,
                           std::shared_ptr<result_sink> sink,
                           std::string& where);

  // -- state --------------------------------------------------------------

  std::mutex mtx;
  std::mutex join_mtx;           // one thread joins the workers
  std::condition_variable idle;  // no task queued or taken, or ended
  std::condition_variable work;  // thread workers: a task, or time to stop
  pool_core::options opts;
  task_table table;
  std::deque<worker> workers; // grows as hosts join: references stay valid
  std::size_t remote_workers = 0; // serving now
  std::condition_variable joined; // remote_workers grew
  /// When a host last lost a worker without leaving (its host or link is
  /// probably gone): host_actor places elsewhere while it can.
  std::vector<std::pair<std::string, clock::time_point>> losses;
  secret key;                     // what worker hosts prove
  std::unique_ptr<listener> hosts_listener; // where they join
  bool closed = false;
  bool terminated = false;
  bool stopping = false; // workers are told to stop once idle
  std::string broken;    // why the pool gave up; empty while it works
  /// Where results run their callbacks.
  std::shared_ptr<callback_runner> callbacks;
  /// The progress pages of the local worker processes (a memfd, one page
  /// per slot, made with the first worker; none if that failed).
  std::once_flag progress_made;
  shared_memory progress;

private:
  // process_workers.cpp
  progress_page* progress_of(std::uint32_t slot);
  void read_frame(const channel::frame& f, channel& ch,
                  std::vector<outcome>& results, std::size_t& window);
  bool wait_idle(worker& w, channel& ch, std::vector<outcome>& results,
                 std::size_t& window);

  // remote_workers.cpp
  void remote_loop(worker& w, int fd);
  std::string greet(channel& ch, std::string& host, std::uint32_t& pid);
  bool welcome(channel& ch);
  std::string lost_reason(int err) const;
};

/// Stops the runner (callback_runner.cpp): runs what is queued, then ends
/// its thread.
void stop_callbacks(callback_runner& runner);

/// Makes a runner (callback_runner.cpp).
std::shared_ptr<callback_runner> make_callback_runner();

/// Sets the runner of the pool delivering results on this thread; returns
/// the one before.
callback_runner* set_delivering(callback_runner* runner) noexcept;

} // namespace actors::detail
