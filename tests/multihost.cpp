// Pools spread over hosts (issue 8): worker hosts are this test binary
// started with --actors-worker, joined to a pool that listens.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "actors/all.hpp"
#include "support/error_code.hpp"
#include "support/netlab.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

// A task's result and the host that computed it (the worker's parent: the
// owner for local workers, a worker host's process for remote ones).
std::pair<long, int> square_where(int x) {
  return {static_cast<long>(x) * x, static_cast<int>(::getppid())};
}

std::pair<long, int> slow_square_where(int x) {
  std::this_thread::sleep_for(5ms);
  return square_where(x);
}

int throws_on_remote(int x) {
  throw std::runtime_error("remote says no to " + std::to_string(x));
}

int segfaults(int) {
  std::raise(SIGSEGV);
  return 0;
}

int exits(int) {
  std::exit(0);
}

int sleeps_forever(int) {
  std::this_thread::sleep_for(1h);
  return 0;
}

int parent_pid(int) {
  return static_cast<int>(::getppid());
}

// Keeps a core busy for `ms` milliseconds (no sleep, no system call to
// speak of), then names the worker's parent.
int spins(int ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds{ms};
  volatile long x = 0;
  while (std::chrono::steady_clock::now() < until)
    for (int i = 0; i < 1000; ++i)
      x = x + i;
  return static_cast<int>(::getppid());
}

std::string self_exe() {
  char buf[4096] = {};
  auto n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::string fresh_key_file() {
  auto path = "/tmp/actors-mh-key-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  return path;
}

support::subprocess worker_host(std::uint16_t port, const std::string& key,
                                int processes,
                                const std::string& program = self_exe()) {
  return support::subprocess{program,
                             {"--actors-worker",
                              "127.0.0.1:" + std::to_string(port),
                              "--actors-key-file", key, "--actors-processes",
                              std::to_string(processes)},
                             true};
}

} // namespace

TEST_CASE("loopback: a map spread over two worker hosts is exact") {
  auto key = fresh_key_file();
  actors::pool_options opts;
  opts.listen = "127.0.0.1:0";
  opts.key_file = key;
  actors::pool p{1, opts};
  REQUIRE(p.port() != 0);
  auto a = worker_host(p.port(), key, 2);
  auto b = worker_host(p.port(), key, 2);
  REQUIRE(p.wait_for_remote_workers(4, 20s));
  std::vector<int> xs(100000);
  for (int i = 0; i < 100000; ++i)
    xs[i] = i;
  auto rs = p.map(square_where, xs);
  REQUIRE(rs.size() == xs.size());
  std::map<int, int> by_host;
  for (int i = 0; i < 100000; ++i) {
    CHECK(rs[i].first == static_cast<long>(i) * i);
    ++by_host[rs[i].second];
  }
  MESSAGE("tasks by host: owner " << by_host[::getpid()] << ", host a "
                                  << by_host[a.pid()] << ", host b "
                                  << by_host[b.pid()]);
  CHECK(by_host[::getpid()] > 0);
  CHECK(by_host[a.pid()] > 0);
  CHECK(by_host[b.pid()] > 0);
  p.close();
  p.join();
  CHECK(a.wait(10s) == 0);
  CHECK(b.wait(10s) == 0);
  ::unlink(key.c_str());
}

namespace {

// A pool on loopback that worker hosts join with this test's key.
struct loopback_pool {
  std::string key = fresh_key_file();
  actors::pool pool;

  explicit loopback_pool(int local = 1,
                         actors::pool_options opts = actors::pool_options{})
    : pool(local, with_listen(std::move(opts), key)) {
  }

  ~loopback_pool() {
    ::unlink(key.c_str());
  }

  static actors::pool_options with_listen(actors::pool_options opts,
                                          const std::string& key) {
    opts.listen = "127.0.0.1:0";
    opts.key_file = key;
    return opts;
  }
};

} // namespace

TEST_CASE("loopback: a worker host killed mid-map, its tasks moved, the "
          "results are exact") {
  loopback_pool lp;
  auto& p = lp.pool;
  auto a = worker_host(p.port(), lp.key, 2);
  auto b = worker_host(p.port(), lp.key, 2);
  REQUIRE(p.wait_for_remote_workers(4, 20s));
  std::vector<int> xs(600);
  for (int i = 0; i < 600; ++i)
    xs[i] = i;
  std::set<int> seen;
  int from_a = 0;
  bool killed = false;
  for (auto [sq, host] : p.imap_unordered(slow_square_where, xs)) {
    auto x = static_cast<int>(std::lround(std::sqrt(static_cast<double>(sq))));
    CHECK(static_cast<long>(x) * x == sq);
    CHECK(seen.insert(x).second);
    if (host == a.pid() && !killed) {
      ++from_a;
      if (from_a == 10) {
        // Host a holds tasks now (two workers, each a window of them).
        a.kill(SIGKILL);
        killed = true;
      }
    }
  }
  CHECK(killed);
  CHECK(seen.size() == 600);
  CHECK(a.wait(5s) == -SIGKILL);
  CHECK(p.remote_workers() == 2);
  p.close();
  p.join();
  CHECK(b.wait(10s) == 0);
}

