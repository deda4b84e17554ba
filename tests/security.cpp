// The owner's port: only a process that proves the run's key reaches CAF.
// Foreign CAF nodes, garbage, silent connections and floods are dropped, and
// the owner keeps serving its children and legitimate peers meanwhile.

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <cstdio>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/all.hpp"
#include "auth.hpp"
#include "listener.hpp"
#include "runtime.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using actors::detail::runtime;

namespace {

// -- helper roles ---------------------------------------------------------------

// A legitimate node: joins the owner with the key from a file and pings it.
// Exit codes: 0 answered, 3 refused as unauthenticated, 4 any other failure.
int peer(int argc, char** argv) {
  if (argc < 2)
    return 2;
  int code = 4;
  try {
    auto key = actors::detail::read_secret(argv[1]);
    auto owner = runtime::join("127.0.0.1",
                               static_cast<std::uint16_t>(std::atoi(argv[0])),
                               key, 5s);
    caf::scoped_actor self{runtime::get().system()};
    self->request(owner, 5s, actors::detail::ping_atom::value)
      .receive(
        [&](actors::detail::pong_atom, pid_t pid) {
          std::printf("pong %d\n", static_cast<int>(pid));
          code = 0;
        },
        [&](caf::error& err) {
          std::printf("error %s\n", runtime::get().system().render(err).c_str());
        });
  } catch (const actors::error& e) {
    std::printf("refused %s\n", e.what());
    code = e.code() == actors::errc::unauthenticated ? 3 : 4;
  }
  std::fflush(stdout);
  ::_exit(code);
}

support::helper_mode peer_mode{"peer", peer};

// A stock CAF 0.17 node that knows the port but not the key.
int foreign_caf(int argc, char** argv) {
  if (argc < 1)
    return 2;
  auto port = static_cast<std::uint16_t>(std::atoi(argv[0]));
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  auto* sys = new caf::actor_system{cfg}; // never destroyed: we _exit
  auto node = sys->middleman().connect("127.0.0.1", port);
  std::printf("connect %s\n", node ? "succeeded" : "failed");
  auto actor = sys->middleman().remote_actor("127.0.0.1", port);
  std::printf("remote_actor %s\n", actor ? "succeeded" : "failed");
  if (node) {
    auto spawned = sys->middleman().remote_spawn<caf::actor>(
      *node, "anything", caf::make_message(), 2s);
    std::printf("remote_spawn %s\n", spawned ? "succeeded" : "failed");
  }
  std::fflush(stdout);
  ::_exit(0);
}

support::helper_mode foreign_caf_mode{"foreign-caf", foreign_caf};

// -- test side helpers ------------------------------------------------------------

int connect_to_owner() {
  auto fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(actors::port());
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
          == 0);
  return fd;
}

// Reads until the owner closes the connection; returns how long it took, or
// nothing if it stayed open for `bound`.
std::optional<std::chrono::milliseconds>
time_until_closed(int fd, std::chrono::milliseconds bound) {
  auto t0 = std::chrono::steady_clock::now();
  auto deadline = t0 + bound;
  char buf[256];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      continue;
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
  }
}

struct key_file {
  std::string path;
  explicit key_file(const actors::detail::secret& key) {
    char tmpl[] = "/tmp/actors-key-XXXXXX";
    auto dir = ::mkdtemp(tmpl);
    REQUIRE(dir != nullptr);
    path = std::string{dir} + "/key";
    actors::detail::write_secret(path, key);
  }
  ~key_file() {
    ::unlink(path.c_str());
    ::rmdir(path.substr(0, path.rfind('/')).c_str());
  }
};

void owner_still_works() {
  actors::process p{[] {}};
  p.start();
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
}

auto stats() {
  return runtime::get().acceptor().stats();
}

} // namespace

