// The netlab (tests/support/netlab.hpp), the simulated hosts of the tests
// across machines: a TCP server on the owner's host is reached from every
// worker host and not from the root namespace; cut() and restore() stop
// and resume a worker's traffic, both ways, and only its own; kill_host()
// kills only that host's processes; and no namespace or process is left
// behind after the destructor, the watchdog's exit or a SIGKILL of the test
// process (the next lab's sweep). Skipped (exit code 77) where no lab can
// be built, with the reason printed.

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/netlab.hpp"
#include "support/subprocess.hpp"
#include "support/watchdog.hpp"

using namespace std::chrono_literals;
using support::netlab;

namespace {

using ms = std::chrono::milliseconds;

ms left_until(std::chrono::steady_clock::time_point deadline) {
  return std::max(std::chrono::duration_cast<ms>(
                    deadline - std::chrono::steady_clock::now()),
                  ms{0});
}

// Connects to `addr`:`port` within `bound`: the socket, or why not.
struct connection {
  int fd = -1;
  std::string error;
};

connection connect_to(const std::string& addr, int port, ms bound) {
  connection c;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) {
    c.error = "bad address " + addr;
    return c;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  auto* to = reinterpret_cast<sockaddr*>(&sa);
  if (::connect(fd, to, sizeof(sa)) != 0 && errno != EINPROGRESS) {
    c.error = std::strerror(errno);
    ::close(fd);
    return c;
  }
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, static_cast<int>(bound.count())) != 1) {
    c.error = "timed out";
    ::close(fd);
    return c;
  }
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    c.error = std::strerror(err);
    ::close(fd);
    return c;
  }
  ::fcntl(fd, F_SETFL, 0);
  c.fd = fd;
  return c;
}

// Sends `line` and a newline on `fd`, and reads a line back within `bound`.
std::optional<std::string> exchange(int fd, const std::string& line, ms bound) {
  auto out = line + "\n";
  if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL)
      != static_cast<ssize_t>(out.size()))
    return std::nullopt;
  auto deadline = std::chrono::steady_clock::now() + bound;
  std::string in;
  while (in.find('\n') == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left_until(deadline).count())) != 1)
      return std::nullopt;
    char buf[256];
    auto got = ::recv(fd, buf, sizeof(buf), 0);
    if (got <= 0)
      return std::nullopt;
    in.append(buf, static_cast<size_t>(got));
  }
  return in.substr(0, in.find('\n'));
}

// -- helper roles, run in the lab's hosts -------------------------------------

// netlab-serve ADDR: a TCP echo server on ADDR; prints its port, then
// echoes what each client sends until killed.
int serve(int argc, char** argv) {
  if (argc < 1)
    return 2;
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  ::inet_pton(AF_INET, argv[0], &sa.sin_addr);
  socklen_t len = sizeof(sa);
  auto* addr = reinterpret_cast<sockaddr*>(&sa);
  if (::bind(listener, addr, len) != 0 || ::listen(listener, 16) != 0
      || ::getsockname(listener, addr, &len) != 0) {
    std::printf("cannot listen on %s: %s\n", argv[0], std::strerror(errno));
    return 1;
  }
  std::printf("%d\n", ntohs(sa.sin_port));
  std::fflush(stdout);
  std::vector<pollfd> fds{{listener, POLLIN, 0}};
  for (;;) {
    if (::poll(fds.data(), fds.size(), -1) < 0)
      continue;
    for (size_t i = fds.size(); i-- > 1;) {
      if (!fds[i].revents)
        continue;
      char buf[256];
      auto got = ::recv(fds[i].fd, buf, sizeof(buf), 0);
      if (got <= 0 || ::send(fds[i].fd, buf, static_cast<size_t>(got),
                             MSG_NOSIGNAL) != got) {
        ::close(fds[i].fd);
        fds.erase(fds.begin() + static_cast<long>(i));
      }
    }
    if (fds[0].revents) {
      auto fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0)
        fds.push_back({fd, POLLIN, 0});
    }
  }
}

support::helper_mode serve_mode{"netlab-serve", serve};