TEST_CASE("loopback: a host with another key is refused, the pool goes on") {
  loopback_pool lp;
  auto& p = lp.pool;
  auto other = lp.key + "-other";
  ::unlink(other.c_str());
  {
    std::ofstream out{other, std::ios::binary};
    out << std::string(32, 'x');
  }
  ::chmod(other.c_str(), 0600);
  auto intruder = worker_host(p.port(), other, 1);
  CHECK(intruder.wait(20s) == 2);
  auto said = intruder.read_all(5s);
  CHECK(said.find("refused") != std::string::npos);
  MESSAGE(said);
  CHECK(p.remote_workers() == 0);
  CHECK(p.map(parent_pid, std::vector<int>{1, 2, 3})
        == std::vector<int>(3, static_cast<int>(::getpid())));
  ::unlink(other.c_str());
}

TEST_CASE("loopback: a host running another program is refused") {
  loopback_pool lp;
  auto& p = lp.pool;
  auto dir = self_exe().substr(0, self_exe().rfind('/'));
  auto other = worker_host(p.port(), lp.key, 1, dir + "/pool_test");
  CHECK(other.wait(20s) == 2);
  auto said = other.read_all(5s);
  CHECK(said.find("runs another program") != std::string::npos);
  MESSAGE(said);
  CHECK(p.remote_workers() == 0);
}

TEST_CASE("loopback: remote failures are typed: an exception, a crash, a "
          "timeout") {
  actors::pool_options opts;
  opts.task_timeout = 1s;
  opts.retries = 1;
  loopback_pool lp{1, opts};
  auto& p = lp.pool;
  auto a = worker_host(p.port(), lp.key, 1);
  REQUIRE(p.wait_for_remote_workers(1, 20s));
  // Spread over the local worker and the remote one: both kinds fail alike.
  std::vector<actors::async_result<int>> rs;
  for (int i = 0; i < 4; ++i)
    rs.push_back(p.apply_async(throws_on_remote, i));
  for (auto& r : rs) {
    auto e = code_of([&] { r.get(10s); });
    CHECK(e == actors::errc::task_failed);
  }
  // A crash is retried once, then fails naming the death; the host
  // replaces its worker process, which joins again.
  auto crash = p.apply_async(segfaults, 0);
  CHECK(code_of([&] { crash.get(20s); }) == actors::errc::worker_lost);
  REQUIRE(p.wait_for_remote_workers(1, 20s));
  // So is a task that calls exit(0): its worker is replaced all the same.
  auto quit = p.apply_async(exits, 0);
  CHECK(code_of([&] { quit.get(20s); }) == actors::errc::worker_lost);
  REQUIRE(p.wait_for_remote_workers(1, 20s));
  // A task over the timeout fails; a remote worker ends itself when its
  // connection is dropped, and its host starts a fresh one.
  auto stuck = p.apply_async(sleeps_forever, 0);
  auto other = p.apply_async(sleeps_forever, 1);
  CHECK(code_of([&] { stuck.get(20s); }) == actors::errc::timeout);
  CHECK(code_of([&] { other.get(20s); }) == actors::errc::timeout);
  REQUIRE(p.wait_for_remote_workers(1, 20s));
  CHECK(p.map(parent_pid, std::vector<int>{1, 2}).size() == 2);
  p.close();
  p.join();
  auto code = a.wait(10s);
  INFO(a.read_all(1s));
  CHECK(code == 0);
}

TEST_CASE("loopback: terminate ends remote tasks, and hosts end with the pool") {
  auto lp = std::make_unique<loopback_pool>();
  auto& p = lp->pool;
  auto a = worker_host(p.port(), lp->key, 2);
  REQUIRE(p.wait_for_remote_workers(2, 20s));
  std::vector<actors::async_result<int>> rs;
  for (int i = 0; i < 3; ++i)
    rs.push_back(p.apply_async(sleeps_forever, i));
  p.terminate();
  for (auto& r : rs)
    CHECK(code_of([&] { r.get(5s); }) == actors::errc::terminated);
  p.join();
  lp.reset();
  auto code = a.wait(20s);
  INFO(a.read_all(1s));
  CHECK(code == 0);
}

