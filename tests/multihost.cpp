// Pools spread over hosts (issue 8): worker hosts are this test binary
// started with --actors-worker, joined to a pool that listens.

#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"
#include "support/error_code.hpp"
#include "support/subprocess.hpp"

#include <cmath>
#include <sys/stat.h>

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

int sleeps_forever(int) {
  std::this_thread::sleep_for(1h);
  return 0;
}

int parent_pid(int) {
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
  CHECK(a.wait(20s) == 0);
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