// netlab-connect ADDR PORT MS: connects within MS milliseconds and has a
// line echoed within as long; prints "echoed" (exit 0) or why not (exit 1).
int connect_once(int argc, char** argv) {
  if (argc < 3)
    return 2;
  ms bound{std::atoi(argv[2])};
  auto c = connect_to(argv[0], std::atoi(argv[1]), bound);
  if (c.fd < 0) {
    std::printf("connect: %s\n", c.error.c_str());
    return 1;
  }
  auto echo = exchange(c.fd, "ping", bound);
  ::close(c.fd);
  std::printf("%s\n", echo == "ping" ? "echoed" : "no echo");
  return echo == "ping" ? 0 : 1;
}

support::helper_mode connect_mode{"netlab-connect", connect_once};

int wakeups[2];

void on_wakeup(int) {
  char byte = 0;
  [[maybe_unused]] auto n = ::write(wakeups[1], &byte, 1);
}

// netlab-session ADDR PORT: one connection; sends "1" and prints
// "echo 1", then at each SIGUSR1 sends the next number and prints its
// echo ("echo N", waiting up to 50 s), or "lost" and exits 1.
int session(int argc, char** argv) {
  if (argc < 2)
    return 2;
  if (::pipe2(wakeups, O_CLOEXEC) != 0)
    return 2;
  struct sigaction sa {};
  sa.sa_handler = on_wakeup;
  ::sigaction(SIGUSR1, &sa, nullptr);
  auto c = connect_to(argv[0], std::atoi(argv[1]), 10s);
  for (int n = 1; c.fd >= 0; ++n) {
    auto echo = exchange(c.fd, std::to_string(n), 50s);
    if (echo != std::to_string(n))
      break;
    std::printf("echo %d\n", n);
    std::fflush(stdout);
    char byte;
    while (::read(wakeups[0], &byte, 1) != 1) {
    }
  }
  std::printf("lost\n");
  return 1;
}

support::helper_mode session_mode{"netlab-session", session};

// netlab-family: forks a child; prints the child's pid; both wait to be
// killed. The child is started by no handle, as a worker's own children.
int family(int, char**) {
  auto child = ::fork();
  if (child == 0)
    for (;;)
      ::pause();
  std::printf("%d\n", static_cast<int>(child));
  std::fflush(stdout);
  for (;;)
    ::pause();
}

support::helper_mode family_mode{"netlab-family", family};

// netlab-hold hang|wait: builds a lab of 2 hosts, a server in host 0 and a
// family in host 1; prints "NS0 NS1 SERVER FAMILY CHILD", then either
// hangs under a 1 s watchdog (hang) or waits to be killed (wait).
int hold(int argc, char** argv) {
  if (argc < 1)
    return 2;
  netlab lab{2};
  auto server = lab.helper(0, "netlab-serve", {netlab::owner_address()});
  auto family = lab.helper(1, "netlab-family");
  auto port = server.read_line(10s);
  auto child = family.read_line(10s);
  if (!port || !child)
    return 1;
  std::printf("%s %s %d %d %s\n", lab.name(0).c_str(), lab.name(1).c_str(),
              static_cast<int>(server.pid()), static_cast<int>(family.pid()),
              child->c_str());
  std::fflush(stdout);
  if (std::strcmp(argv[0], "hang") == 0)
    support::arm_watchdog(1s, "netlab-hold");
  for (;;)
    ::pause();
}

support::helper_mode hold_mode{"netlab-hold", hold};

// -- checks -------------------------------------------------------------------

bool namespace_exists(const std::string& name) {
  struct stat st;
  return ::stat(("/run/netns/" + name).c_str(), &st) == 0
         || netlab::ip({"netns", "list"}).find(name) != std::string::npos;
}

int port_of(support::subprocess& server) {
  auto line = server.read_line(10s);
  REQUIRE(line);
  auto port = std::atoi(line->c_str());
  REQUIRE_MESSAGE(port > 0, *line);
  return port;
}