TEST_CASE("loopback: a worker host busy with long tasks is not lost "
          "(lost_after 300 ms)") {
  actors::pool_options opts;
  opts.lost_after = 300ms;
  loopback_pool lp{1, opts};
  auto& p = lp.pool;
  auto a = worker_host(p.port(), lp.key, 2);
  REQUIRE(p.wait_for_remote_workers(2, 20s));
  // One task of 1.5 s per worker: three busy cores' worth on this machine,
  // each over lost_after five times; the remote workers still say they
  // are alive (from a thread of their own).
  auto parents = p.map(spins, std::vector<int>(3, 1500), 1);
  CHECK(std::count(parents.begin(), parents.end(), a.pid()) == 2);
  CHECK(p.remote_workers() == 2);
  p.close();
  p.join();
  auto code = a.wait(10s);
  INFO(a.read_all(1s));
  CHECK(code == 0);
}

TEST_CASE("loopback: a worker host given a name that does not resolve says "
          "so") {
  auto key = fresh_key_file();
  {
    std::ofstream out{key, std::ios::binary};
    out << std::string(32, 'k');
  }
  ::chmod(key.c_str(), 0600);
  support::subprocess host{self_exe(),
                           {"--actors-worker", "no-such-host.invalid:7000",
                            "--actors-key-file", key, "--actors-processes",
                            "1", "--actors-connect-timeout", "1"},
                           true};
  CHECK(host.wait(30s) == 3);
  auto said = host.read_all(5s);
  MESSAGE(said);
  CHECK(said.find("no-such-host.invalid did not resolve") != std::string::npos);
  CHECK(said.find("No route to host") == std::string::npos);
  ::unlink(key.c_str());
}

TEST_CASE("loopback: bad listen settings are typed errors") {
  actors::pool_options opts;
  opts.listen = "127.0.0.1:0";
  CHECK(code_of([&] { actors::pool p{1, opts}; })
        == actors::errc::invalid_argument);
  opts.key_file = fresh_key_file();
  opts.listen = "no-port";
  CHECK(code_of([&] { actors::pool p{1, opts}; })
        == actors::errc::invalid_argument);
  opts.listen = "192.0.2.1:7000"; // not an address of this host
  CHECK(code_of([&] { actors::pool p{1, opts}; })
        == actors::errc::invalid_argument);
  ::unlink(opts.key_file.c_str());
}

// -- hosts in network namespaces ----------------------------------------------
//
// Each case builds a lab (tests/support/netlab.hpp): the owner's host and
// worker hosts, each a network namespace joined by its own link. The owner
// is this test binary in helper mode "mh-owner" inside host 0; it prints
// "port N" once its pool listens, then what it saw. The worker hosts are
// this test binary started with --actors-worker inside hosts 1 and 2, each
// with ACTORS_TEST_HOST naming it, which the tasks report.

namespace {

std::string host_label() {
  auto* label = std::getenv("ACTORS_TEST_HOST");
  return label ? label : "owner";
}

std::pair<long, std::string> square_on_host(int x) {
  return {static_cast<long>(x) * x, host_label()};
}

std::pair<long, std::string> slow_square_on_host(int x) {
  std::this_thread::sleep_for(2ms);
  return square_on_host(x);
}

// A producer on some host: says where it runs, waits for the go, then puts
// 500 items naming its host, itself and their number.
int produce(actors::queue<std::string> items, actors::queue<std::string> hello,
            actors::queue<int> go, int k) {
  hello.put(host_label());
  go.get(30s);
  for (int i = 0; i < 500; ++i)
    items.put(host_label() + " " + std::to_string(k) + " "
              + std::to_string(i));
  return 500;
}

using steady = std::chrono::steady_clock;

long ms_since(steady::time_point t0) {
  return static_cast<long>(
    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0)
      .count());
}

// Waits (bounded) until the pool has exactly `n` remote workers.
bool remote_workers_become(actors::pool& p, std::size_t n,
                           std::chrono::milliseconds bound) {
  auto deadline = steady::now() + bound;
  while (p.remote_workers() != n) {
    if (steady::now() > deadline)
      return false;
    std::this_thread::sleep_for(5ms); // a measurement's resolution
  }
  return true;
}

