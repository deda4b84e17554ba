// Actor links (libactors/src/link/) against BASP, the path between
// processes today, in the same run: a child process of this program with
// an echo actor and a counter, reached over a link (an inherited socket
// pair) and over BASP (CAF's middleman, loopback TCP). Measured, each as the
// median of alternating rounds:
//   round trip, a blocking caller (scoped_actor request/receive);
//   round trip, the link's blocking call (its addressed doorbell);
//   round trip, actor <-> actor (an event-based caller here);
//   small one-way messages, counted at the receiver;
// each with the CPU time of both processes per round trip or message
// (getrusage). And the raw ring ping-pong between two processes, with the
// futex doorbell alone and with 50 us of spinning first: the waiting
// policy. With --busy, two more processes burn both cores meanwhile.
// Each line also says the context switches of both processes per round trip.
// Requests have a 30 s timeout, as users write them (the actor systems run
// libactors' scheduler, whose clock a timed request does not wake; CAF
// 0.17's own woke it each time); BENCH_LINKS_INFINITE=1 sends them without
// (caf::infinite). BENCH_LINKS_ONLY=ring|scoped|actor|oneway|call runs
// one workload.
// Python's numbers for the same shapes: bench/peers/actors.py (Pipe round
// trip), bench/peers/queue_pipe.py (Queue small items).
// Usage: bench_links [--busy] [round_trips] [rounds]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include "net/auth.hpp"
#include "base/futex.hpp"
#include "link/manager.hpp"
#include "node/scheduler.hpp"
#include "link/ring.hpp"
#include "measure.hpp"

extern char** environ;

using namespace actors::detail::links;
using cpu_atom = caf::atom_constant<caf::atom("cpu")>;
using echo_atom = caf::atom_constant<caf::atom("echo")>;
using counter_atom = caf::atom_constant<caf::atom("counter")>;
using count_atom = caf::atom_constant<caf::atom("count")>;
using run_atom = caf::atom_constant<caf::atom("run")>;

namespace {

constexpr auto timeout = std::chrono::seconds{30};

struct config : caf::actor_system_config {
  config() {
    load<caf::io::middleman>();
    load<actors::detail::scheduler>(); // libactors' (a quiet clock)
    set("middleman.workers", 0);
    set("logger.verbosity", caf::atom("quiet"));
  }
};

// CPU time of this process (all threads), in microseconds.
double cpu_us() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto us = [](const timeval& t) { return t.tv_sec * 1e6 + t.tv_usec; };
  return us(ru.ru_utime) + us(ru.ru_stime);
}

// Context switches of this process (all threads): each sleep that ended
// in a wake-up, and each preemption.
double switches() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_nvcsw + ru.ru_nivcsw);
}

pid_t spawn(std::vector<std::string> args, int* out = nullptr) {
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  int p[2] = {-1, -1};
  if (out != nullptr) {
    if (::pipe2(p, O_CLOEXEC) != 0)
      std::exit(1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  }
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) {
    std::perror("posix_spawn");
    std::exit(1);
  }
  posix_spawn_file_actions_destroy(&fa);
  if (out != nullptr) {
    ::close(p[1]);
    *out = p[0];
  }
  return pid;
}

std::string read_line(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n')
    line += c;
  return line;
}

std::string hex(const actors::detail::secret& key) {
  std::string out;
  char buf[3];
  for (auto b : key) {
    std::snprintf(buf, sizeof(buf), "%02x", b);
    out += buf;
  }
  return out;
}

actors::detail::secret unhex(const std::string& s) {
  actors::detail::secret key{};
  for (std::size_t i = 0; i < key.size(); ++i)
    key[i]
        = static_cast<std::uint8_t>(std::stoi(s.substr(2 * i, 2), nullptr, 16));
  return key;
}

// -- the child
// ------------------------------------------------------------------

struct counter_state {
  int count = 0;
  clock_type::time_point first;
  clock_type::time_point last;
};

caf::behavior counter(caf::stateful_actor<counter_state>* self) {
  return {
      [=](int) {
        auto& s = self->state;
        auto now = clock_type::now();
        if (s.count++ == 0)
          s.first = now;
        s.last = now;
      },
      [=](count_atom) {
        auto& s = self->state;
        auto n = s.count;
        auto secs = std::chrono::duration<double>(s.last - s.first).count();
        s.count = 0;
        return std::make_tuple(n, secs);
      },
  };
}

