#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/types.h>

#include <caf/detail/type_traits.hpp>

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

namespace detail {

template <class T, class = void>
struct has_run_member : std::false_type {};

template <class T>
struct has_run_member<T, std::void_t<decltype(std::declval<T&>().run())>>
  : std::true_type {};

/// What a process made from an object runs: its `run()`, else its
/// `operator()`.
template <class T>
void run_object(T object) {
  if constexpr (has_run_member<T>::value)
    object.run();
  else
    object();
}

} // namespace detail

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
/// compiler rejects arguments that do not convert to the parameter types or
/// that cannot be serialized (CAF `inspect`). Or, for Python's subclass of
/// `Process` with its own `run()`, `fn` is an object of a class with a
/// `run()` member (else an `operator()`) and an `inspect` overload, and no
/// arguments follow: the object is copied to the child, whose main thread
/// calls `run()` on it.
///
/// @code
/// struct counter {
///   int from = 0;
///   void run() { for (int i = from; i < from + 3; ++i) std::cout << i; }
///   template <class Inspector>
///   friend auto inspect(Inspector& f, counter& x) { return f(x.from); }
/// };
/// actors::process p{counter{10}};
/// @endcode
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
/// `start`: `errc::already_running`; a failed fork/exec: `errc::spawn_failed`;
/// anything but `close`, `name` and `daemon` after `close()`: `errc::closed`.
class process {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// Prepares, without starting, a process that will call `fn(args...)`.
  template <class F, class... Args>
  explicit process(F&& fn, Args&&... args)
    : target_(bind(std::forward<F>(fn), std::forward<Args>(args)...)),
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

  /// Releases what this handle holds of an ended child (Python's `close`).
  /// Throws `errc::already_running` while the child runs; closing twice or
  /// before `start` is harmless. Afterwards only `name` and `daemon` work.
  void close();

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
  template <class F, class... Args>
  static detail::closure bind(F&& fn, Args&&... args) {
    using T = std::decay_t<F>;
    if constexpr (std::is_class_v<T> && !detail::has_unary_plus<T>::value) {
      static_assert(sizeof...(Args) == 0,
                    "an object run as a process takes no arguments: its "
                    "members are its state");
      static_assert(caf::detail::is_serializable<T>::value,
                    "a process runs a plain function, a lambda without "
                    "captures, or an object with run() whose class has an "
                    "inspect overload: captured state cannot cross a process "
                    "boundary, pass it as arguments");
      return detail::closure::bind(&detail::run_object<T>,
                                   std::forward<F>(fn));
    } else {
      return detail::closure::bind(std::forward<F>(fn),
                                   std::forward<Args>(args)...);
    }
  }

  static std::string next_name();

  // Throws errc::closed after close(), errc::not_started before start().
  const std::shared_ptr<detail::child>& started(const char* what) const;

  detail::closure target_;
  std::string name_;
  bool daemon_ = false;
  bool closed_ = false;
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

/// A process as `current_process()` and `parent_process()` describe it
/// (Python's objects of the same names).
struct process_info {
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  std::string name;    ///< "MainProcess", "Process-3", "PoolWorker-1", ...
  pid_t pid = 0;       ///< its process id
  bool daemon = false; ///< whether it is a daemon child

  /// Whether the process still runs.
  bool is_alive() const;

  /// Waits until the process has ended, at most `timeout`; true when it has
  /// (Python's `parent_process().join()`). A child ends within milliseconds
  /// of its parent (see `process`, **Lifetime**), so in a child this mostly
  /// runs out. Throws `errc::would_deadlock` for this process itself.
  bool join(std::optional<duration> timeout = std::nullopt) const;
};

/// The process this code runs in (Python's `current_process()`).
process_info current_process();

/// The process that started this one (Python's `parent_process()`); empty in
/// the program the user started and in a worker process of another host.
std::optional<process_info> parent_process();

/// The name of the process this code runs in: "MainProcess" in the program the
/// user started, the `process::name` in a child.
const std::string& current_process_name();

} // namespace actors
