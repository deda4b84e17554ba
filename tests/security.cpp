// The owner's port: only a process that proves the run's key reaches CAF.
// Foreign CAF nodes, garbage, silent connections and floods are dropped, and
// the owner keeps serving its children and legitimate peers meanwhile.

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/basp/header.hpp>
#include <caf/io/basp/message_type.hpp>
#include <caf/io/basp/version.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/node_id.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/all.hpp"
#include "net/auth.hpp"
#include "net/listener.hpp"
#include "node/runtime.hpp"
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

// BASP bytes (CAF 0.17's wire protocol) as a raw client would send them to
// reach actor `dest`: a BASP client handshake, then a direct message
// (nothing if serializing fails).
std::vector<char> basp_bytes(const caf::node_id& self_node,
                             caf::actor_id dest) {
  namespace basp = caf::io::basp;
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  // Client handshake: header, then the node id and the application ids.
  std::vector<char> payload;
  {
    caf::binary_serializer p{nullptr, payload};
    auto node = self_node;
    std::vector<std::string> app_ids{"generic-caf-app"};
    if (p(node, app_ids))
      return {};
  }
  basp::header hs{basp::message_type::client_handshake, 0,
                  static_cast<std::uint32_t>(payload.size()), basp::version, 0,
                  0};
  if (sink(hs))
    return {};
  buf.insert(buf.end(), payload.begin(), payload.end());
  // Direct message to `dest`: an empty forwarding stack and the content.
  payload.clear();
  {
    caf::binary_serializer p{nullptr, payload};
    std::vector<caf::strong_actor_ptr> stages;
    auto msg = caf::make_message(std::string{"intrusion"}, dest);
    if (p(stages, msg))
      return {};
  }
  basp::header dm{basp::message_type::direct_message, 0,
                  static_cast<std::uint32_t>(payload.size()), 0, 0, dest};
  if (sink(dm))
    return {};
  buf.insert(buf.end(), payload.begin(), payload.end());
  return buf;
}

// Opens one connection per guessed id 1..N to the owner's port and sends
// each the BASP bytes for its id, with no handshake of ours; returns how
// many the owner closed within `bound` (all at once, one deadline). The
// owner reads what it takes for a key proof and drops the connection: no
// byte of this ever reaches CAF's BASP broker.
int raw_basp_attempts(std::uint16_t port, const caf::node_id& self_node,
                      caf::actor_id guesses, std::chrono::milliseconds bound) {
  std::vector<pollfd> open;
  for (caf::actor_id id = 1; id <= guesses; ++id) {
    auto buf = basp_bytes(self_node, id);
    if (buf.empty())
      continue;
    auto fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      continue;
    }
    // The owner may already have hung up by the time the tail is sent.
    [[maybe_unused]] auto sent = ::send(fd, buf.data(), buf.size(),
                                        MSG_NOSIGNAL);
    open.push_back({fd, POLLIN, 0});
  }
  int closed = 0;
  auto deadline = std::chrono::steady_clock::now() + bound;
  char junk[256];
  while (!open.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      break;
    if (::poll(open.data(), open.size(), static_cast<int>(left.count())) <= 0)
      continue;
    for (auto i = open.size(); i-- > 0;) {
      if (open[i].revents == 0)
        continue;
      if (::recv(open[i].fd, junk, sizeof(junk), 0) > 0)
        continue; // our greeting: the owner's magic and nonce
      ::close(open[i].fd);
      open.erase(open.begin() + static_cast<std::ptrdiff_t>(i));
      ++closed;
    }
  }
  for (auto& p : open)
    ::close(p.fd);
  return closed;
}

