#include "netlab.hpp"
#include "watchdog.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <mutex>
#include <stdexcept>

#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace support {

namespace {

// Namespaces of a lab are named actl<pid>.<start>-<lab>h<host>: the pid and
// start time (clock ticks after boot) of the process that built it, so that
// sweep() tells a crashed owner from a live one even if its pid was reused.
constexpr const char* prefix = "actl";

constexpr auto ip_bound = 10s;

// The start time of process `pid`, unless it ended (zombies included: a
// killed test binary whose parent is slow to reap it is gone for us).
std::optional<unsigned long long> start_time(pid_t pid) {
  std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  if (!std::getline(stat, line))
    return std::nullopt;
  // pid (comm) state ppid ...: comm may hold spaces, so count after ')';
  // starttime is field 22, the 20th after the closing parenthesis.
  auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()
      || line[close + 2] == 'Z' || line[close + 2] == 'X')
    return std::nullopt;
  auto pos = line.c_str() + close + 1;
  for (int field = 3; field < 22; ++field) {
    while (*pos == ' ')
      ++pos;
    while (*pos && *pos != ' ')
      ++pos;
  }
  char* end;
  auto value = std::strtoull(pos, &end, 10);
  if (end == pos)
    return std::nullopt;
  return value;
}

// actl<pid>.<start> of this process.
std::string owner_tag() {
  auto pid = ::getpid();
  return prefix + std::to_string(pid) + "." + std::to_string(*start_time(pid));
}

// Whether namespace `name` is a lab's whose process no longer exists.
bool is_stale(const std::string& name) {
  auto p = std::strlen(prefix);
  if (name.compare(0, p, prefix) != 0)
    return false;
  char* end;
  auto pid = std::strtol(name.c_str() + p, &end, 10);
  if (end == name.c_str() + p || *end != '.' || pid <= 0)
    return false;
  auto dot = end + 1;
  auto start = std::strtoull(dot, &end, 10);
  if (end == dot || *end != '-')
    return false;
  return start_time(static_cast<pid_t>(pid)) != start;
}

std::string find_ip() {
  std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
  dirs += ":/usr/sbin:/sbin:/usr/bin:/bin";
  for (size_t pos = 0; pos <= dirs.size();) {
    auto colon = dirs.find(':', pos);
    if (colon == std::string::npos)
      colon = dirs.size();
    auto path = dirs.substr(pos, colon - pos) + "/ip";
    if (colon > pos && ::access(path.c_str(), X_OK) == 0)
      return path;
    pos = colon + 1;
  }
  return {};
}

const std::string& ip_path() {
  static const std::string path = find_ip();
  return path;
}

std::string joined(const std::vector<std::string>& args) {
  std::string result = "ip";
  for (auto& a : args)
    result += " " + a;
  return result;
}

// -- processes in a namespace -------------------------------------------------

bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

bool in_namespace(pid_t pid, const struct stat& ns) {
  struct stat st;
  auto path = "/proc/" + std::to_string(pid) + "/ns/net";
  return ::stat(path.c_str(), &st) == 0 && same_file(st, ns);
}

// The live processes in namespace `ns` (zombies have left every namespace),
// found as `ip netns pids` finds them: by their /proc/PID/ns/net.
std::vector<pid_t> pids_in(const struct stat& ns) {
  std::vector<pid_t> result;
  auto self = ::getpid();
  if (auto* dir = ::opendir("/proc")) {
    while (auto* entry = ::readdir(dir)) {
      auto pid = static_cast<pid_t>(std::atoi(entry->d_name));
      if (pid > 0 && pid != self && in_namespace(pid, ns))
        result.push_back(pid);
    }
    ::closedir(dir);
  }
  return result;
}

// SIGKILLs every process in namespace `name` until none is left, or
// `bound` passed; true if none is left. Each victim is signalled through a
// pidfd opened before its namespace is checked again, so a pid reused
// meanwhile is never hit.
bool kill_all(const std::string& name, std::chrono::milliseconds bound) {
  struct stat ns;
  if (::stat(("/run/netns/" + name).c_str(), &ns) != 0)
    return true;
  auto deadline = std::chrono::steady_clock::now() + bound;
  for (;;) {
    std::vector<int> victims;
    for (auto pid : pids_in(ns)) {
      auto fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
      if (fd < 0)
        continue;
      if (in_namespace(pid, ns)
          && ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0) == 0)
        victims.push_back(fd);
      else
        ::close(fd);
    }
    if (victims.empty())
      return true;
    for (auto fd : victims) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      while (::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 0)))
               < 0
             && errno == EINTR) {
      }
      ::close(fd);
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return pids_in(ns).empty();
  }
}