// The owner of a lab case: mh-owner SCENARIO KEY_FILE.
int lab_owner(int argc, char** argv) {
  if (argc < 2)
    return 2;
  std::string scenario = argv[0];
  actors::pool_options opts;
  opts.listen = support::netlab::owner_address() + ":0";
  opts.key_file = argv[1];
  opts.lost_after = 2000ms;
  // "keyless": the pool stays open until the test has seen the keyless
  // host refused (SIGUSR1), however late that host comes.
  sigset_t go_on;
  sigemptyset(&go_on);
  sigaddset(&go_on, SIGUSR1);
  if (scenario == "keyless")
    sigprocmask(SIG_BLOCK, &go_on, nullptr);
  actors::pool p{2, opts};
  std::printf("port %u\n", static_cast<unsigned>(p.port()));
  std::fflush(stdout);
  auto hosts = scenario == "keyless" ? 2u : 4u;
  if (!p.wait_for_remote_workers(hosts, 30s)) {
    std::printf("joined only %zu\n", p.remote_workers());
    return 3;
  }
  std::printf("joined %zu\n", p.remote_workers());
  std::fflush(stdout);
  std::map<std::string, long> by_host;
  bool exact = true;
  if (scenario == "queue") {
    // One producer task per worker; released once producers run on every
    // host, so that producers of all three hosts share the queue.
    actors::queue<std::string> items{0};
    actors::queue<std::string> hello{0};
    actors::queue<int> go{0};
    std::vector<actors::async_result<int>> producers;
    for (int k = 0; k < 6; ++k)
      producers.push_back(p.apply_async(produce, items, hello, go, k));
    std::set<std::string> running;
    try {
      while (running.size() < 3)
        running.insert(hello.get(30s));
    } catch (const actors::error& e) {
      // Say why: what the producers ran into.
      for (auto& r : producers) {
        try {
          r.get(1s);
        } catch (const actors::error& failure) {
          std::printf("producer: %s\n", failure.what());
          std::fflush(stdout);
        }
      }
      throw;
    }
    for (int k = 0; k < 6; ++k)
      go.put(k);
    std::map<int, std::set<int>> got;
    std::map<int, std::string> host_of;
    for (int n = 0; n < 6 * 500; ++n) {
      std::istringstream item{items.get(30s)};
      std::string host;
      int k = -1;
      int i = -1;
      item >> host >> k >> i;
      exact = exact && got[k].insert(i).second
              && (host_of.emplace(k, host).first->second == host);
      ++by_host[host];
    }
    for (auto& r : producers)
      exact = exact && r.get(30s) == 500;
    for (int k = 0; k < 6; ++k)
      exact = exact && got[k].size() == 500;
    exact = exact && items.empty();
  } else if (scenario == "map" || scenario == "keyless") {
    std::vector<int> xs(100000);
    for (int i = 0; i < 100000; ++i)
      xs[i] = i;
    auto rs = p.map(square_on_host, xs);
    exact = rs.size() == xs.size();
    for (std::size_t i = 0; exact && i < rs.size(); ++i) {
      exact = rs[i].first == static_cast<long>(i) * static_cast<long>(i);
      ++by_host[rs[i].second];
    }
  } else {
    // "kill", "cut" or "stop": worker host h2 is lost in the middle of a
    // map.
    std::vector<int> xs(3000);
    for (int i = 0; i < 3000; ++i)
      xs[i] = i;
    std::set<long> seen;
    bool asked = false;
    for (auto [sq, host] : p.imap_unordered(slow_square_on_host, xs)) {
      exact = exact && seen.insert(sq).second;
      ++by_host[host];
      if (!asked && by_host["h2"] == 10) {
        asked = true;
        std::printf("lose h2 now\n");
        std::fflush(stdout);
        auto t0 = steady::now();
        if (!remote_workers_become(p, 2, 15s)) {
          std::printf("h2 not lost within 15 s\n");
          return 4;
        }
        std::printf("lost h2 after %ld ms\n", ms_since(t0));
        std::fflush(stdout);
      }
    }
    for (int i = 0; exact && i < 3000; ++i)
      exact = seen.count(static_cast<long>(i) * i) == 1;
    exact = exact && seen.size() == 3000;
    if (scenario == "cut" || scenario == "stop") {
      // The test restores the link, or resumes h2: its host starts fresh
      // workers, which join again.
      std::printf("restore h2 now\n");
      std::fflush(stdout);
      auto t0 = steady::now();
      if (!p.wait_for_remote_workers(4, 30s)) {
        std::printf("h2 did not rejoin within 30 s\n");
        return 5;
      }
      std::printf("h2 rejoined after %ld ms\n", ms_since(t0));
    }
  }
  for (auto& [host, n] : by_host)
    std::printf("host %s %ld\n", host.c_str(), n);
  std::printf("exact %d\n", exact ? 1 : 0);
  std::fflush(stdout);
  if (scenario == "keyless") {
    timespec bound{60, 0};
    if (::sigtimedwait(&go_on, nullptr, &bound) != SIGUSR1)
      return 6;
  }
  p.close();
  p.join();
  std::printf("done\n");
  return 0;
}