int child_main(int fd, const std::string& key) {
  config cfg;
  caf::actor_system sys{cfg};
  auto echo = sys.spawn([](caf::event_based_actor*) {
    return caf::behavior{[](int x) { return x + 1; }};
  });
  auto ctr = sys.spawn(counter);
  auto service = sys.spawn([=](caf::event_based_actor*) {
    return caf::behavior{
        [](cpu_atom) { return std::make_tuple(cpu_us(), switches()); },
        [=](echo_atom) { return echo; },
        [=](counter_atom) { return caf::actor{ctr}; },
    };
  });
  manager::options opts;
  opts.service = service;
  opts.listen = false;
  auto mgr = manager::make(sys, unhex(key), opts);
  mgr->adopt(fd);
  auto port = sys.middleman().publish(service, 0, "127.0.0.1");
  std::printf("port %d\n", port ? static_cast<int>(*port) : 0);
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
    // until the parent closes our stdin
  }
  ::_exit(0);
}

// -- ring ping-pong
// ------------------------------------------------------------------

// Waits until `r` has `n` bytes, spinning for `spin` first.
void await(ring& r, std::size_t n, std::chrono::microseconds spin) {
  if (spin.count() > 0) {
    auto until = clock_type::now() + spin;
    while (static_cast<std::size_t>(r.readable()) < n)
      if (clock_type::now() >= until)
        break;
  }
  while (static_cast<std::size_t>(r.readable()) < n)
    r.wait_data(clock_type::time_point::max(), [] { return false; });
}

void pong(ring& in, ring& out, int n, std::chrono::microseconds spin) {
  std::uint64_t x = 0;
  for (int i = 0; i < n; ++i) {
    await(in, sizeof(x), spin);
    in.read_some(reinterpret_cast<char*>(&x), sizeof(x));
    in.notify_room();
    ++x;
    out.write_some(reinterpret_cast<const char*>(&x), sizeof(x));
    out.notify_data(0);
  }
}

int ring_child(int in_fd, int out_fd, int n, int spin_us) {
  auto in = ring::attach(in_fd);
  auto out = ring::attach(out_fd);
  pong(in, out, n, std::chrono::microseconds{spin_us});
  return 0;
}

// Microseconds per round trip of a ring ping-pong with a fresh child.
std::pair<double, double> ring_round_trip(const std::string& self, int n,
                                          int spin_us) {
  auto ab = ring::create(4096);
  auto ba = ring::create(4096);
  ::fcntl(ab.fd(), F_SETFD, 0);
  ::fcntl(ba.fd(), F_SETFD, 0);
  auto pid = spawn({self, "--ring-child", std::to_string(ab.fd()),
                    std::to_string(ba.fd()), std::to_string(n + 100),
                    std::to_string(spin_us)});
  ::fcntl(ab.fd(), F_SETFD, FD_CLOEXEC);
  ::fcntl(ba.fd(), F_SETFD, FD_CLOEXEC);
  std::chrono::microseconds spin{spin_us};
  auto step = [&](std::uint64_t i) {
    ab.write_some(reinterpret_cast<const char*>(&i), sizeof(i));
    ab.notify_data(0);
    await(ba, sizeof(i), spin);
    ba.read_some(reinterpret_cast<char*>(&i), sizeof(i));
    ba.notify_room();
  };
  for (int i = 0; i < 100; ++i)
    step(static_cast<std::uint64_t>(i));
  rusage before{};
  ::getrusage(RUSAGE_CHILDREN, &before);
  auto cpu0 = cpu_us();
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i)
    step(static_cast<std::uint64_t>(i));
  auto us = seconds_since(t0) / n * 1e6;
  auto mine = cpu_us() - cpu0;
  int status = 0;
  rusage theirs{};
  ::wait4(pid, &status, 0, &theirs);
  auto child = theirs.ru_utime.tv_sec * 1e6 + theirs.ru_utime.tv_usec
               + theirs.ru_stime.tv_sec * 1e6 + theirs.ru_stime.tv_usec;
  return {us, (mine + child) / n}; // the child's CPU includes its start
}

// -- the parent
// ------------------------------------------------------------------

// Requests without a timeout: CAF's clock thread then stays out
// (BENCH_LINKS_INFINITE=1; every timed request wakes it).
const bool untimed = std::getenv("BENCH_LINKS_INFINITE") != nullptr;

caf::duration bound() {
  return untimed ? caf::duration{caf::infinite} : caf::duration{timeout};
}

// An event-based caller: on (run, n), n sequential requests to `target`;
// answers with the seconds they took.
void ask(caf::event_based_actor* self, caf::actor target, int left,
         clock_type::time_point t0, caf::typed_response_promise<double> rp) {
  self->request(target, bound(), left).then([=](int) mutable {
    if (left > 1)
      ask(self, target, left - 1, t0, rp);
    else
      rp.deliver(seconds_since(t0));
  });
}

