#pragma once

// This process's children: each child OS process (class child) and the
// table of the running ones, whose reaper thread collects each exit status
// the moment the process ends (pidfds in an epoll set). spawn starts a
// child (spawn.cpp: by the fork server, or posix_spawn of this binary); the
// child's side is child_main.hpp. The table joins the node's exit sequence
// (runtime::at_shutdown): daemon children terminated, the others joined.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/types.h>

#include <caf/error.hpp>

#include "actors/detail/closure.hpp"
#include "base/fd.hpp"
#include "base/poller.hpp"

namespace actors::detail {

class runtime;

/// What a child is, for the texts about it and what ends it.
enum class child_kind {
  process,      ///< actors::process, a pool worker
  actor_process ///< lives by its link: cut off, it is killed
};

/// One child OS process. Its exit status is collected by the reaper the
/// moment it ends; handles only observe.
class child {
public:
  child(pid_t pid, unique_fd pidfd, unique_fd lifeline, std::uint64_t token,
        bool daemon, std::string name, child_kind kind);

  const pid_t pid;
  const std::uint64_t token;
  const bool daemon;
  const std::string name; // as given: "Process-3", "PoolWorker-1"
  const std::string who;  // in texts: "process 42 (Process-3)"
  const child_kind kind;


  /// Waits for the end of the process; false when `timeout` ran out first.
  bool wait(std::optional<std::chrono::steady_clock::duration> timeout);

  std::optional<int> exitcode() const;

  /// Waits until the child has its task and arguments (or has ended); false
  /// if neither happened within `timeout`.
  bool wait_started(std::chrono::steady_clock::duration timeout);

  /// Signals the process unless it has ended (no pid-reuse race: pidfd).
  void signal(int signo);

  /// Kills the process, saying why in how its end is told (death_of).
  void kill_because(const std::string& why);

  /// Calls `fn(exitcode)` once the process has ended, on the reaper's
  /// thread (or at once, here, when it has ended already).
  void on_exit(std::function<void(int)> fn);

  /// As `on_exit`, but undone by `unwatch(id)` with the id it returns (0
  /// when `fn` ran at once): for a wait that ends before the process.
  std::uint64_t watch(std::function<void(int)> fn);
  void unwatch(std::uint64_t id);

private:
  friend class children;

  /// Collects the exit status if the process has ended and runs the
  /// `on_exit` hooks; true if it has ended.
  bool try_reap();
  bool reap_locked();

  void mark_started();

  unique_fd pidfd_;
  unique_fd lifeline_; // the write end of a pipe whose closing tells the child to go
  bool started_ = false;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::optional<int> exitcode_;
  std::string killed_because_; // why this process killed it, if it did
  std::vector<std::pair<std::uint64_t, std::function<void(int)>>> on_exit_;
  std::uint64_t next_watch_ = 1;
};

class children {
public:
  /// This process's table, made on first use (it starts the runtime).
  static children& local();

  /// This process's table if it was made, else null (nothing started).
  static children* if_made();

  /// The children that run now (not yet reaped).
  std::vector<std::shared_ptr<child>> running();

  /// Starts `target` in a new child process. With `channel`, the child also
  /// gets one end of a socket pair (its `runtime::take_channel()`), and
  /// `*channel` the other: a direct channel (channel.hpp) to this process.
  /// Returns once the child holds its arguments.
  /// `kind` names it in the reason of its end ("actor process 42 (name)
  /// killed by signal 9 (SIGKILL)"); an actor process is also killed when
  /// its link breaks while it runs (death_of).
  std::shared_ptr<child> spawn(const closure& target, const std::string& name,
                               bool daemon, int* channel = nullptr,
                               child_kind kind = child_kind::process);

  /// Python's exit sequence for this process's children: terminates the
  /// daemon ones (SIGTERM, SIGKILL after 1 s) and joins the others.
  void end_children();

private:
  explicit children(runtime& rt);

  /// At exit: no child starts after this; the children end, the reaper too.
  void end_all();

  void child_started(std::uint64_t token);
  /// How child `pid` ended, for the end of its link: errc::process_died
  /// naming its exit code or signal (waiting at most `timeout` for the
  /// reaper), or, if an actor process still runs then and `kill`,
  /// errc::connection_lost, and it is killed (cut off from its parent, it
  /// serves nobody). None if `pid` is not a child of this process, or runs
  /// and is not killed.
  caf::error death_of(pid_t pid, std::chrono::steady_clock::duration timeout,
                      bool kill);
  void start_reaper();
  void reap_loop();

  runtime& rt_;
  std::mutex mtx_;
  std::vector<std::shared_ptr<child>> running_;
  std::deque<std::shared_ptr<child>> ended_recently_; // the last few reaped
  // The reaper's: the pidfds (their events carry the child), and a wake-up
  // (carrying 0) to stop it.
  std::optional<poller> poller_;
  std::thread reaper_;
  std::uint64_t next_token_ = 1;
  std::set<std::uint64_t> early_started_; // started before being registered
  bool ended_ = false; // shutdown began: no new child
};

/// Called on the thread of children::spawn while it serializes a child's
/// arguments: runs `fn` once that child has ended (at once if spawn fails
/// before the child exists), else does nothing. A pipe end among the
/// arguments is on its way until the child holds it: a child that could
/// not start never will, and its queue must not wait for it.
void when_receiver_ends(std::function<void()> fn);

} // namespace actors::detail
