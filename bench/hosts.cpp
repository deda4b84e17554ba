// A pool spread over hosts (issue 8), side by side with peers/hosts.py:
// task throughput of a map over three hosts against the same map on local
// workers, how long the pool takes to notice a lost host, the round trip
// of a 16-byte string between two hosts through actors::listener and
// actors::client and to an actor placed on a worker host (Python's peer
// of both: multiprocessing.connection's Listener and Client with an
// authkey), and how long a supervisor takes to restart an actor of a
// killed host on the other one (issue 23).
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
// The hosts' traffic is TLS 1.3, as by default; every row but the plain
// ones measures that. A plain twin of the owner, a second pool in the owner
// namespace with worker hosts of its own in the same worker namespaces,
// runs with ACTORS_INSECURE_PLAINTEXT_BETWEEN_HOSTS=1 (read once per
// process, so plain needs processes of its own); its trivial maps
// alternate with the owner's. "3 hosts, TLS / plain" is the rate of the
// one over the other: what encryption costs a map over hosts (target: at
// least 0.8).
//
// The round trips: a listener in the owner namespace (the owner's for TLS,
// the twin's for plain) echoes what a client in worker namespace h1 sends,
// 2000 round trips to warm up, then 20000 timed; the client is started
// afresh for each series, by the owner or the twin, whose environment (and
// so plain setting) it inherits, and TLS and plain series alternate. The
// "... CPU" rows are the CPU time per round trip of both processes, whole,
// over the timed round trips: the listener's process counts its idle pools
// too, which take next to none (keepalives on their hosts' links).
//
// Roles of the one program:
//   bench_hosts                 sweeps namespaces left by a killed run,
//                               makes its own, runs the owner role in them,
//                               and removes them whatever happens
//   bench_hosts --owner PREFIX  the measurements, in the owner namespace
//   bench_hosts --owner PREFIX plain   the plain twin, started by the owner
//   bench_hosts --rt-client HOST:PORT KEYFILE N   the round trips' client,
//                               started by the owner or the twin in h1
//   bench_hosts --actors-worker HOST:PORT ...   a worker host (actors::init)
// Without root or network namespaces it prints "skipped: WHY", exits 0.
// Usage: bench_hosts   (as root)

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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
constexpr int trivial_tasks = 100000;      // in each trivial map
constexpr int cpu_runs = 3;                // of each map of 1 ms tasks
constexpr int losses = 3;                  // of each way to lose a host
constexpr int rt_runs = 5;                 // of each series of round trips
constexpr int rt_warm_up = 2000;           // untimed round trips in each
constexpr int rt_timed = 20000;            // timed round trips in each
constexpr auto owner_bound = 400s;         // the whole owner role
constexpr std::size_t all_remote = hosts * host_workers;

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