// Kills the processes of namespaces `names` and deletes them; returns what
// is left over, if anything.
std::string teardown(const std::vector<std::string>& names) noexcept {
  std::string problems;
  for (auto& name : names)
    if (!kill_all(name, 5s))
      problems += " processes still run in " + name + ";";
  for (auto& name : names) {
    auto file = "/run/netns/" + name;
    if (::access(file.c_str(), F_OK) != 0)
      continue;
    try {
      netlab::ip({"netns", "del", name});
    } catch (const std::exception& e) {
      problems += std::string{" "} + e.what() + ";";
    }
  }
  return problems;
}

// -- namespaces of the labs of this process, for the watchdog -----------------

std::mutex registry_mtx;

std::vector<std::string>& registry() {
  static std::vector<std::string> names;
  return names;
}

void watchdog_teardown() {
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> guard{registry_mtx};
    names = registry();
  }
  auto problems = teardown(names);
  if (!problems.empty())
    std::fprintf(stderr, "netlab: teardown at watchdog exit:%s\n",
                 problems.c_str());
}

void enlist(const std::vector<std::string>& names) {
  // Outside registry_mtx: the watchdog's thread takes its own lock first.
  static std::once_flag hooked;
  std::call_once(hooked, [] { at_watchdog_exit(watchdog_teardown); });
  std::lock_guard<std::mutex> guard{registry_mtx};
  auto& all = registry();
  all.insert(all.end(), names.begin(), names.end());
}

void delist(const std::vector<std::string>& names) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  auto& all = registry();
  for (auto& name : names)
    for (auto i = all.begin(); i != all.end(); ++i)
      if (*i == name) {
        all.erase(i);
        break;
      }
}

} // namespace

// -- availability -------------------------------------------------------------

std::optional<std::string> netlab::unavailable() {
  static const std::optional<std::string> reason
    = []() -> std::optional<std::string> {
    if (::geteuid() != 0)
      return "not root (network namespaces need CAP_SYS_ADMIN)";
    if (ip_path().empty())
      return "no `ip` binary found (install iproute2)";
    auto probe = owner_tag() + "-probe";
    try {
      ip({"netns", "add", probe});
      ip({"-n", probe, "link", "add", "br0", "type", "bridge"});
      ip({"-n", probe, "link", "add", "v1", "type", "veth", "peer", "name",
          "eth0"});
      ip({"netns", "del", probe});
    } catch (const std::exception& e) {
      teardown({probe});
      return e.what();
    }
    return std::nullopt;
  }();
  return reason;
}

void netlab::skip_if_unavailable() {
  if (auto why = unavailable()) {
    if (std::getenv("ACTORS_REQUIRE_NETNS") != nullptr) {
      // CI runs as root: a lab that cannot be built there is a failure.
      std::printf("FAILED: no netlab here, and ACTORS_REQUIRE_NETNS is set: "
                  "%s\n", why->c_str());
      std::fflush(stdout);
      std::_Exit(1);
    }
    std::printf("SKIPPED: no netlab here: %s\n", why->c_str());
    std::fflush(stdout);
    std::_Exit(skip_code);
  }
}

// -- ip ---------------------------------------------------------------------

std::string netlab::ip(const std::vector<std::string>& args) {
  if (ip_path().empty())
    throw std::runtime_error("`" + joined(args)
                             + "`: no `ip` binary (install iproute2)");
  auto deadline = std::chrono::steady_clock::now() + ip_bound;
  subprocess cmd{ip_path(), args, true};
  auto output = cmd.read_all(ip_bound);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
    deadline - std::chrono::steady_clock::now());
  auto code = cmd.wait(std::max(left, std::chrono::milliseconds{1}));
  if (code && *code == 0)
    return output;
  std::string how = !code     ? "took over 10 s"
                    : *code < 0 ? "killed by signal " + std::to_string(-*code)
                                : "exit code " + std::to_string(*code);
  while (!output.empty() && output.back() == '\n')
    output.pop_back();
  throw std::runtime_error("`" + joined(args) + "` failed (" + how
                           + "): " + output);
}