caf::behavior caller(caf::event_based_actor* self, caf::actor target) {
  return {[=](run_atom, int n) -> caf::result<double> {
    auto rp = self->make_response_promise<double>();
    ask(self, target, n, clock_type::now(), rp);
    return rp;
  }};
}

template <class T, class... Ts>
T ask_and_wait(caf::scoped_actor& self, const caf::actor& h, Ts... xs) {
  T result{};
  self->request(h, bound(), xs...)
      .receive([&](T x) { result = x; },
               [&](caf::error& err) {
                 std::fprintf(stderr, "bench_links: %s\n",
                              to_string(err).c_str());
                 std::exit(1);
               });
  return result;
}

struct path {
  const char* name;
  caf::actor service, echo, counter;
};

struct sample {
  double us;  // per round trip (or per message)
  double cpu; // CPU us of both processes, same unit
  double csw; // context switches of both processes, same unit
};

// The child's CPU time and context switches.
std::pair<double, double> theirs(caf::scoped_actor& self, const path& p) {
  std::pair<double, double> r;
  self->request(p.service, timeout, cpu_atom::value)
      .receive(
          [&](double cpu, double csw) {
            r = {cpu, csw};
          },
          [](caf::error&) { std::exit(1); });
  return r;
}

template <class F>
sample timed(caf::scoped_actor& self, const path& p, int n, F work) {
  auto t0 = theirs(self, p);
  auto cpu0 = cpu_us();
  auto csw0 = switches();
  auto secs = work();
  auto cpu = cpu_us() - cpu0;
  auto csw = switches() - csw0;
  auto t1 = theirs(self, p);
  return {secs / n * 1e6, (cpu + t1.first - t0.first) / n,
          (csw + t1.second - t0.second) / n};
}