// Starts `args` in network namespace `ns`, with `in` as its stdin unless
// -1; it is killed when the calling thread ends (PR_SET_PDEATHSIG). -1 if
// it could not be started.
pid_t spawn_in(const std::string& ns, std::vector<std::string> args,
               int in = -1) {
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
    if (::getppid() != parent || ::setns(fd, CLONE_NEWNET) != 0
        || (in >= 0 && ::dup2(in, 0) != 0))
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

// The pool that worker hosts join over the bridge.
actors::pool_options spread_options(const std::string& key) {
  actors::pool_options opts;
  opts.listen = std::string{owner_ip} + ":0";
  opts.key_file = key;
  opts.lost_after = lost_after;
  return opts;
}

// Starts worker host `h` (from 0) of pool `p` in its namespace: its pid.
pid_t spawn_host(const std::string& prefix, const std::string& key,
                 const actors::pool& p, int h) {
  auto address = std::string{owner_ip} + ":" + std::to_string(p.port());
  auto pid
      = spawn_in(ns_name(prefix, h + 1),
                 {self_exe(), "--actors-worker", address, "--actors-key-file",
                  key, "--actors-processes", std::to_string(host_workers)});
  if (pid < 0)
    throw std::runtime_error("cannot start worker host " + address);
  return pid;
}

void all_joined(actors::pool& p) {
  if (!p.wait_for_remote_workers(all_remote, 30s))
    throw std::runtime_error(std::to_string(p.remote_workers())
                             + " of the remote workers joined in 30 s");
}

// Warm-up, and proof that every host takes tasks: the pids of the hosts
// that ran some.
std::set<int> warm_up(actors::pool& p) {
  std::set<int> where;
  for (int pid : p.map(burn_where, std::vector<int>(120, 0), 1))
    where.insert(pid);
  return where;
}

std::vector<int> trivial_inputs() {
  std::vector<int> xs(trivial_tasks);
  std::iota(xs.begin(), xs.end(), 0);
  return xs;
}

// Tasks per second of one map of `fn` over `xs`.
template <class F>
double rate(actors::pool& p, F fn, const std::vector<int>& xs) {
  auto t0 = clock_type::now();
  auto rs = p.map(fn, xs);
  auto per_second = static_cast<double>(xs.size()) / seconds_since(t0);
  if (rs.size() != xs.size())
    throw std::runtime_error("a map returned too few results");
  return per_second;
}

// The client's role (--rt-client ADDRESS KEYFILE N), in worker namespace
// h1: round trips of a 16-byte string to the listener at ADDRESS,
// rt_warm_up of them, then N timed. Its figures, microseconds per round
// trip and its CPU seconds over the timed ones, go back as a last message,
// whose echo tells that they have arrived before this process ends.
int rt_client(const std::string& address, const std::string& key, int n) {
  try {
    auto conn = actors::client<std::string>(address, key, 10s);
    const std::string message(16, 'x');
    auto round_trip = [&] {
      conn.send(message);
      if (conn.recv() != message)
        throw std::runtime_error("a round trip came back changed");
    };
    for (int i = 0; i < rt_warm_up; ++i)
      round_trip();
    auto c0 = cpu_seconds_self();
    auto t0 = clock_type::now();
    for (int i = 0; i < n; ++i)
      round_trip();
    auto us = seconds_since(t0) / n * 1e6;
    char figures[64];
    std::snprintf(figures, sizeof(figures), "%.17g %.17g", us,
                  cpu_seconds_self() - c0);
    conn.send(figures);
    conn.recv();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_hosts (round-trip client): %s\n", e.what());
    return 1;
  }
}

// One series of round trips: microseconds per round trip, and CPU
// microseconds of both processes per round trip.
struct round_trips {
  double us = 0;
  double cpu_us = 0;
};

// A series between a listener of this process, in the owner namespace,
// which echoes every message, and a client started for it in h1.
round_trips time_round_trips(const std::string& prefix,
                             const std::string& key) {
  actors::listener<std::string> server{std::string{owner_ip} + ":0", key};
  auto pid = spawn_in(ns_name(prefix, 1),
                      {self_exe(), "--rt-client", server.address(), key,
                       std::to_string(rt_timed)});
  if (pid < 0)
    throw std::runtime_error("cannot start the round trips' client");
  auto conn = server.accept(30s);
  auto echo = [&conn](int n) {
    for (int i = 0; i < n; ++i)
      conn.send(conn.recv());
  };
  echo(rt_warm_up);
  auto c0 = cpu_seconds_self();
  echo(rt_timed);
  auto cpu = cpu_seconds_self() - c0;
  auto figures = conn.recv();
  conn.send(figures);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  round_trips r;
  double client_cpu = 0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0
      || std::sscanf(figures.c_str(), "%lf %lf", &r.us, &client_cpu) != 2)
    throw std::runtime_error("the round trips' client failed");
  r.cpu_us = (cpu + client_cpu) / rt_timed * 1e6;
  return r;
}

// Echoes every string: the actor of the actor round trips; answers a
// number with the pid of its worker host (its process's parent).
caf::behavior echo_actor(caf::event_based_actor*) {
  return {[](const std::string& x) { return x; },
          [](int) { return static_cast<int>(::getppid()); }};
}

// The worker host of `echo` (an echo_actor), or -1 if it does not answer.
int host_of(const caf::actor& echo) {
  caf::scoped_actor self{actors::system()};
  int host = -1;
  self->request(echo, 2s, 0).receive([&](int pid) { host = pid; },
                                    [](caf::error&) {});
  return host;
}

