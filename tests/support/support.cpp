#include "subprocess.hpp"
#include "watchdog.hpp"

#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace support {

// -- watchdog -----------------------------------------------------------------

namespace {

struct watchdog_state {
  std::mutex mtx;
  std::condition_variable cv;
  bool armed = false;
  std::chrono::steady_clock::time_point deadline;
  std::string what;
  std::vector<void (*)()> exit_hooks;
  std::thread thread;
};

watchdog_state& watchdog() {
  static auto* state = [] {
    auto* s = new watchdog_state;
    s->thread = std::thread{[s] {
      std::unique_lock<std::mutex> guard{s->mtx};
      for (;;) {
        if (!s->armed) {
          s->cv.wait(guard);
          continue;
        }
        if (s->cv.wait_until(guard, s->deadline) == std::cv_status::timeout
            && s->armed && std::chrono::steady_clock::now() >= s->deadline) {
          std::fprintf(stderr, "\nWATCHDOG: '%s' hung; aborting the test run\n",
                       s->what.c_str());
          std::fflush(stderr);
          for (auto hook : s->exit_hooks)
            hook();
          ::_exit(124);
        }
      }
    }};
    s->thread.detach();
    return s;
  }();
  return *state;
}

} // namespace

void arm_watchdog(std::chrono::seconds limit, std::string what) {
  auto& s = watchdog();
  std::lock_guard<std::mutex> guard{s.mtx};
  s.armed = true;
  s.deadline = std::chrono::steady_clock::now() + limit;
  s.what = std::move(what);
  s.cv.notify_all();
}

void disarm_watchdog() {
  auto& s = watchdog();
  std::lock_guard<std::mutex> guard{s.mtx};
  s.armed = false;
  s.cv.notify_all();
}

void at_watchdog_exit(void (*fn)()) {
  auto& s = watchdog();
  std::lock_guard<std::mutex> guard{s.mtx};
  s.exit_hooks.push_back(fn);
}

// -- subprocess ---------------------------------------------------------------