support::helper_mode lab_owner_mode{"mh-owner", lab_owner};

// A lab of three hosts, its owner running `scenario`, and its worker hosts
// h1 and h2 (h2 with `h2_key`, if given, instead of the pool's key).
struct lab_run {
  support::netlab lab{3};
  std::string key = fresh_key_file();
  support::subprocess owner;
  std::vector<support::subprocess> hosts;
  std::map<std::string, long> by_host;
  std::vector<std::string> said; // the owner's lines

  explicit lab_run(const std::string& scenario, std::string h2_key = {})
    : owner(lab.helper(0, "mh-owner", {scenario, key}, {}, true)) {
    auto port = next("port ");
    REQUIRE(!port.empty());
    auto address = support::netlab::owner_address() + ":" + port;
    for (int h = 1; h <= 2; ++h) {
      auto k = h == 2 && !h2_key.empty() ? h2_key : key;
      hosts.push_back(lab.run(h, self_exe(),
                              {"--actors-worker", address,
                               "--actors-key-file", k, "--actors-processes",
                               "2"},
                              {"ACTORS_TEST_HOST=h" + std::to_string(h)},
                              true));
    }
  }

  ~lab_run() {
    ::unlink(key.c_str());
  }

  // The rest of the owner's next line starting with `prefix` (empty if it
  // ended or said nothing such within 60 s).
  std::string next(const std::string& prefix) {
    while (auto line = owner.read_line(60s)) {
      said.push_back(*line);
      if (line->rfind(prefix, 0) == 0)
        return line->substr(prefix.size());
      if (line->rfind("host ", 0) == 0) {
        auto space = line->rfind(' ');
        by_host[line->substr(5, space - 5)] = std::stol(line->substr(space));
      }
    }
    return {};
  }

  std::string transcript() const {
    std::string all;
    for (auto& line : said)
      all += line + "\n";
    return all;
  }
};

} // namespace

TEST_CASE("netns: a map of 100k tasks over three hosts is exact, and every "
          "host did some of it") {
  support::netlab::skip_if_unavailable();
  lab_run run{"map"};
  CHECK(run.next("joined ") == "4");
  CHECK(run.next("exact ") == "1");
  INFO(run.transcript());
  CHECK(run.by_host["owner"] > 0);
  CHECK(run.by_host["h1"] > 0);
  CHECK(run.by_host["h2"] > 0);
  CHECK(run.by_host["owner"] + run.by_host["h1"] + run.by_host["h2"]
        == 100000);
  CHECK(run.next("done").empty());
  CHECK(run.owner.wait(20s) == 0);
  for (auto& h : run.hosts)
    CHECK(h.wait(20s) == 0);
}

TEST_CASE("netns: a worker host killed mid-map, its tasks moved, the results "
          "exact") {
  support::netlab::skip_if_unavailable();
  lab_run run{"kill"};
  REQUIRE(run.next("joined ") == "4");
  REQUIRE(run.next("lose h2 now").empty());
  run.lab.kill_host(2);
  auto lost = run.next("lost h2 after ");
  INFO(run.transcript());
  REQUIRE(!lost.empty());
  MESSAGE("a killed host was noticed after " << lost);
  CHECK(run.next("exact ") == "1");
  CHECK(run.by_host["h1"] > 0);
  CHECK(run.by_host["h2"] >= 10);
  CHECK(run.owner.wait(20s) == 0);
  CHECK(run.hosts[0].wait(20s) == 0);
}

TEST_CASE("netns: a worker host whose link is cut is lost within lost_after, "
          "and joins again once the link is back") {
  support::netlab::skip_if_unavailable();
  lab_run run{"cut"};
  REQUIRE(run.next("joined ") == "4");
  REQUIRE(run.next("lose h2 now").empty());
  auto t0 = steady::now();
  run.lab.cut(2);
  auto lost = run.next("lost h2 after ");
  auto seen_after = ms_since(t0);
  INFO(run.transcript());
  REQUIRE(!lost.empty());
  MESSAGE("a cut link was noticed " << seen_after
                                    << " ms after the cut (lost_after 2000 ms)");
  // lost_after, plus a keepalive probe's interval (1 s) and scheduling.
  CHECK(seen_after < 2000 + 1000 + 500);
  CHECK(run.next("restore h2 now").empty());
  run.lab.restore(2);
  CHECK(!run.next("h2 rejoined after ").empty());
  CHECK(run.next("exact ") == "1");
  CHECK(run.owner.wait(20s) == 0);
  for (auto& h : run.hosts)
    CHECK(h.wait(30s) == 0);
}