TEST_CASE("the owner listens on loopback only, on an ephemeral port") {
  auto port = actors::port();
  CHECK(port != 0);
  // Ask the kernel where the listening socket is bound.
  char cmd[64];
  std::snprintf(cmd, sizeof(cmd), "/proc/%d/net/tcp", static_cast<int>(getpid()));
  std::FILE* f = std::fopen(cmd, "r");
  REQUIRE(f != nullptr);
  char line[512];
  bool found = false;
  while (std::fgets(line, sizeof(line), f)) {
    unsigned local_ip, local_port, state;
    if (std::sscanf(line, " %*d: %8X:%4X %*8X:%*4X %2X", &local_ip, &local_port,
                    &state)
          == 3
        && local_port == port && state == 0x0A /* LISTEN */) {
      found = true;
      CHECK(local_ip == htonl(INADDR_LOOPBACK));
    }
  }
  std::fclose(f);
  CHECK(found);
}

TEST_CASE("a node holding the key joins and is answered") {
  key_file key{runtime::get().key()};
  auto before = stats();
  auto node = support::subprocess::helper(
    "peer", {std::to_string(actors::port()), key.path});
  auto line = node.read_line(10s);
  REQUIRE(line);
  CHECK(*line == "pong " + std::to_string(getpid()));
  CHECK(node.wait(10s) == 0);
  CHECK(stats().authenticated == before.authenticated + 1);
}

TEST_CASE("a node with another key is refused and reaches nothing") {
  key_file key{actors::detail::make_secret()};
  auto before = stats();
  auto node = support::subprocess::helper(
    "peer", {std::to_string(actors::port()), key.path});
  CHECK(node.wait(10s) == 3);
  CHECK(stats().authenticated == before.authenticated);
  CHECK(stats().rejected == before.rejected + 1);
  owner_still_works();
}

TEST_CASE("a stock CAF node cannot connect, reach an actor or spawn") {
  auto before = stats();
  auto node = support::subprocess::helper("foreign-caf",
                                          {std::to_string(actors::port())});
  auto out = node.read_all(20s);
  CHECK(node.wait(10s) == 0);
  CHECK(out.find("connect failed") != std::string::npos);
  CHECK(out.find("remote_actor failed") != std::string::npos);
  CHECK(out.find("succeeded") == std::string::npos);
  CHECK(stats().authenticated == before.authenticated);
  // The stock node hangs up by itself after reading our greeting; the owner
  // counts each connection once it sees the hang-up.
  CHECK(support::eventually(
    [&] { return stats().rejected >= before.rejected + 2; }, 5s));
  owner_still_works();
}

TEST_CASE("garbage is dropped at once") {
  auto before = stats();
  auto fd = connect_to_owner();
  std::uint8_t junk[actors::detail::client_proof_size];
  for (size_t i = 0; i < sizeof(junk); ++i)
    junk[i] = static_cast<std::uint8_t>(i * 37 + 11);
  REQUIRE(::send(fd, junk, sizeof(junk), MSG_NOSIGNAL)
          == static_cast<ssize_t>(sizeof(junk)));
  auto closed = time_until_closed(fd, 5s);
  ::close(fd);
  REQUIRE(closed);
  CHECK(*closed < 1s);
  CHECK(stats().rejected == before.rejected + 1);
  CHECK(stats().authenticated == before.authenticated);
  owner_still_works();
}

TEST_CASE("a silent connection is dropped at the handshake deadline") {
  auto fd = connect_to_owner();
  auto closed = time_until_closed(fd, 10s);
  ::close(fd);
  REQUIRE(closed);
  CHECK(*closed < 3s);
  MESSAGE("silent connection dropped after " << closed->count() << " ms");
}

TEST_CASE("a flood of silent connections does not keep a keyed node out") {
  rlimit lim;
  ::getrlimit(RLIMIT_NOFILE, &lim);
  constexpr int flood = 400;
  if (lim.rlim_cur < 2 * flood + 100) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 4 * flood);
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  std::vector<int> fds;
  for (int i = 0; i < flood; ++i)
    fds.push_back(connect_to_owner());
  key_file key{runtime::get().key()};
  auto t0 = std::chrono::steady_clock::now();
  auto node = support::subprocess::helper(
    "peer", {std::to_string(actors::port()), key.path});
  CHECK(node.wait(10s) == 0);
  auto joined = std::chrono::steady_clock::now() - t0;
  MESSAGE("keyed node answered after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(joined)
               .count()
          << " ms during a flood of " << flood << " connections");
  owner_still_works();
  for (auto fd : fds)
    ::close(fd);
}