// Runs netlab-connect in `host` to `addr`:`port` within `bound`: what it
// printed ("echoed", "connect: WHY" or "no echo"), or how it failed.
std::string reach(netlab& lab, int host, const std::string& addr, int port,
                  ms bound) {
  auto probe = lab.helper(
    host, "netlab-connect",
    {addr, std::to_string(port), std::to_string(bound.count())});
  auto line = probe.read_line(bound * 2 + 10s);
  auto code = probe.wait(10s);
  if (!line || !code)
    return "no answer";
  if ((*code == 0) != (*line == "echoed"))
    return *line + " (exit " + std::to_string(*code) + ")";
  return *line;
}

bool refused(const std::string& reached) {
  return reached.rfind("connect: ", 0) == 0;
}

} // namespace

TEST_CASE("a server in host 0 is reached from every worker host at "
          "owner_address(), and not from the root namespace") {
  netlab::skip_if_unavailable();
  auto t0 = std::chrono::steady_clock::now();
  std::optional<netlab> lab{std::in_place, 3};
  auto built = std::chrono::steady_clock::now();
  CHECK(lab->hosts() == 3);
  CHECK(netlab::owner_address() == "10.213.0.1");
  CHECK(lab->address(0) == netlab::owner_address());
  CHECK(lab->address(2) == "10.213.0.3");
  auto server = lab->helper(0, "netlab-serve", {netlab::owner_address()});
  auto port = port_of(server);
  CHECK(reach(*lab, 1, netlab::owner_address(), port, 5s) == "echoed");
  CHECK(reach(*lab, 2, netlab::owner_address(), port, 5s) == "echoed");
  // The root namespace has no route into the lab: the SYN goes nowhere
  // (default route) or is refused at once (no route).
  auto c = connect_to(netlab::owner_address(), port, 500ms);
  CHECK_MESSAGE(c.fd < 0, "reached the lab from the root namespace");
  if (c.fd >= 0)
    ::close(c.fd);
  auto t1 = std::chrono::steady_clock::now();
  lab.reset();
  auto t2 = std::chrono::steady_clock::now();
  std::printf("netlab: 3 hosts built in %lld ms, torn down in %lld ms\n",
              static_cast<long long>(
                std::chrono::duration_cast<ms>(built - t0).count()),
              static_cast<long long>(
                std::chrono::duration_cast<ms>(t2 - t1).count()));
}

TEST_CASE("run starts a program in its host, in a process group of its own, "
          "with the environment added") {
  netlab::skip_if_unavailable();
  netlab lab{2};
  auto sh = lab.run(1, "/bin/sh",
                    {"-c", "echo \"$NETLAB_GREETING\" $(readlink "
                           "/proc/self/ns/net); echo to-stderr >&2"},
                    {"NETLAB_GREETING=hello"}, true);
  struct stat ns;
  REQUIRE(::stat(("/run/netns/" + lab.name(1)).c_str(), &ns) == 0);
  auto out = sh.read_all(10s);
  CHECK(sh.wait(10s) == 0);
  CHECK(out.find("hello net:[" + std::to_string(ns.st_ino) + "]") == 0);
  CHECK(out.find("to-stderr") != std::string::npos);
  // Its own process group: the helper's group is its pid.
  auto family = lab.helper(1, "netlab-family");
  REQUIRE(family.read_line(10s));
  CHECK(::getpgid(family.pid()) == family.pid());
}

TEST_CASE("cut stops a worker host's traffic both ways, and only its own, "
          "until restore") {
  netlab::skip_if_unavailable();
  netlab lab{3};
  auto owner = netlab::owner_address();
  auto server = lab.helper(0, "netlab-serve", {owner});
  auto port = port_of(server);
  auto worker_server = lab.helper(1, "netlab-serve", {lab.address(1)});
  auto worker_port = port_of(worker_server);
  auto session = lab.helper(1, "netlab-session", {owner, std::to_string(port)});
  REQUIRE(session.read_line(10s) == "echo 1");

  lab.cut(1);
  CHECK(refused(reach(lab, 1, owner, port, 1s)));
  CHECK(refused(reach(lab, 0, lab.address(1), worker_port, 1s)));
  CHECK(refused(reach(lab, 2, lab.address(1), worker_port, 1s)));
  CHECK(reach(lab, 2, owner, port, 5s) == "echoed");
  // The established connection stalls: nothing gets through (a bounded
  // wait that must run out), and nothing breaks it.
  session.kill(SIGUSR1);
  CHECK(session.read_line(500ms) == std::nullopt);

  lab.restore(1);
  CHECK(session.read_line(20s) == "echo 2");
  CHECK(reach(lab, 1, owner, port, 5s) == "echoed");
  CHECK(reach(lab, 0, lab.address(1), worker_port, 5s) == "echoed");
  CHECK(reach(lab, 2, lab.address(1), worker_port, 5s) == "echoed");
  session.kill(SIGUSR1);
  CHECK(session.read_line(10s) == "echo 3");
}