TEST_CASE("netns: a stopped worker host (SIGSTOP) is lost within lost_after, "
          "and joins again once resumed") {
  support::netlab::skip_if_unavailable();
  lab_run run{"stop"};
  REQUIRE(run.next("joined ") == "4");
  REQUIRE(run.next("lose h2 now").empty());
  // The host's process and its workers (its process group): its kernel
  // still answers, so TCP alone sees nothing wrong.
  auto h2 = run.hosts[1].pid();
  struct resume {
    pid_t group;
    ~resume() {
      ::kill(-group, SIGCONT);
    }
  } resumed{h2};
  auto t0 = steady::now();
  REQUIRE(::kill(-h2, SIGSTOP) == 0);
  auto lost = run.next("lost h2 after ");
  auto seen_after = ms_since(t0);
  INFO(run.transcript());
  REQUIRE(!lost.empty());
  MESSAGE("a stopped host was noticed "
          << seen_after << " ms after SIGSTOP (lost_after 2000 ms)");
  CHECK(seen_after < 2000 + 1000);
  CHECK(run.next("restore h2 now").empty());
  REQUIRE(::kill(-h2, SIGCONT) == 0);
  CHECK(!run.next("h2 rejoined after ").empty());
  CHECK(run.next("exact ") == "1");
  CHECK(run.owner.wait(20s) == 0);
  for (auto& h : run.hosts)
    CHECK(h.wait(30s) == 0);
}

TEST_CASE("loopback: a stopped idle worker host is lost within lost_after, "
          "and the pool's join does not wait for it") {
  actors::pool_options opts;
  opts.lost_after = 500ms;
  loopback_pool lp{1, opts};
  auto& p = lp.pool;
  support::subprocess::options own;
  own.with_stderr = true;
  own.own_group = true; // the host and its workers, stopped together
  support::subprocess a{self_exe(),
                        {"--actors-worker",
                         "127.0.0.1:" + std::to_string(p.port()),
                         "--actors-key-file", lp.key, "--actors-processes",
                         "1"},
                        own};
  REQUIRE(p.wait_for_remote_workers(1, 20s));
  struct resume {
    pid_t group;
    ~resume() {
      ::kill(-group, SIGCONT);
    }
  } resumed{a.pid()};
  auto t0 = steady::now();
  REQUIRE(::kill(-a.pid(), SIGSTOP) == 0);
  CHECK(remote_workers_become(p, 0, 5s));
  auto lost = ms_since(t0);
  MESSAGE("a stopped idle host was lost after " << lost
                                                << " ms (lost_after 500 ms)");
  CHECK(lost < 500 + 1000);
  CHECK(p.map(parent_pid, std::vector<int>{1, 2, 3})
        == std::vector<int>(3, static_cast<int>(::getpid())));
  p.close();
  p.join();
  // Resumed, its worker reads that it was let go (told to retire; a fresh
  // one finds the door shut) and the host ends.
  REQUIRE(::kill(-a.pid(), SIGCONT) == 0);
  auto code = a.wait(20s);
  INFO(a.read_all(1s));
  CHECK(code == 0);
}

TEST_CASE("netns: a host without the key is refused, the others serve") {
  support::netlab::skip_if_unavailable();
  auto wrong = fresh_key_file() + "-wrong";
  ::unlink(wrong.c_str());
  {
    std::ofstream out{wrong, std::ios::binary};
    out << std::string(32, 'k');
  }
  ::chmod(wrong.c_str(), 0600);
  lab_run run{"keyless", wrong};
  CHECK(run.hosts[1].wait(30s) == 2);
  auto said = run.hosts[1].read_all(5s);
  CHECK(said.find("refused") != std::string::npos);
  CHECK(run.next("joined ") == "2");
  CHECK(run.next("exact ") == "1");
  run.owner.kill(SIGUSR1);
  INFO(run.transcript());
  CHECK(run.by_host["h1"] > 0);
  CHECK(run.by_host.count("h2") == 0);
  CHECK(run.owner.wait(20s) == 0);
  CHECK(run.hosts[0].wait(20s) == 0);
  ::unlink(wrong.c_str());
}

