#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "actors/detail/closure.hpp"
#include "actors/error.hpp"

namespace actors {

namespace detail {
class child;
} // namespace detail

/// Python's `Process.sentinel`: what `actors::wait` (actors/pipe.hpp) waits
/// on, beside pipe ends, to learn that a process has ended.
///
/// @code
/// auto ready = actors::wait({conn, p.sentinel()}, std::chrono::seconds{5});
/// @endcode
///
/// A copyable handle, meaningful in the process that started the child (it
/// cannot be passed to another process). Two sentinels of one child compare
/// equal.
class sentinel {
public:
  /// No process: never ready.
  sentinel() = default;

  /// Whether the process has ended.
  bool ready() const;

  friend bool operator==(const sentinel& a, const sentinel& b) noexcept {
    return a.child_ == b.child_;
  }

  friend bool operator!=(const sentinel& a, const sentinel& b) noexcept {
    return !(a == b);
  }

  /// The child it watches (for `wait`).
  const std::shared_ptr<detail::child>& child() const noexcept {
    return child_;
  }

private:
  friend class process;
  std::shared_ptr<detail::child> child_;
};

/// Runs a function with typed arguments in a new OS process: the counterpart
/// of Python's `multiprocessing.Process`.
///
/// @code
/// void greet(int id, std::string text) { std::cout << text << id << '\n'; }
///
/// actors::process p{greet, 1, "hello "};
/// p.start();
/// p.join();
/// assert(p.exitcode() == 0);
/// @endcode
///
/// **What runs.** `fn` is a plain function or a lambda without captures; the
/// compiler rejects anything else, and rejects arguments that do not convert
/// to the parameter types or that cannot be serialized (CAF `inspect`).
/// `start` makes a child of this same program (which must call
/// `actors::init` first in `main`: see there how); the child connects to its
/// parent over an inherited socket pair, receives the call, runs it on its
/// main thread and exits.
///
/// **Exit codes**, as in Python: empty while running; 0 when `fn` returns;
/// `n` after `exit(n)`; 1 when `fn` throws (the child first prints the
/// process name, the exception type and its message to stderr); `-N` when the
/// child was ended by signal N.
///
/// **Waiting.** `join` blocks until the child ends, or at most `timeout`, and
/// reports which; nothing else blocks. The exit status is collected the moment
/// the child ends, so no handle ever leaves a zombie.
///
/// **Lifetime.** Destroying a handle neither stops nor waits for its child:
/// the child runs on and is reaped by the runtime when it ends. When this
/// program exits normally it joins its non-daemon children and terminates its
/// daemon ones (as Python does). When this program dies, however it dies,
/// every child notices within milliseconds and exits: no orphan survives its
/// owner. A handle may be used from any thread.
///
/// **Errors.** `start` twice: `errc::already_started`; `join`, `terminate` or
/// `kill` before `start`: `errc::not_started`; changing `daemon` after
/// `start`: `errc::already_running`; a failed fork/exec: `errc::spawn_failed`.
class process {
public:
  /// The type of timeouts: any `std::chrono` duration converts to it.
  using duration = std::chrono::steady_clock::duration;

  /// Prepares, without starting, a process that will call `fn(args...)`.
  template <class F, class... Args>
  explicit process(F&& fn, Args&&... args)
    : target_(detail::closure::bind(std::forward<F>(fn),
                                    std::forward<Args>(args)...)),
      name_(next_name()) {
    // nop
  }

  ///@{
  /// A handle moves and does not copy: one handle per child.
  process(process&&) noexcept;
  process& operator=(process&&) noexcept;
  ///@}
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  /// See **Lifetime** above: never blocks, never kills.
  ~process();

  /// Starts the child and returns once it holds its arguments (so handles
  /// passed to it may be closed here at once, as after Python's fork).
  /// Throws `errc::already_started` on a second call and
  /// `errc::spawn_failed` when the OS refuses or the child does not start
  /// within 10 s.
  void start();

  /// Waits until the child ended; returns true when it has ended, false when
  /// `timeout` ran out first. Throws `errc::not_started` before `start`.
  bool join(std::optional<duration> timeout = std::nullopt);

  /// True between `start` and the end of the child.
  bool is_alive() const;

  /// The child's process id, empty before `start`.
  std::optional<pid_t> pid() const;

  /// The child's exit code (see above), empty while it runs or before start.
  std::optional<int> exitcode() const;

  /// Its sentinel, for `wait` (Python's `sentinel`). Throws
  /// `errc::not_started` before `start`.
  ::actors::sentinel sentinel() const;

  ///@{
  /// Sends SIGTERM (`terminate`) or SIGKILL (`kill`) to a running child; a
  /// no-op once it has ended. Throws `errc::not_started` before `start`.
  void terminate();
  void kill();
  ///@}

  ///@{
  /// The name the child reports in error messages; "Process-N" by default.
  const std::string& name() const noexcept {
    return name_;
  }
  void name(std::string value) {
    name_ = std::move(value);
  }
  ///@}

  ///@{
  /// Daemon children are terminated when this program exits; the others are
  /// joined. Can only be changed before `start`.
  bool daemon() const noexcept {
    return daemon_;
  }
  void daemon(bool value);
  ///@}

private:
  static std::string next_name();

  detail::closure target_;
  std::string name_;
  bool daemon_ = false;
  std::shared_ptr<detail::child> child_;
};

/// A child of this process that still runs, as `active_children` lists it.
struct child_process {
  pid_t pid;        ///< its process id
  std::string name; ///< "Process-3", "PoolWorker-1", an actor's name, ...
};

/// Python's `active_children()`: the children of this process that run
/// now, in the order they were started: processes, pool workers and actor
/// processes (not the fork server). Ended children are already reaped (no
/// zombie waits for this call, unlike Python's).
std::vector<child_process> active_children();

/// Python's `cpu_count()`: the number of CPUs of this machine that are
/// online (`sched_getaffinity` may allow this process fewer).
unsigned cpu_count();

/// The name of the process this code runs in: "MainProcess" in the program the
/// user started, the `process::name` in a child.
const std::string& current_process_name();

} // namespace actors