sample median(std::vector<sample> xs) {
  auto by = [&](auto field) {
    std::vector<double> v;
    for (auto& x : xs)
      v.push_back(x.*field);
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {by(&sample::us), by(&sample::cpu), by(&sample::csw)};
}

} // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--child") == 0)
    return child_main(std::atoi(argv[2]), argv[3]);
  if (argc == 6 && std::strcmp(argv[1], "--ring-child") == 0)
    return ring_child(std::atoi(argv[2]), std::atoi(argv[3]),
                      std::atoi(argv[4]), std::atoi(argv[5]));
  int arg = 1;
  bool busy = argc > arg && std::strcmp(argv[arg], "--busy") == 0;
  if (busy)
    ++arg;
  // BENCH_LINKS_ONLY=ring|scoped|actor|oneway|call: one workload (for
  // profiling it).
  std::string only = std::getenv("BENCH_LINKS_ONLY") != nullptr
                         ? std::getenv("BENCH_LINKS_ONLY")
                         : "";
  auto want = [&](const char* what) { return only.empty() || only == what; };
  int n = argc > arg ? std::atoi(argv[arg]) : 2000;
  int rounds = argc > arg + 1 ? std::atoi(argv[arg + 1]) : 5;
  std::string self_path = "/proc/self/exe";
  {
    char buf[4096];
    auto len = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (len > 0)
      self_path.assign(buf, static_cast<std::size_t>(len));
  }
  std::vector<pid_t> burners;
  if (busy)
    for (int i = 0; i < 2; ++i)
      burners.push_back(spawn({"/bin/sh", "-c", "while :; do :; done"}));
  const char* load = busy ? ", cores busy" : "";

  // The raw ring: the waiting policy.
  if (want("ring")) {
    std::vector<sample> quiet, spin;
    for (int r = 0; r < rounds; ++r) {
      auto a = ring_round_trip(self_path, n, 0);
      quiet.push_back({a.first, a.second, 0});
      auto b = ring_round_trip(self_path, n, 50);
      spin.push_back({b.first, b.second, 0});
    }
    auto q = median(quiet);
    auto s = median(spin);
    std::printf("libactors ring ping-pong, futex%s: median %.1f us, cpu %.1f "
                "us\n",
                load, q.us, q.cpu);
    std::printf("libactors ring ping-pong, spin 50 us%s: median %.1f us, cpu "
                "%.1f us\n",
                load, s.us, s.cpu);
  }

  config cfg;
  caf::actor_system sys{cfg};
  auto key = actors::detail::make_secret();
  manager::options opts;
  opts.listen = false;
  auto mgr = manager::make(sys, key, opts);
  int fds[2];
  ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
  ::fcntl(fds[1], F_SETFD, 0);
  int out = -1;
  int in[2];
  ::pipe(in); // the child's stdin: it ends when we close it
  ::fcntl(in[1], F_SETFD, FD_CLOEXEC);
  // stdin of the child: dup'd by hand around the spawn.
  int saved = ::dup(0);
  ::dup2(in[0], 0);
  auto child
      = spawn({self_path, "--child", std::to_string(fds[1]), hex(key)}, &out);
  ::dup2(saved, 0);
  ::close(saved);
  ::close(in[0]);
  ::close(fds[1]);
  path link_path{"link", mgr->adopt(fds[0]), {}, {}};
  auto line = read_line(out);
  auto port = static_cast<std::uint16_t>(std::atoi(line.c_str() + 5));
  auto basp_root = sys.middleman().remote_actor("127.0.0.1", port);
  if (!basp_root) {
    std::fprintf(stderr, "bench_links: no BASP connection\n");
    return 1;
  }
  path basp_path{"BASP", *basp_root, {}, {}};
  caf::scoped_actor self{sys};
  for (auto* p : {&link_path, &basp_path}) {
    p->echo = ask_and_wait<caf::actor>(self, p->service, echo_atom::value);
    p->counter = ask_and_wait<caf::actor>(self, p->service, counter_atom::value);
  }
  std::vector<sample> blocking[2], call, actor[2], oneway[2];
  std::vector<double> received[2];
  caf::actor callers[2]
      = {sys.spawn(caller, link_path.echo), sys.spawn(caller, basp_path.echo)};
  path* paths[2] = {&link_path, &basp_path};
  auto warm = [&] {
    for (int k = 0; k < 2; ++k)
      for (int i = 0; i < 100; ++i)
        ask_and_wait<int>(self, paths[k]->echo, i);
  };
  warm();
  for (int r = 0; r < rounds; ++r) {
    for (int k = 0; k < 2; ++k) {
      auto& p = *paths[k];
      if (want("scoped"))
        blocking[k].push_back(timed(self, p, n, [&] {
          auto t0 = clock_type::now();
          for (int i = 0; i < n; ++i)
            ask_and_wait<int>(self, p.echo, i);
          return seconds_since(t0);
        }));
      if (want("actor"))
        actor[k].push_back(timed(self, p, n, [&] {
          return ask_and_wait<double>(self, callers[k], run_atom::value, n);
        }));
      int m = 20 * n;
      double at_receiver = 0;
      if (!want("oneway"))
        continue;
      oneway[k].push_back(timed(self, p, m, [&] {
        auto t0 = clock_type::now();
        for (int i = 0; i < m; ++i)
          self->send(p.counter, i);
        self->request(p.counter, timeout, count_atom::value)
            .receive(
                [&](int got, double secs) {
                  if (got != m)
                    std::fprintf(stderr, "bench_links: %d of %d\n", got, m);
                  at_receiver = secs;
                },
                [](caf::error&) { std::exit(1); });
        return seconds_since(t0);
      }));
      received[k].push_back(m / at_receiver);
    }
    if (want("call"))
      call.push_back(timed(self, link_path, n, [&] {
        auto t0 = clock_type::now();
        for (int i = 0; i < n; ++i)
          if (!mgr->call(link_path.echo, caf::make_message(i), timeout))
            std::exit(1);
        return seconds_since(t0);
      }));
  }
  for (int k = 0; k < 2; ++k) {
    const char* via = k == 0 ? "link" : "BASP";
    if (want("scoped")) {
      auto b = median(blocking[k]);
      std::printf("libactors actor round trip, %s, scoped_actor%s: median "
                  "%.1f us, cpu %.1f us, %.1f switches\n",
                  via, load, b.us, b.cpu, b.csw);
    }
    if (want("actor")) {
      auto a = median(actor[k]);
      std::printf("libactors actor round trip, %s, actor to actor%s: median "
                  "%.1f us, cpu %.1f us, %.1f switches\n",
                  via, load, a.us, a.cpu, a.csw);
    }
    if (want("oneway")) {
      auto o = median(oneway[k]);
      std::sort(received[k].begin(), received[k].end());
      std::printf("libactors actor messages one-way, %s%s: median %.0f "
                  "msgs/s at the receiver, cpu %.2f us per message\n",
                  via, load, received[k][received[k].size() / 2], o.cpu);
    }
  }
  if (want("call")) {
    auto c = median(call);
    std::printf("libactors actor round trip, link, blocking call (addressed "
                "doorbell)%s: median %.1f us, cpu %.1f us, %.1f switches\n",
                load, c.us, c.cpu, c.csw);
  }
  for (auto& x : callers)
    caf::anon_send_exit(x, caf::exit_reason::kill);
  mgr->shutdown(caf::exit_reason::user_shutdown);
  ::close(in[1]);
  ::waitpid(child, nullptr, 0);
  for (auto b : burners) {
    ::kill(b, SIGKILL);
    ::waitpid(b, nullptr, 0);
  }
  std::fflush(stdout);
  ::_exit(0); // the BASP connection would hold the actor system's end
}