// CPU seconds of process `pid` so far (utime and stime of /proc/PID/stat).
double cpu_seconds_of(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string stat;
  std::getline(in, stat);
  auto rest = stat.substr(stat.rfind(')') + 2); // after "pid (comm) "
  std::istringstream fields{rest};
  std::string skip;
  for (int i = 3; i < 14; ++i) // fields 3 to 13
    fields >> skip;
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A series of actor round trips: a request of a 16-byte string from this
// process to an echo actor that `spread` places on one of its worker
// hosts, rt_warm_up of them, then rt_timed timed. CPU: this process and
// the actor's worker process.
round_trips time_actor_round_trips(actors::pool& spread) {
  actors::actor_options where;
  where.hosts = &spread;
  auto echo = actors::spawn(where, echo_actor);
  caf::scoped_actor self{actors::system()};
  const std::string message(16, 'x');
  auto round_trip = [&] {
    self->request(echo.handle(), 10s, message)
      .receive(
        [&](const std::string& x) {
          if (x != message)
            throw std::runtime_error("an actor round trip came back changed");
        },
        [](caf::error& err) {
          throw std::runtime_error("an actor round trip failed: "
                                   + actors::describe(err));
        });
  };
  for (int i = 0; i < rt_warm_up; ++i)
    round_trip();
  auto c0 = cpu_seconds_self() + cpu_seconds_of(echo.pid());
  auto t0 = clock_type::now();
  for (int i = 0; i < rt_timed; ++i)
    round_trip();
  round_trips r;
  r.us = seconds_since(t0) / rt_timed * 1e6;
  r.cpu_us = (cpu_seconds_self() + cpu_seconds_of(echo.pid()) - c0)
             / rt_timed * 1e6;
  echo.stop(10s);
  return r;
}

// The plain twin and its owner talk over a SOCK_SEQPACKET socket, one
// message at a time. True if a message of `n` bytes came, false if the
// other side has closed it.
bool receive(int fd, void* message, std::size_t n) {
  ssize_t got = 0;
  do
    got = ::recv(fd, message, n, 0);
  while (got < 0 && errno == EINTR);
  return got == static_cast<ssize_t>(n);
}

void send_message(int fd, const void* message, std::size_t n) {
  if (::send(fd, message, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n))
    throw std::runtime_error("the plain twin's socket is closed");
}

// What the owner asks of the plain twin: one message each.
enum class twin_task : char {
  map = 'm',
  round_trips = 'r',
  actor_round_trips = 'a'
};

// The plain twin's role (--owner PREFIX plain): a pool like the owner's
// over worker hosts of its own (`started`), which inherit its plain
// setting, as its round trips' clients do. Once they have joined and it
// has warmed up, it says so on its stdin (the owner's socket); then per
// message from there it maps the trivial tasks once and sends back the
// rate, or times a series of round trips and sends back its figures,
// until the owner closes it.
void twin(const std::string& prefix, const std::string& key,
          std::vector<pid_t>& started) {
  actors::pool spread{2, spread_options(key)};
  for (int h = 0; h < hosts; ++h)
    started[h] = spawn_host(prefix, key, spread, h);
  all_joined(spread);
  warm_up(spread);
  auto big = trivial_inputs();
  char ready = 1;
  send_message(0, &ready, 1);
  twin_task task{};
  while (receive(0, &task, 1)) {
    if (task == twin_task::map) {
      auto r = rate(spread, trivial, big);
      send_message(0, &r, sizeof r);
    } else {
      auto r = task == twin_task::round_trips ? time_round_trips(prefix, key)
                                               : time_actor_round_trips(spread);
      send_message(0, &r, sizeof r);
    }
  }
  spread.close();
  spread.join();
}

// The owner's side of the plain twin, which runs in the owner namespace
// with a socket to this on its stdin. Closing it ends the twin: it lets
// its hosts go and exits.
class plain_twin {
public:
  explicit plain_twin(const std::string& prefix) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
      throw std::runtime_error("cannot make the plain twin's socket");
    fd_ = sv[0];
    pid_ = spawn_in(ns_name(prefix, 0),
                    {self_exe(), "--owner", prefix, "plain"}, sv[1]);
    ::close(sv[1]); // so that a twin that failed to start reads as closed
  }

  plain_twin(const plain_twin&) = delete;
  plain_twin& operator=(const plain_twin&) = delete;

  ~plain_twin() {
    ::close(fd_);
    while (pid_ > 0 && ::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }

  // Waits until its hosts have joined and it has warmed up.
  void ready() {
    char c = 0;
    if (!receive(fd_, &c, 1))
      throw std::runtime_error("the plain twin ended before it was ready");
  }

  // Tasks per second of one map of the trivial tasks over its hosts.
  double rate() {
    auto task = twin_task::map;
    double r = 0;
    send_message(fd_, &task, 1);
    if (!receive(fd_, &r, sizeof r))
      throw std::runtime_error("the plain twin ended during a map");
    return r;
  }

  // A series of round trips to its listener, or with `actor` to an actor
  // on one of its hosts, in plain text.
  round_trips time_round_trips(bool actor = false) {
    auto task = actor ? twin_task::actor_round_trips : twin_task::round_trips;
    round_trips r;
    send_message(fd_, &task, 1);
    if (!receive(fd_, &r, sizeof r))
      throw std::runtime_error("the plain twin ended during round trips");
    return r;
  }

private:
  int fd_ = -1;
  pid_t pid_ = -1;
};

// The owner role's measurements; `started` are the worker hosts' pids.
void measure(const std::string& prefix, const std::string& key,
             std::vector<pid_t>& started) {
  actors::pool local{2};
  actors::pool spread{2, spread_options(key)};
  auto start_host
      = [&](int h) { started[h] = spawn_host(prefix, key, spread, h); };
  for (int h = 0; h < hosts; ++h)
    start_host(h);
  // The twin starts meanwhile, now that this pool has made the key it
  // shares; it ends before the hosts are lost below (a cut link is its
  // hosts' too).
  std::optional<plain_twin> plain{std::in_place, prefix};
  all_joined(spread);
  local.map(trivial, std::vector<int>(100, 0));
  auto where = warm_up(spread);
  std::printf("libactors note: the warm-up ran on %zu of %d hosts; the "
              "hosts share this machine's %u cores (no speed-up to expect)\n",
              where.size(), hosts + 1, std::thread::hardware_concurrency());

  auto big = trivial_inputs();
  std::vector<int> cpu(2000);
  std::iota(cpu.begin(), cpu.end(), 0);
  series local_trivial, spread_trivial, plain_trivial, local_cpu, spread_cpu;
  plain->ready();
  // Alternately, so that all see the same machine.
  for (int r = 0; r < runs; ++r) {
    local_trivial.xs.push_back(rate(local, trivial, big));
    spread_trivial.xs.push_back(rate(spread, trivial, big));
    plain_trivial.xs.push_back(plain->rate());
  }
  series tls_rt, tls_rt_cpu, plain_rt, plain_rt_cpu;
  series tls_actor, tls_actor_cpu, plain_actor, plain_actor_cpu;
  auto add = [](series& time, series& cpu, const round_trips& r) {
    time.xs.push_back(r.us);
    cpu.xs.push_back(r.cpu_us);
  };
  for (int r = 0; r < rt_runs; ++r) {
    add(tls_rt, tls_rt_cpu, time_round_trips(prefix, key));
    add(plain_rt, plain_rt_cpu, plain->time_round_trips());
    add(tls_actor, tls_actor_cpu, time_actor_round_trips(spread));
    add(plain_actor, plain_actor_cpu, plain->time_round_trips(true));
  }
  plain.reset();
  for (int r = 0; r < cpu_runs; ++r) {
    local_cpu.xs.push_back(rate(local, burn, cpu));
    spread_cpu.xs.push_back(rate(spread, burn, cpu));
  }
  report("map 100k trivial, local", local_trivial, "tasks/s");
  report("map 100k trivial, 3 hosts on same cores", spread_trivial, "tasks/s");
  report("map 100k trivial, 3 hosts, plain", plain_trivial, "tasks/s");
  std::printf("libactors map 100k trivial, 3 hosts / local: %.3g x\n",
              spread_trivial.median() / local_trivial.median());
  std::printf("libactors map 100k trivial, 3 hosts, TLS / plain: %.3g x\n",
              spread_trivial.median() / plain_trivial.median());
  report("connection round trip across hosts, TLS", tls_rt, "us");
  report("connection round trip across hosts, TLS CPU", tls_rt_cpu, "us");
  report("connection round trip across hosts, plain", plain_rt, "us");
  report("connection round trip across hosts, plain CPU", plain_rt_cpu, "us");
  report("actor round trip across hosts, TLS", tls_actor, "us");
  report("actor round trip across hosts, TLS CPU", tls_actor_cpu, "us");
  report("actor round trip across hosts, plain", plain_actor, "us");
  report("actor round trip across hosts, plain CPU", plain_actor_cpu, "us");
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
    all_joined(spread);
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
  // A supervisor's child, an actor on a worker host, whose host is killed:
  // from the kill until the child answers on the other host.
  auto restart_elsewhere = [&] {
    rejoin(0);
    actors::child_spec spec;
    spec.id = "echo";
    spec.start = [&spread] {
      actors::actor_options where;
      where.hosts = &spread;
      return actors::spawn(where, echo_actor).handle();
    };
    actors::supervisor sup{{actors::strategy::one_for_one, 10, 60s}, {spec}};
    auto before = sup.child("echo");
    auto host = std::find(started.begin(), started.end(), host_of(before));
    if (host == started.end())
      throw std::runtime_error("the supervised actor is on no worker host");
    auto h = static_cast<int>(host - started.begin());
    auto t0 = clock_type::now();
    ::kill(started[h], SIGKILL); // its workers die with it
    double t = -1;
    while (clock_type::now() < t0 + 30s) {
      auto now = sup.child("echo");
      if (now && now != before && host_of(now) > 0) {
        t = seconds_since(t0);
        break;
      }
      std::this_thread::sleep_for(1ms); // the resolution of the figure
    }
    ::waitpid(started[h], nullptr, 0);
    start_host(h);
    sup.stop();
    if (t < 0)
      throw std::runtime_error("a supervised actor of a killed host was not "
                               "restarted elsewhere within 30 s");
    return t;
  };
  series at_rest, mid_map, killed, restarted;
  for (int i = 0; i < losses; ++i) {
    at_rest.xs.push_back(lose(loss::cut_at_rest));
    mid_map.xs.push_back(lose(loss::cut_mid_map));
    killed.xs.push_back(lose(loss::killed));
    restarted.xs.push_back(restart_elsewhere());
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
  report("lost host, supervisor restart elsewhere", restarted, "ms", 1e3);
  rejoin(0);
  spread.close();
  spread.join();
  local.close();
  local.join();
}

// The owner role, or with `plain` its twin, which shares its key.
int owner(const std::string& prefix, bool plain) {
  auto key = key_path(prefix);
  if (!plain)
    ::unlink(key.c_str());
  std::vector<pid_t> started(hosts, -1);
  int code = 0;
  try {
    if (plain)
      twin(prefix, key, started);
    else
      measure(prefix, key, started);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_hosts%s: %s\n", plain ? " (plain twin)" : "",
                 e.what());
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
  if (!plain)
    ::unlink(key.c_str());
  return code;
}

} // namespace

int main(int argc, char** argv) {
  // The first role needs no libactors: it only forks and execs.
  if (argc == 1)
    return controller();
  bool owner_role = argc >= 3 && std::strcmp(argv[1], "--owner") == 0;
  bool plain = owner_role && argc == 4 && std::strcmp(argv[3], "plain") == 0;
  // Before actors::init, whose fork server keeps the environment of then;
  // the twin's worker hosts inherit it.
  if (plain)
    ::setenv("ACTORS_INSECURE_PLAINTEXT_BETWEEN_HOSTS", "1", 1);
  actors::init(argc, argv); // a worker host runs here and never returns
  if (owner_role && (argc == 3 || plain))
    return owner(argv[2], plain);
  if (argc == 5 && std::strcmp(argv[1], "--rt-client") == 0)
    return rt_client(argv[2], argv[3], std::atoi(argv[4]));
  std::fprintf(stderr, "usage: bench_hosts   (as root)\n");
  return 2;
}
