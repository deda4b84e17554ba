#pragma once

// A test-side child process with captured stdout, used to run demos and
// helper roles of the test binary itself (peers, intruders, owners to kill).
// It is deliberately not actors::process: the tests must observe libactors
// from the outside too. The destructor kills and reaps, so no process
// outlives its test. It can start the child in a network namespace (the
// netlab's simulated hosts), in a process group of its own and with extra
// environment variables.

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace support {

class subprocess {
public:
  /// How to start the child, beyond its program and arguments.
  struct options {
    /// Its stderr goes into the captured stream too, else it is inherited.
    bool with_stderr = false;
    /// It starts with descriptor 1 closed; the captured stream is then its
    /// stderr alone.
    bool stdout_closed = false;
    /// The network namespace to start it in, a name of /run/netns (as
    /// given to `ip netns add`); empty: this process's own. A short-lived
    /// thread joins the namespace and spawns from there, so the child is
    /// born in it and this process's other threads stay where they are.
    std::string netns;
    /// Environment entries "NAME=value" added to the inherited ones,
    /// replacing any of the same name.
    std::vector<std::string> env;
    /// Makes the child the leader of a new process group; the destructor
    /// then kills that whole group (its descendants too, unless they left
    /// it), as long as the child is not yet reaped.
    bool own_group = false;
    /// Resource limits (soft and hard) the child starts with, as
    /// (RLIMIT_..., value) pairs; set between fork and exec.
    std::vector<std::pair<int, unsigned long>> limits;
    /// The user and group id the child runs as (only root may set it); -1:
    /// this process's own. Not with `netns`.
    long uid = -1;
  };

  /// Starts `path` with `args`; its stdout is captured, and its stderr too
  /// (into the same stream) with `with_stderr`, else inherited.
  subprocess(const std::string& path, const std::vector<std::string>& args,
             bool with_stderr = false);

  /// Starts `path` with `args` as `opts` say; its stdout is captured.
  subprocess(const std::string& path, const std::vector<std::string>& args,
             const options& opts);

  /// Starts this test binary in helper mode `mode` (see helper_mode).
  static subprocess helper(const std::string& mode,
                           const std::vector<std::string>& args = {},
                           bool with_stderr = false);

  /// Starts this test binary in helper mode `mode` as `opts` say.
  static subprocess helper(const std::string& mode,
                           const std::vector<std::string>& args,
                           const options& opts);

  subprocess(subprocess&&) noexcept;
  subprocess(const subprocess&) = delete;
  ~subprocess();

  pid_t pid() const noexcept {
    return pid_;
  }

  /// Next line of stdout, or nothing at EOF or when `timeout` ran out.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  /// All remaining stdout until EOF (bounded by `timeout`).
  std::string read_all(std::chrono::milliseconds timeout);

  /// Waits for the exit; returns the exit code (or -signal), or nothing.
  std::optional<int> wait(std::chrono::milliseconds timeout);

  /// Sends `signo` to the child (not to its group), unless it is reaped.
  void kill(int signo);

private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool own_group_ = false;
  std::string buffer_;
  std::optional<int> status_;
};

/// Registers a helper role of the test binary, run as `binary --mode NAME`.
struct helper_mode {
  using fn = int (*)(int argc, char** argv);
  helper_mode(const char* name, fn run);
};

/// Runs the helper role named in argv, if any.
std::optional<int> run_helper_mode(int argc, char** argv);

/// Open file descriptors of this process.
int count_fds();

/// The pids in a line of whitespace-separated numbers (a helper's report).
std::vector<pid_t> parse_pids(const std::string& line);

/// Direct children of this process (live or zombie).
std::vector<pid_t> list_children();

/// True while `pid` exists (as anything, zombie included).
bool process_exists(pid_t pid);

/// True while `pid` exists and has not ended (not a zombie).
bool process_running(pid_t pid);

/// Waits until `pid` (any process, not only a child) has ended; false if it
/// still runs after `bound`. Event-driven through a pidfd.
bool wait_ended(pid_t pid, std::chrono::milliseconds bound);

/// Waits until `pred()` holds, checking every millisecond; false if `bound`
/// passed first. For conditions that have no event to wait on (the process
/// table), never as a substitute for one.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds bound);

} // namespace support

#include <thread>

template <class Pred>
bool support::eventually(Pred pred, std::chrono::milliseconds bound) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
  return true;
}
