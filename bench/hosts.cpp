// A pool spread over hosts (issue 8), side by side with peers/hosts.py:
// task throughput of a map over three hosts against the same map on local
// workers, and how long the pool takes to notice a lost host.
//
// The hosts are Linux network namespaces of this machine: an owner
// namespace with a bridge (10.231.0.1/24) and two worker namespaces, each
// joined to the bridge by a veth pair (10.231.0.11, .12); nothing is added
// to the root namespace. The pool (2 local workers) listens in the owner
// namespace; each worker namespace runs a worker host of 2 workers (this
// program with --actors-worker). All of them share this machine's cores:
// the hosts add no cores, so the spread figures show the cost of the
// network path, not a speed-up.
//
// Roles of the one program:
//   bench_hosts                 sweeps namespaces left by a killed run,
//                               makes its own, runs the owner role in them,
//                               and removes them whatever happens
//   bench_hosts --owner PREFIX  the measurements, in the owner namespace
//   bench_hosts --actors-worker HOST:PORT ...   a worker host (actors::init)
// Without root or network namespaces it prints "skipped: WHY", exits 0.
// Usage: bench_hosts   (as root)

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "actors/all.hpp"
#include "measure.hpp"

using namespace std::chrono_literals;

namespace {

constexpr const char* owner_ip = "10.231.0.1";
constexpr const char* prefix_stem = "abh"; // namespaces: abhPID-owner, ...
constexpr int hosts = 2;                   // worker namespaces
constexpr int host_workers = 2;            // worker processes per host
constexpr auto lost_after = 1000ms;        // pool_options::lost_after
constexpr int runs = 7;                    // of each trivial map
constexpr int cpu_runs = 3;                // of each map of 1 ms tasks
constexpr int losses = 3;                  // of each way to lose a host
constexpr auto owner_bound = 400s;         // the whole owner role

int trivial(int x) {
  return x + 1;
}

double cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

// Arithmetic for 1 ms of this thread's CPU time: the same task as the
// peer's, however fast each language computes and however busy the
// machine.
double burn(int seed) {
  auto end = cpu_seconds() + 1e-3;
  volatile double x = seed; // volatile: the loop must really run
  while (cpu_seconds() < end)
    for (int i = 0; i < 1000; ++i)
      x = x * 1.0000001 + 1e-9;
  return x;
}

// Which host ran the task: a worker's parent process.
int burn_where(int seed) {
  burn(seed);
  return static_cast<int>(::getppid());
}

std::string self_exe() {
  char buf[4096] = {};
  auto n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::string ip_program() {
  for (auto p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (::access(p, X_OK) == 0)
      return p;
  return {};
}

std::vector<char*> argv_of(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

// A forked child's signal mask: none blocked (the mask survives exec).
void unblock_all() {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Runs `ip ARGS` in this process's network namespace; its stdout and
// stderr go to `out`. True if it exited with 0.
bool ip(std::vector<std::string> args, std::string* out = nullptr) {
  static const auto program = ip_program();
  if (program.empty())
    return false;
  args.insert(args.begin(), program);
  auto argv = argv_of(args);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return false;
  auto pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    unblock_all();
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (;;) {
    auto n = ::read(fds[0], buf, sizeof(buf));
    if (n > 0)
      text.append(buf, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR)
      break;
  }
  ::close(fds[0]);
  if (out != nullptr)
    *out = text;
  int status = 0;
  if (pid < 0)
    return false;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string ns_name(const std::string& prefix, int host) {
  return prefix + (host == 0 ? "-owner" : "-h" + std::to_string(host));
}

// Starts `args` in network namespace `ns`; it is killed when the calling
// thread ends (PR_SET_PDEATHSIG). -1 if it could not be started.
pid_t spawn_in(const std::string& ns, std::vector<std::string> args) {
  int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  auto argv = argv_of(args);
  auto parent = ::getpid();
  std::fflush(nullptr);
  auto pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    unblock_all();
    if (::getppid() != parent || ::setns(fd, CLONE_NEWNET) != 0)
      ::_exit(127);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fd);
  return pid;
}

// Makes the namespaces of `prefix` and their links: empty, or what failed.
std::string make_namespaces(const std::string& prefix) {
  auto owner = ns_name(prefix, 0);
  std::vector<std::vector<std::string>> steps{
      {"netns", "add", owner},
      {"-n", owner, "link", "add", "br0", "type", "bridge"},
      {"-n", owner, "addr", "add", std::string{owner_ip} + "/24", "dev", "br0"},
      {"-n", owner, "link", "set", "lo", "up"},
      {"-n", owner, "link", "set", "br0", "up"}};
  for (int h = 1; h <= hosts; ++h) {
    auto ns = ns_name(prefix, h);
    auto veth = "vh" + std::to_string(h); // the owner's end
    auto addr = "10.231.0." + std::to_string(10 + h) + "/24";
    steps.push_back({"netns", "add", ns});
    steps.push_back({"-n", owner, "link", "add", veth, "type", "veth", "peer",
                     "name", "eth0", "netns", ns});
    steps.push_back({"-n", owner, "link", "set", veth, "master", "br0"});
    steps.push_back({"-n", owner, "link", "set", veth, "up"});
    steps.push_back({"-n", ns, "addr", "add", addr, "dev", "eth0"});
    steps.push_back({"-n", ns, "link", "set", "lo", "up"});
    steps.push_back({"-n", ns, "link", "set", "eth0", "up"});
  }
  for (auto& step : steps) {
    std::string out;
    if (!ip(step, &out)) {
      std::string what = "ip";
      for (auto& a : step)
        what += " " + a;
      out.erase(out.find_last_not_of('\n') + 1);
      return what + " failed" + (out.empty() ? "" : " (" + out + ")");
    }
  }
  return {};
}

// The pool's key of run `prefix` (made by the pool, mode 0600).
std::string key_path(const std::string& prefix) {
  return "/tmp/" + prefix + ".key";
}

// Kills what still runs in namespace `ns` and removes it and its run's key
// (gone or not).
void remove_namespace(const std::string& ns) {
  std::string pids;
  if (ip({"netns", "pids", ns}, &pids)) {
    std::size_t i = 0;
    while (i < pids.size()) {
      auto end = pids.find('\n', i);
      if (end == std::string::npos)
        end = pids.size();
      auto pid = std::atoi(pids.substr(i, end - i).c_str());
      if (pid > 0)
        ::kill(pid, SIGKILL);
      i = end + 1;
    }
  }
  ip({"netns", "del", ns});
  ::unlink(key_path(ns.substr(0, ns.rfind('-'))).c_str());
}

void remove_namespaces(const std::string& prefix) {
  for (int h = hosts; h >= 0; --h)
    remove_namespace(ns_name(prefix, h));
}

std::string comm_of(const std::string& pid) {
  std::ifstream in{"/proc/" + pid + "/comm"};
  std::string name;
  std::getline(in, name);
  return name;
}

// Removes the namespaces of runs that were killed (abhPID-... whose PID is
// not a bench_hosts any more); those of a run going on stay.
void sweep() {
  std::string list;
  if (!ip({"netns", "list"}, &list))
    return;
  std::size_t i = 0;
  while (i < list.size()) {
    auto end = list.find('\n', i);
    if (end == std::string::npos)
      end = list.size();
    auto name = list.substr(i, end - i);
    name = name.substr(0, name.find(' ')); // "NAME (id: N)"
    i = end + 1;
    auto stem = std::strlen(prefix_stem);
    auto dash = name.find('-');
    if (name.compare(0, stem, prefix_stem) != 0 || dash == std::string::npos
        || dash == stem || name.find_first_not_of("0123456789", stem) != dash)
      continue;
    auto pid = name.substr(stem, dash - stem);
    if (comm_of(pid) != comm_of("self"))
      remove_namespace(name);
  }
}

int skipped(const std::string& why) {
  std::printf("libactors hosts: skipped: %s\n", why.c_str());
  return 0;
}

// Waits for the owner role `pid` within owner_bound; a signal in `wanted`
// (blocked) or the bound kills it. Its exit code, or 1.
int wait_owner(pid_t pid, const sigset_t& wanted) {
  auto deadline = clock_type::now() + owner_bound;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
        deadline - clock_type::now());
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    siginfo_t info{};
    timespec ts{static_cast<time_t>(left.count() / 1'000'000'000),
                static_cast<long>(left.count() % 1'000'000'000)};
    int sig = left.count() > 0 ? ::sigtimedwait(&wanted, &info, &ts) : -1;
    if (sig == SIGCHLD || (sig < 0 && errno == EINTR))
      continue;
    if (sig < 0)
      std::fprintf(stderr, "bench_hosts: the owner took more than %lld s\n",
                   static_cast<long long>(owner_bound.count()));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return sig < 0 ? 1 : 128 + sig;
  }
}

// The first role: namespaces made, the owner run in them, namespaces gone.
int controller() {
  if (::geteuid() != 0)
    return skipped("not root (network namespaces need root)");
  if (ip_program().empty())
    return skipped("no ip program (iproute2)");
  // Signals wait until the namespaces are removed again.
  sigset_t wanted;
  sigemptyset(&wanted);
  for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP})
    sigaddset(&wanted, sig);
  ::sigprocmask(SIG_BLOCK, &wanted, nullptr);
  sweep();
  auto prefix = prefix_stem + std::to_string(::getpid());
  auto why = make_namespaces(prefix);
  if (!why.empty()) {
    remove_namespaces(prefix);
    return skipped("no network namespaces: " + why);
  }
  int code = 1;
  auto pid = spawn_in(ns_name(prefix, 0), {self_exe(), "--owner", prefix});
  if (pid > 0)
    code = wait_owner(pid, wanted);
  remove_namespaces(prefix);
  return code;
}

// Median, min and max of a workload's runs.
struct series {
  std::vector<double> xs;

  double median() const {
    auto s = xs;
    std::sort(s.begin(), s.end());
    return s.empty() ? 0 : s[s.size() / 2];
  }
};

void report(const char* what, const series& s, const char* unit,
            double scale = 1) {
  auto [lo, hi] = std::minmax_element(s.xs.begin(), s.xs.end());
  std::printf("libactors %s: %.0f %s (median of %zu, %.0f-%.0f)\n", what,
              s.median() * scale, unit, s.xs.size(), *lo * scale, *hi * scale);
}

// Polls until the pool has at most `n` remote workers: seconds, or -1
// after 10 x lost_after.
double time_until_drop(actors::pool& p, std::size_t n,
                       clock_type::time_point t0) {
  while (p.remote_workers() > n) {
    if (clock_type::now() - t0 > 10 * lost_after)
      return -1;
    std::this_thread::sleep_for(1ms);
  }
  return seconds_since(t0);
}

// The owner role's measurements; `started` are the worker hosts' pids.
void measure(const std::string& prefix, const std::string& key,
             std::vector<pid_t>& started) {
  auto self = self_exe();
  actors::pool local{2};
  actors::pool_options opts;
  opts.listen = std::string{owner_ip} + ":0";
  opts.key_file = key;
  opts.lost_after = lost_after;
  actors::pool spread{2, opts};
  auto address = std::string{owner_ip} + ":" + std::to_string(spread.port());
  auto start_host = [&](int h) {
    started[h]
        = spawn_in(ns_name(prefix, h + 1),
                   {self, "--actors-worker", address, "--actors-key-file", key,
                    "--actors-processes", std::to_string(host_workers)});
    if (started[h] < 0)
      throw std::runtime_error("cannot start worker host " + address);
  };
  const std::size_t all_remote = hosts * host_workers;
  auto all_joined = [&] {
    if (!spread.wait_for_remote_workers(all_remote, 30s))
      throw std::runtime_error(std::to_string(spread.remote_workers())
                               + " of the remote workers joined in 30 s");
  };
  for (int h = 0; h < hosts; ++h)
    start_host(h);
  all_joined();
  // Warm-up, and proof that every host takes tasks.
  local.map(trivial, std::vector<int>(100, 0));
  std::set<int> where;
  for (int pid : spread.map(burn_where, std::vector<int>(120, 0), 1))
    where.insert(pid);
  std::printf("libactors note: the warm-up ran on %zu of %d hosts; the "
              "hosts share this machine's %u cores (no speed-up to expect)\n",
              where.size(), hosts + 1, std::thread::hardware_concurrency());

  std::vector<int> big(100000), cpu(2000);
  std::iota(big.begin(), big.end(), 0);
  std::iota(cpu.begin(), cpu.end(), 0);
  series local_trivial, spread_trivial, local_cpu, spread_cpu;
  auto rate = [](auto& pool, auto fn, const std::vector<int>& xs) {
    auto t0 = clock_type::now();
    auto rs = pool.map(fn, xs);
    auto per_second = static_cast<double>(xs.size()) / seconds_since(t0);
    if (rs.size() != xs.size())
      throw std::runtime_error("a map returned too few results");
    return per_second;
  };
  // Alternately, so that both see the same machine.
  for (int r = 0; r < runs; ++r) {
    local_trivial.xs.push_back(rate(local, trivial, big));
    spread_trivial.xs.push_back(rate(spread, trivial, big));
  }
  for (int r = 0; r < cpu_runs; ++r) {
    local_cpu.xs.push_back(rate(local, burn, cpu));
    spread_cpu.xs.push_back(rate(spread, burn, cpu));
  }
  report("map 100k trivial, local", local_trivial, "tasks/s");
  report("map 100k trivial, 3 hosts on same cores", spread_trivial, "tasks/s");
  std::printf("libactors map 100k trivial, 3 hosts / local: %.3g x\n",
              spread_trivial.median() / local_trivial.median());
  report("map 2000 x 1 ms, local", local_cpu, "tasks/s");
  report("map 2000 x 1 ms, 3 hosts on same cores", spread_cpu, "tasks/s");
  std::printf("libactors map 2000 x 1 ms, 3 hosts / local: %.3g x\n",
              spread_cpu.median() / local_cpu.median());

  // A host lost three ways: its link cut while the pool is at rest (only
  // keepalive probes on the link) or during a map (tasks in flight), or
  // the host killed. Timed until the pool has dropped both its workers.
  const auto rest = all_remote - host_workers;
  // After a cut the host's workers find their connections failed, and
  // their host starts fresh ones, which join again once the link is back;
  // a host that has ended meanwhile is started afresh.
  auto rejoin = [&](int h) {
    auto deadline = clock_type::now() + 30s;
    while (spread.remote_workers() < all_remote
           && clock_type::now() < deadline) {
      if (::waitpid(started[h], nullptr, WNOHANG) == started[h])
        start_host(h);
      std::this_thread::sleep_for(10ms);
    }
    all_joined();
  };
  enum class loss { cut_at_rest, cut_mid_map, killed };
  std::vector<int> long_map(4000);
  auto lose = [&](loss how) {
    rejoin(0);
    std::optional<decltype(spread.map_async(burn, long_map, 1))> busy;
    if (how == loss::cut_mid_map)
      busy = spread.map_async(burn, long_map, 1);
    std::this_thread::sleep_for(300ms);
    double t = -1;
    if (how == loss::killed) {
      auto t0 = clock_type::now();
      ::kill(started[hosts - 1], SIGKILL);
      t = time_until_drop(spread, rest, t0);
      ::waitpid(started[hosts - 1], nullptr, 0);
      start_host(hosts - 1);
    } else {
      if (!ip({"link", "set", "vh1", "down"}))
        throw std::runtime_error("ip link set vh1 down failed");
      t = time_until_drop(spread, rest, clock_type::now());
      if (!ip({"link", "set", "vh1", "up"}))
        throw std::runtime_error("ip link set vh1 up failed");
    }
    if (busy && busy->get(120s).size() != long_map.size())
      throw std::runtime_error("a map over a lost host came back short");
    if (t < 0)
      throw std::runtime_error("a lost host was not dropped in 10 s");
    return t;
  };
  series at_rest, mid_map, killed;
  for (int i = 0; i < losses; ++i) {
    at_rest.xs.push_back(lose(loss::cut_at_rest));
    mid_map.xs.push_back(lose(loss::cut_mid_map));
    killed.xs.push_back(lose(loss::killed));
  }
  char setting[32];
  std::snprintf(setting, sizeof(setting), " (lost_after %g s)",
                std::chrono::duration<double>(lost_after).count());
  auto name = [&](const char* how) {
    return std::string{"lost host, "} + how + setting;
  };
  report(name("cut at rest").c_str(), at_rest, "ms", 1e3);
  report(name("cut mid-map").c_str(), mid_map, "ms", 1e3);
  report(name("SIGKILL").c_str(), killed, "ms", 1e3);
  rejoin(0);
  spread.close();
  spread.join();
  local.close();
  local.join();
}

int owner(const std::string& prefix) {
  auto key = key_path(prefix);
  ::unlink(key.c_str());
  std::vector<pid_t> started(hosts, -1);
  int code = 0;
  try {
    measure(prefix, key, started);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_hosts: %s\n", e.what());
    code = 1;
  }
  // The hosts end once the pool lets them go; within 10 s, or killed.
  for (auto pid : started) {
    if (pid <= 0)
      continue;
    bool ended = false;
    for (int i = 0; i < 1000 && !ended; ++i) {
      ended = ::waitpid(pid, nullptr, WNOHANG) != 0;
      if (!ended)
        std::this_thread::sleep_for(10ms);
    }
    if (!ended) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  ::unlink(key.c_str());
  return code;
}

} // namespace

int main(int argc, char** argv) {
  // The first role needs no libactors: it only forks and execs.
  if (argc == 1)
    return controller();
  actors::init(argc, argv); // a worker host runs here and never returns
  if (argc == 3 && std::strcmp(argv[1], "--owner") == 0)
    return owner(argv[2]);
  std::fprintf(stderr, "usage: bench_hosts   (as root)\n");
  return 2;
}