TEST_CASE("netns: a queue of the owner shared by producers on three hosts: "
          "every item exactly once") {
  support::netlab::skip_if_unavailable();
  lab_run run{"queue"};
  REQUIRE(run.next("joined ") == "4");
  auto exact = run.next("exact ");
  if (exact != "1") {
    for (auto& h : run.hosts) {
      h.kill(SIGKILL);
      MESSAGE("host: " << h.read_all(2s));
    }
  }
  CHECK(exact == "1");
  INFO(run.transcript());
  CHECK(run.by_host["owner"] > 0);
  CHECK(run.by_host["h1"] > 0);
  CHECK(run.by_host["h2"] > 0);
  CHECK(run.by_host["owner"] + run.by_host["h1"] + run.by_host["h2"] == 3000);
  CHECK(run.owner.wait(20s) == 0);
  for (auto& h : run.hosts)
    CHECK(h.wait(20s) == 0);
}

namespace {

// Echoes `n` items from `in` to `out`, each doubled, on whatever host.
int echo_doubled(actors::queue<int> in, actors::queue<int> out, int n) {
  for (int i = 0; i < n; ++i)
    out.put(2 * in.get(30s));
  return static_cast<int>(::getppid());
}

// Answers `n` messages on its end of a pipe, each doubled.
int pipe_doubler(actors::connection<int> end, int n) {
  for (int i = 0; i < n; ++i)
    end.send(2 * end.recv(30s));
  return static_cast<int>(::getppid());
}

} // namespace

TEST_CASE("loopback: a task on a worker host talks over the owner's pipe") {
  loopback_pool lp{1};
  auto& p = lp.pool;
  auto a = worker_host(p.port(), lp.key, 1);
  REQUIRE(p.wait_for_remote_workers(1, 20s));
  // Two pipes, one task each: one runs on the local worker, the other on
  // the worker host, each answering as the messages come.
  auto [mine1, theirs1] = actors::pipe<int>();
  auto [mine2, theirs2] = actors::pipe<int>();
  auto r1 = p.apply_async(pipe_doubler, theirs1, 100);
  auto r2 = p.apply_async(pipe_doubler, theirs2, 100);
  long sum = 0;
  for (int i = 0; i < 100; ++i) {
    mine1.send(i);
    mine2.send(i);
    sum += mine1.recv(30s) + mine2.recv(30s);
  }
  CHECK(sum == 2 * 2 * 4950);
  std::set<int> hosts{r1.get(30s), r2.get(30s)};
  CHECK(hosts == std::set<int>{static_cast<int>(::getpid()), a.pid()});
  p.close();
  p.join();
  CHECK(a.wait(10s) == 0);
}

TEST_CASE("loopback: a task on a worker host uses the owner's queues") {
  loopback_pool lp{1};
  auto& p = lp.pool;
  auto a = worker_host(p.port(), lp.key, 1);
  REQUIRE(p.wait_for_remote_workers(1, 20s));
  actors::queue<int> in{0};
  actors::queue<int> out{0};
  // Two tasks: one on the local worker, one on the remote one.
  auto r1 = p.apply_async(echo_doubled, in, out, 50);
  auto r2 = p.apply_async(echo_doubled, in, out, 50);
  for (int i = 0; i < 100; ++i)
    in.put(i);
  long sum = 0;
  for (int i = 0; i < 100; ++i)
    sum += out.get(30s);
  CHECK(sum == 2 * 4950);
  std::set<int> hosts{r1.get(30s), r2.get(30s)};
  CHECK(hosts == std::set<int>{static_cast<int>(::getpid()), a.pid()});
  p.close();
  p.join();
  auto code = a.wait(10s);
  INFO(a.read_all(1s));
  CHECK(code == 0);
}