// -- the lab ----------------------------------------------------------------

netlab::netlab(int hosts) {
  if (hosts < 1 || hosts > 253)
    throw std::invalid_argument("netlab: 1 to 253 hosts, not "
                                + std::to_string(hosts));
  sweep();
  static std::atomic<int> labs{0};
  auto lab = owner_tag() + "-" + std::to_string(labs++);
  for (int i = 0; i < hosts; ++i)
    names_.push_back(lab + "h" + std::to_string(i));
  enlist(names_);
  try {
    for (auto& name : names_) {
      ip({"netns", "add", name});
      ip({"-n", name, "link", "set", "lo", "up"});
    }
    auto& owner = names_[0];
    ip({"-n", owner, "link", "add", "br0", "type", "bridge"});
    ip({"-n", owner, "addr", "add", owner_ip + std::string{"/24"}, "dev",
        "br0"});
    ip({"-n", owner, "link", "set", "br0", "up"});
    for (int i = 1; i < hosts; ++i) {
      auto port = "v" + std::to_string(i);
      ip({"-n", owner, "link", "add", port, "type", "veth", "peer", "name",
          "eth0", "netns", names_[i]});
      ip({"-n", owner, "link", "set", port, "master", "br0", "up"});
      ip({"-n", names_[i], "addr", "add", address(i) + "/24", "dev", "eth0"});
      ip({"-n", names_[i], "link", "set", "eth0", "up"});
    }
  } catch (...) {
    teardown(names_);
    delist(names_);
    throw;
  }
}

netlab::~netlab() {
  auto problems = teardown(names_);
  delist(names_);
  if (!problems.empty())
    std::fprintf(stderr, "netlab: teardown:%s\n", problems.c_str());
}

const std::string& netlab::name(int host) const {
  if (host < 0 || host >= hosts())
    throw std::out_of_range("netlab: no host " + std::to_string(host));
  return names_[static_cast<size_t>(host)];
}

std::string netlab::address(int host) const {
  if (host < 0 || host >= hosts())
    throw std::out_of_range("netlab: no host " + std::to_string(host));
  return "10.213.0." + std::to_string(host + 1);
}

void netlab::check_worker(int host) const {
  if (host < 1 || host >= hosts())
    throw std::out_of_range("netlab: no worker host " + std::to_string(host));
}

subprocess netlab::run(int host, const std::string& path,
                       const std::vector<std::string>& args,
                       const std::vector<std::string>& env, bool with_stderr) {
  subprocess::options opts;
  opts.with_stderr = with_stderr;
  opts.netns = name(host);
  opts.env = env;
  opts.own_group = true;
  return subprocess{path, args, opts};
}

subprocess netlab::helper(int host, const std::string& mode,
                          const std::vector<std::string>& args,
                          const std::vector<std::string>& env,
                          bool with_stderr) {
  subprocess::options opts;
  opts.with_stderr = with_stderr;
  opts.netns = name(host);
  opts.env = env;
  opts.own_group = true;
  return subprocess::helper(mode, args, opts);
}

void netlab::kill_host(int host) {
  if (!kill_all(name(host), 10s))
    throw std::runtime_error("netlab: processes still run in host "
                             + std::to_string(host) + " (" + name(host)
                             + ") 10 s after SIGKILL");
}

void netlab::cut(int host) {
  check_worker(host);
  ip({"-n", names_[0], "link", "set", "v" + std::to_string(host), "down"});
}

void netlab::restore(int host) {
  check_worker(host);
  ip({"-n", names_[0], "link", "set", "v" + std::to_string(host), "up"});
}

void netlab::sweep() {
  std::vector<std::string> stale;
  if (auto* dir = ::opendir("/run/netns")) {
    while (auto* entry = ::readdir(dir))
      if (is_stale(entry->d_name))
        stale.emplace_back(entry->d_name);
    ::closedir(dir);
  }
  // Another process may sweep the same ones at once: what it removed
  // first is no problem.
  teardown(stale);
}

} // namespace support