namespace {

// This environment with `extra` ("NAME=value") added, replacing entries of
// the same name.
std::vector<std::string>
environment_with(const std::vector<std::string>& extra) {
  auto name_of = [](const std::string& entry) {
    return entry.substr(0, entry.find('='));
  };
  std::vector<std::string> result;
  for (auto** e = environ; *e; ++e) {
    std::string entry{*e};
    bool replaced = false;
    for (auto& x : extra)
      replaced |= name_of(x) == name_of(entry);
    if (!replaced)
      result.push_back(std::move(entry));
  }
  result.insert(result.end(), extra.begin(), extra.end());
  return result;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> result;
  for (auto& s : strings)
    result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

std::string self_path() {
  char self[4096];
  auto n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  self[n > 0 ? n : 0] = '\0';
  return self;
}

} // namespace

subprocess::subprocess(const std::string& path,
                       const std::vector<std::string>& args, bool with_stderr)
  : subprocess(path, args, [with_stderr] {
      options opts;
      opts.with_stderr = with_stderr;
      return opts;
    }()) {
}

subprocess::subprocess(const std::string& path,
                       const std::vector<std::string>& args,
                       const options& opts)
  : own_group_(opts.own_group) {
  if (!opts.netns.empty() && (!opts.limits.empty() || opts.uid >= 0))
    throw std::invalid_argument("a child in a network namespace cannot have "
                                "limits or another user");
  int ns = -1;
  if (!opts.netns.empty()) {
    auto file = "/run/netns/" + opts.netns;
    ns = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0)
      throw std::runtime_error("cannot open " + file + ": "
                               + std::strerror(errno));
  }
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    if (ns >= 0)
      ::close(ns);
    throw std::runtime_error("pipe2 failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1],
                                   opts.stdout_closed ? 2 : 1);
  if (opts.stdout_closed)
    posix_spawn_file_actions_addclose(&actions, 1);
  else if (opts.with_stderr)
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (opts.own_group) {
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
  }
  std::vector<std::string> all{path};
  all.insert(all.end(), args.begin(), args.end());
  auto argv = pointers(all);
  auto env = opts.env.empty() ? std::vector<std::string>{}
                              : environment_with(opts.env);
  auto envp = opts.env.empty() ? std::vector<char*>{} : pointers(env);
  auto spawn = [&] {
    return ::posix_spawn(&pid_, path.c_str(), &actions, &attr, argv.data(),
                         opts.env.empty() ? environ : envp.data());
  };
  // Limits and another user need a plain fork, set before exec (only
  // async-signal-safe calls in the child).
  auto fork_exec = [&] {
    auto pid = ::fork();
    if (pid < 0)
      return errno;
    if (pid == 0) {
      ::dup2(out[1], opts.stdout_closed ? 2 : 1);
      if (opts.stdout_closed)
        ::close(1);
      else if (opts.with_stderr)
        ::dup2(out[1], 2);
      if (opts.own_group)
        ::setpgid(0, 0);
      // Only 0-2 stay open: a program under limits sees the same count of
      // free descriptors wherever the test runs (CI's harness leaves fewer
      // open than a shell).
      if (!opts.limits.empty())
        for (int fd = 3; fd < 1024; ++fd)
          ::close(fd);
      for (auto& [resource, value] : opts.limits) {
        rlimit lim{static_cast<rlim_t>(value), static_cast<rlim_t>(value)};
        if (::setrlimit(resource, &lim) != 0)
          ::_exit(126);
      }
      if (opts.uid >= 0) {
        auto id = static_cast<uid_t>(opts.uid);
        if (::setgroups(0, nullptr) != 0 || ::setgid(id) != 0
            || ::setuid(id) != 0)
          ::_exit(126);
      }
      ::execve(path.c_str(), argv.data(),
               opts.env.empty() ? environ : envp.data());
      ::_exit(127);
    }
    if (opts.own_group)
      ::setpgid(pid, pid); // as the child does, whichever runs first
    pid_ = pid;
    return 0;
  };
  int rc = 0;
  std::string failed = "cannot start " + path;
  if (!opts.limits.empty() || opts.uid >= 0) {
    rc = fork_exec();
  } else if (ns < 0) {
    rc = spawn();
  } else {
    // setns moves only the calling thread: a thread of its own joins the
    // namespace, and the child, cloned from that thread, starts in it.
    std::thread joiner{[&] {
      if (::setns(ns, CLONE_NEWNET) != 0) {
        rc = errno;
        failed = "cannot join network namespace " + opts.netns;
        return;
      }
      rc = spawn();
    }};
    joiner.join();
    ::close(ns);
  }
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    pid_ = -1;
    throw std::runtime_error(failed + ": " + std::strerror(rc));
  }
  out_ = out[0];
}

subprocess subprocess::helper(const std::string& mode,
                              const std::vector<std::string>& args,
                              bool with_stderr) {
  options opts;
  opts.with_stderr = with_stderr;
  return helper(mode, args, opts);
}

subprocess subprocess::helper(const std::string& mode,
                              const std::vector<std::string>& args,
                              const options& opts) {
  std::vector<std::string> all{"--mode", mode};
  all.insert(all.end(), args.begin(), args.end());
  return subprocess{self_path(), all, opts};
}

subprocess::subprocess(subprocess&& other) noexcept
  : pid_(other.pid_), out_(other.out_), own_group_(other.own_group_),
    buffer_(std::move(other.buffer_)), status_(other.status_) {
  other.pid_ = -1;
  other.out_ = -1;
}