// A stock CAF 0.17 node that knows the port, and (as generously as can be)
// the owner's node id and a range of actor ids to guess, 1..N: not the key.
// Args: port, the owner's node id, N. It tries CAF's own calls, then CAF's
// proxies for guessed ids, then raw BASP bytes addressed to guessed ids.
int foreign_caf(int argc, char** argv) {
  if (argc < 3)
    return 2;
  auto port = static_cast<std::uint16_t>(std::atoi(argv[0]));
  caf::node_id owner_node;
  if (caf::parse(caf::string_view{argv[1]}, owner_node) || !owner_node)
    return 2;
  auto guesses = static_cast<caf::actor_id>(std::strtoull(argv[2], nullptr, 10));
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
  // The handshake failed, so this node has no connection (no route) to the
  // owner: knowing its node id does not help.
  auto spawned = sys->middleman().remote_spawn<caf::actor>(
    owner_node, "anything", caf::make_message(), 2s);
  std::printf("remote_spawn on the owner's node id %s\n",
              spawned ? "succeeded" : "failed");
  // CAF makes a proxy (an address to send to) for any node id and actor id,
  // but with no route to the owner's node its BASP broker has nowhere to
  // send what goes through one: a request comes back as an error. Send one
  // through a proxy per guessed id (all at once, each bounded by 2 s).
  auto broker = sys->middleman().named_broker<caf::io::basp_broker>(
    caf::atom("BASP"));
  auto* proxies = static_cast<caf::io::basp_broker*>(
                    caf::actor_cast<caf::abstract_actor*>(broker))
                    ->proxy_registry_ptr();
  caf::scoped_actor self{*sys};
  using handle = decltype(self->request(caf::actor{}, 2s, std::string{},
                                        caf::actor_id{}));
  std::vector<handle> requests;
  for (caf::actor_id id = 1; id <= guesses; ++id)
    if (auto proxy = proxies->get_or_put(owner_node, id))
      requests.push_back(self->request(caf::actor_cast<caf::actor>(proxy), 2s,
                                       std::string{"intrusion"}, id));
  int answered = 0;
  int failed = 0;
  std::set<std::string> reasons;
  for (auto& request : requests)
    request.receive([&](std::string&) { ++answered; },
                    [&](caf::error& err) {
                      ++failed;
                      reasons.insert(sys->render(err));
                    });
  std::printf("requests to guessed ids through CAF proxies: %d, answered %d, "
              "failed %d\n",
              static_cast<int>(requests.size()), answered, failed);
  for (auto& reason : reasons)
    std::printf("  failed with: %s\n", reason.c_str());
  // Below CAF: BASP bytes addressed to each guessed id, one connection each.
  auto closed = raw_basp_attempts(port, sys->node(), guesses, 5s);
  std::printf("raw BASP connections closed by the owner: %d of %d\n", closed,
              static_cast<int>(guesses));
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

// A canary actor of the owner: counts every message it is sent, except the
// get_atom by which the test asks for that count, and answers them.
caf::behavior canary(caf::event_based_actor* self,
                     std::shared_ptr<std::atomic<int>> got) {
  self->set_default_handler(
    [got](caf::scheduled_actor*, caf::message_view&) -> caf::result<caf::message> {
      ++*got;
      return caf::make_message(std::string{"the canary got it"});
    });
  return {[got](caf::get_atom) { return got->load(); }};
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

TEST_CASE("a stock CAF node cannot connect, spawn, or reach an actor by "
          "guessed ids") {
  // Our key handshake runs before BASP: the listener reads a key proof (64
  // bytes) from each new connection and hands the socket to CAF's BASP
  // broker only when the proof is right. A foreign node therefore never
  // gets as far as BASP's own handshake: it has no route to the owner, so
  // even with the owner's exact node id it can neither spawn nor make a
  // proxy for a guessed actor id; and BASP bytes sent to the port anyway
  // (a handshake, then a direct message to a guessed id) are read as a
  // wrong key proof and dropped, without reaching CAF.
  auto& sys = runtime::get().system();
  auto got = std::make_shared<std::atomic<int>>(0);
  auto bird = sys.spawn(canary, got);
  // The guesses cover the canary's id and the service actor's id.
  auto guesses = std::max<caf::actor_id>(
    {caf::actor_id{100}, bird.id(), runtime::get().service_actor().id()});
  auto running = sys.registry().running();
  auto before = stats();
  auto node = support::subprocess::helper(
    "foreign-caf", {std::to_string(actors::port()), caf::to_string(sys.node()),
                    std::to_string(guesses)});
  auto out = node.read_all(30s);
  CHECK(node.wait(10s) == 0);
  MESSAGE("the foreign node reports:\n" << out);
  auto said = [&](const std::string& line) {
    return out.find(line + "\n") != std::string::npos;
  };
  CHECK(said("connect failed"));
  CHECK(said("remote_actor failed"));
  CHECK(said("remote_spawn on the owner's node id failed"));
  CHECK(said("requests to guessed ids through CAF proxies: "
             + std::to_string(guesses) + ", answered 0, failed "
             + std::to_string(guesses)));
  CHECK(said("raw BASP connections closed by the owner: "
             + std::to_string(guesses) + " of " + std::to_string(guesses)));
  CHECK(out.find("succeeded") == std::string::npos);
  // Every connection it made was accepted and then rejected (the stock
  // node hangs up by itself after reading our greeting; the owner counts
  // each connection once it sees the hang-up): CAF's two, one per guess.
  CHECK(support::eventually(
    [&] {
      auto now = stats();
      return now.rejected - before.rejected == now.accepted - before.accepted
             && now.rejected - before.rejected >= 2 + guesses;
    },
    10s));
  CHECK(stats().authenticated == before.authenticated);
  // Nothing was spawned, and the canary was sent nothing.
  CHECK(sys.registry().running() == running);
  {
    caf::scoped_actor self{sys};
    int count = -1;
    self->request(bird, 5s, caf::get_atom::value)
      .receive([&](int n) { count = n; }, [&](caf::error&) {});
    CHECK(count == 0);
  }
  caf::anon_send_exit(bird, caf::exit_reason::user_shutdown);
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

TEST_CASE("a flood of 1,000 connections does not keep a keyed node out") {
  constexpr std::uint64_t flood = 1000;
  // This process holds both ends: the flood's sockets and the listener's
  // (at most listener::max_pending at a time), beside its usual ones.
  constexpr rlim_t needed = flood + actors::detail::listener::max_pending + 256;
  rlimit lim;
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &lim) == 0);
  if (lim.rlim_cur < needed) {
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < needed) {
      MESSAGE("skipped: the hard limit on open files ("
              << lim.rlim_max << ") is below the " << needed
              << " this test needs");
      return;
    }
    lim.rlim_cur = needed;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &lim) == 0);
  }
  auto before = stats();
  std::vector<int> fds;
  for (std::uint64_t i = 0; i < flood; ++i)
    fds.push_back(connect_to_owner());
  key_file key{runtime::get().key()};
  auto t0 = std::chrono::steady_clock::now();
  auto node = support::subprocess::helper(
    "peer", {std::to_string(actors::port()), key.path});
  auto line = node.read_line(10s);
  auto joined = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - t0);
  REQUIRE(line);
  CHECK(*line == "pong " + std::to_string(getpid()));
  CHECK(node.wait(10s) == 0);
  CHECK(joined < 5s);
  MESSAGE("keyed node answered after " << joined.count()
                                       << " ms during a flood of " << flood
                                       << " connections");
  // Every flood connection is rejected: beyond max_pending the oldest at
  // once, the rest at their handshake deadline (2 s).
  CHECK(support::eventually(
    [&] { return stats().rejected >= before.rejected + flood; }, 10s));
  auto after = stats();
  CHECK(after.accepted == before.accepted + flood + 1);
  CHECK(after.rejected == before.rejected + flood);
  CHECK(after.authenticated == before.authenticated + 1);
  // And each was closed by the owner: the greeting, then the end.
  std::uint64_t closed = 0;
  for (auto fd : fds) {
    if (time_until_closed(fd, 5s))
      ++closed;
    ::close(fd);
  }
  CHECK(closed == flood);
  owner_still_works();
}
