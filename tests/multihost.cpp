// Pools spread over hosts (issue 8): worker hosts are this test binary
// started with --actors-worker, joined to a pool that listens.

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"
#include "support/error_code.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

// A task's result and the host that computed it (the worker's parent: the
// owner for local workers, a worker host's process for remote ones).
std::pair<long, int> square_where(int x) {
  return {static_cast<long>(x) * x, static_cast<int>(::getppid())};
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
                                int processes) {
  return support::subprocess{self_exe(),
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