subprocess::~subprocess() {
  if (pid_ > 0 && !status_) {
    // The group is still ours: its leader, unreaped, keeps its id taken.
    ::kill(own_group_ ? -pid_ : pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  if (out_ >= 0)
    ::close(out_);
}

std::optional<std::string>
subprocess::read_line(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      auto line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || out_ < 0)
      return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      continue;
    char buf[4096];
    auto got = ::read(out_, buf, sizeof(buf));
    if (got <= 0) {
      if (buffer_.empty())
        return std::nullopt;
      auto line = std::move(buffer_);
      buffer_.clear();
      return line;
    }
    buffer_.append(buf, static_cast<size_t>(got));
  }
}

std::string subprocess::read_all(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string result;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return result;
    auto line = read_line(left);
    if (!line)
      return result;
    result += *line;
    result += '\n';
  }
}

std::optional<int> subprocess::wait(std::chrono::milliseconds timeout) {
  if (status_)
    return status_;
  if (!wait_ended(pid_, timeout))
    return std::nullopt;
  int status = 0;
  if (::waitpid(pid_, &status, 0) != pid_)
    return std::nullopt;
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  return status_;
}

void subprocess::kill(int signo) {
  if (pid_ > 0 && !status_)
    ::kill(pid_, signo);
}

// -- helper modes -------------------------------------------------------------

namespace {

std::map<std::string, helper_mode::fn>& modes() {
  static std::map<std::string, helper_mode::fn> instance;
  return instance;
}

} // namespace

helper_mode::helper_mode(const char* name, fn run) {
  modes().emplace(name, run);
}

std::optional<int> run_helper_mode(int argc, char** argv) {
  if (argc < 3 || std::strcmp(argv[1], "--mode") != 0)
    return std::nullopt;
  auto i = modes().find(argv[2]);
  if (i == modes().end()) {
    std::fprintf(stderr, "unknown helper mode %s\n", argv[2]);
    return 2;
  }
  return i->second(argc - 3, argv + 3);
}

// -- process table ------------------------------------------------------------

int count_fds() {
  int n = 0;
  if (auto* dir = ::opendir("/proc/self/fd")) {
    while (auto* entry = ::readdir(dir))
      if (entry->d_name[0] != '.')
        ++n;
    ::closedir(dir);
  }
  return n - 1; // the directory stream itself
}

std::vector<pid_t> parse_pids(const std::string& line) {
  std::vector<pid_t> pids;
  for (auto pos = line.c_str(); *pos;) {
    char* end;
    auto pid = std::strtol(pos, &end, 10);
    if (end == pos)
      break;
    pids.push_back(static_cast<pid_t>(pid));
    pos = end;
  }
  return pids;
}

std::vector<pid_t> list_children() {
  std::vector<pid_t> result;
  auto self = ::getpid();
  if (auto* dir = ::opendir("/proc")) {
    while (auto* entry = ::readdir(dir)) {
      auto pid = std::atoi(entry->d_name);
      if (pid <= 0)
        continue;
      std::ifstream stat{"/proc/" + std::string{entry->d_name} + "/stat"};
      std::string line;
      if (!std::getline(stat, line))
        continue;
      // pid (comm) state ppid ...: comm may contain spaces, skip past ')'.
      auto close = line.rfind(')');
      if (close == std::string::npos)
        continue;
      char state;
      int ppid;
      if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2
          && ppid == self)
        result.push_back(pid);
    }
    ::closedir(dir);
  }
  return result;
}

bool process_exists(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

bool wait_ended(pid_t pid, std::chrono::milliseconds bound) {
  auto fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0)
    return errno == ESRCH; // already gone and reaped
  auto deadline = std::chrono::steady_clock::now() + bound;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    auto n = ::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 0)));
    if (n > 0 || (n == 0 && left.count() <= 0) || (n < 0 && errno != EINTR)) {
      ::close(fd);
      return n > 0;
    }
  }
}

bool process_running(pid_t pid) {
  std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  if (!std::getline(stat, line))
    return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size()
         && line[close + 2] != 'Z';
}

} // namespace support