TEST_CASE("kill_host kills every process of that host and no other") {
  netlab::skip_if_unavailable();
  netlab lab{3};
  auto family = lab.helper(1, "netlab-family");
  auto child = family.read_line(10s);
  REQUIRE(child);
  auto grandchild = static_cast<pid_t>(std::atoi(child->c_str()));
  auto bystander = lab.helper(2, "netlab-serve", {lab.address(2)});
  auto port = port_of(bystander);
  auto owner = lab.helper(0, "netlab-family");
  REQUIRE(owner.read_line(10s));

  lab.kill_host(1);
  CHECK(family.wait(1s) == -SIGKILL);
  CHECK_FALSE(support::process_running(grandchild));
  CHECK(support::process_running(bystander.pid()));
  CHECK(support::process_running(owner.pid()));
  // The host itself lives on: it runs processes and reaches host 2.
  CHECK(reach(lab, 1, lab.address(2), port, 5s) == "echoed");
}

TEST_CASE("the destructor kills every process of the lab and deletes its "
          "namespaces") {
  netlab::skip_if_unavailable();
  std::optional<netlab> lab{std::in_place, 3};
  std::vector<std::string> names;
  for (int i = 0; i < lab->hosts(); ++i)
    names.push_back(lab->name(i));
  auto server = lab->helper(0, "netlab-serve", {netlab::owner_address()});
  port_of(server);
  auto family = lab->helper(1, "netlab-family");
  auto child = family.read_line(10s);
  REQUIRE(child);
  auto grandchild = static_cast<pid_t>(std::atoi(child->c_str()));
  auto sleeper = lab->run(2, "/bin/sleep", {"1000"});
  for (auto& name : names)
    REQUIRE(namespace_exists(name));

  lab.reset();
  for (auto& name : names)
    CHECK_FALSE(namespace_exists(name));
  CHECK(server.wait(1s) == -SIGKILL);
  CHECK(family.wait(1s) == -SIGKILL);
  CHECK(sleeper.wait(1s) == -SIGKILL);
  CHECK_FALSE(support::process_running(grandchild));
}

TEST_CASE("a test process ended by the watchdog leaves nothing behind") {
  netlab::skip_if_unavailable();
  auto holder = support::subprocess::helper("netlab-hold", {"hang"});
  auto line = holder.read_line(20s);
  REQUIRE(line);
  char ns0[256], ns1[256];
  int server, family, child;
  REQUIRE(std::sscanf(line->c_str(), "%255s %255s %d %d %d", ns0, ns1,
                      &server, &family, &child)
          == 5);
  CHECK(holder.wait(20s) == 124);
  CHECK_FALSE(namespace_exists(ns0));
  CHECK_FALSE(namespace_exists(ns1));
  for (auto pid : {server, family, child})
    CHECK_FALSE(support::process_running(pid));
}

TEST_CASE("a lab whose test process was killed is swept by the next lab") {
  netlab::skip_if_unavailable();
  auto holder = support::subprocess::helper("netlab-hold", {"wait"});
  auto line = holder.read_line(20s);
  REQUIRE(line);
  char ns0[256], ns1[256];
  int server, family, child;
  REQUIRE(std::sscanf(line->c_str(), "%255s %255s %d %d %d", ns0, ns1,
                      &server, &family, &child)
          == 5);
  holder.kill(SIGKILL);
  REQUIRE(holder.wait(10s) == -SIGKILL);
  // Left behind (unless another test's lab swept them already).
  netlab lab{1};
  CHECK_FALSE(namespace_exists(ns0));
  CHECK_FALSE(namespace_exists(ns1));
  for (auto pid : {server, family, child})
    CHECK_FALSE(support::process_running(pid));
}