namespace {

// The code of an actors::error as the lab's lines print it.
std::string code_name(const actors::error& e) {
  if (e.code() == actors::errc::owner_unreachable)
    return "owner_unreachable";
  if (e.code() == actors::errc::process_died)
    return "process_died";
  return std::string{"other: "} + e.what();
}

// mgr-server KEY_FILE HOST: serves a manager on HOST (an address of its
// host) with a dict "counts" and a queue "jobs", and checks what a client
// of another host did with them; "idle" is a queue nobody puts into, on
// which the client waits at the end (not "jobs": its get could take an
// item this side has not taken yet).
int manager_server(int argc, char** argv) {
  if (argc < 2)
    return 2;
  actors::manager_options opts;
  opts.listen = std::string{argv[1]} + ":0";
  opts.key_file = argv[0];
  actors::manager m{opts};
  auto counts = m.dict<int, int>();
  auto jobs = m.queue<int>(10); // bounded: the client's puts wait for room
  auto go = m.event();
  auto slots = m.semaphore(0);
  auto idle = m.queue<int>();
  m.publish("counts", counts);
  m.publish("jobs", jobs);
  m.publish("idle", idle);
  m.publish("go", go);
  m.publish("slots", slots);
  std::printf("port %u\n", static_cast<unsigned>(m.port()));
  std::fflush(stdout);
  long sum = 0;
  for (int i = 0; i < 100; ++i)
    sum += jobs.get(60s);
  auto made = m.lookup<actors::shared_list<std::string>>("from-client");
  bool exact = sum == 4950 && counts.size() == 100 && counts.get(99) == 99 * 99
               && made.to_vector() == std::vector<std::string>{"hello"}
               && go.wait(30s) && slots.acquire(30s);
  std::printf("exact %d\n", exact ? 1 : 0);
  std::fflush(stdout);
  // Serves until the test kills this host.
  std::this_thread::sleep_for(120s);
  return 0;
}

support::helper_mode manager_server_mode{"mgr-server", manager_server};

// mgr-client ADDRESS KEY_FILE: uses the manager of another host, then
// waits on the empty queue "idle" until that host is gone.
int manager_client(int argc, char** argv) {
  if (argc < 2)
    return 2;
  auto m = actors::manager::connect(argv[0], argv[1]);
  auto counts = m.lookup<actors::shared_dict<int, int>>("counts");
  auto jobs = m.lookup<actors::queue<int>>("jobs");
  auto idle = m.lookup<actors::queue<int>>("idle");
  auto made = m.list<std::string>();
  made.append("hello");
  m.publish("from-client", made);
  m.lookup<actors::event>("go").set();
  m.lookup<actors::semaphore>("slots").release();
  for (int i = 0; i < 100; ++i) {
    counts.set(i, i * i);
    jobs.put(i, 30s);
  }
  std::printf("done\n");
  std::fflush(stdout);
  auto t0 = std::chrono::steady_clock::now();
  try {
    idle.get(); // no bound: only the end of its host ends it
    std::printf("queue: got an item\n");
  } catch (const actors::error& e) {
    std::printf("queue: %s after %ld ms\n", code_name(e).c_str(),
                static_cast<long>(ms_since(t0)));
  }
  try {
    counts.get(1);
    std::printf("dict: answered\n");
  } catch (const actors::error& e) {
    std::printf("dict: %s\n", code_name(e).c_str());
  }
  std::fflush(stdout);
  return 0;
}

support::helper_mode manager_client_mode{"mgr-client", manager_client};

} // namespace

namespace {

// A manager served from lab host `server_host` used by a client in
// `client_host`, up to its "exact" line; then `lose` ends or silences the
// server's host, and the client's blocked get and its next call must fail.
void served_manager_lost(int server_host, int client_host,
                         void (*lose)(support::netlab&, int),
                         std::chrono::milliseconds bound) {
  support::netlab::skip_if_unavailable();
  support::netlab lab{2};
  auto key = fresh_key_file();
  auto server = lab.helper(server_host, "mgr-server",
                           {key, lab.address(server_host)}, {}, true);
  auto port = server.read_line(60s);
  REQUIRE(port);
  REQUIRE(port->rfind("port ", 0) == 0);
  auto address = lab.address(server_host) + ":" + port->substr(5);
  auto client = lab.helper(client_host, "mgr-client", {address, key}, {},
                           true);
  auto done = client.read_line(60s);
  if (done != std::optional<std::string>{"done"}) {
    client.kill(SIGKILL);
    MESSAGE("client: " << client.read_all(2s));
  }
  REQUIRE(done == std::optional<std::string>{"done"});
  auto exact = server.read_line(60s);
  if (exact != std::optional<std::string>{"exact 1"}) {
    server.kill(SIGKILL);
    MESSAGE("server: " << server.read_all(2s));
  }
  CHECK(exact == std::optional<std::string>{"exact 1"});
  lose(lab, server_host);
  auto queue = client.read_line(30s);
  REQUIRE(queue);
  MESSAGE(*queue);
  CHECK(queue->rfind("queue: owner_unreachable after ", 0) == 0);
  auto ms = std::atol(queue->c_str() + queue->rfind("after ") + 6);
  CHECK(ms < bound.count());
  CHECK(client.read_line(30s)
        == std::optional<std::string>{"dict: owner_unreachable"});
  CHECK(client.wait(20s) == 0);
  ::unlink(key.c_str());
}

} // namespace

TEST_CASE("netns: a manager served to another host: its dict, list and "
          "queue used from there: its host killed, the client's calls fail") {
  served_manager_lost(
    0, 1, [](support::netlab& lab, int host) { lab.kill_host(host); },
    5000ms);
}

TEST_CASE("netns: a manager served to another host whose link is cut: the "
          "client's calls fail within lost_after (5 s) and a margin") {
  served_manager_lost(
    1, 0, [](support::netlab& lab, int host) { lab.cut(host); }, 8000ms);
}
