// TLS sessions on memory buffers (net/tls.hpp): two ends in one thread,
// ciphertext moved between them by hand.

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/error.hpp"
#include "net/listener.hpp"

#include "net/auth.hpp"
#include "net/tls.hpp"

using actors::detail::secret;
using actors::detail::tls_session;

namespace {

// Moves ciphertext both ways until neither side has any to send.
void exchange(tls_session& a, tls_session& b) {
  for (int i = 0; i < 16; ++i) {
    auto& x = a.output();
    auto& y = b.output();
    if (x.empty() && y.empty())
      return;
    b.feed(x.data(), x.size());
    x.clear();
    a.feed(y.data(), y.size());
    y.clear();
    a.handshake();
    b.handshake();
  }
}

// Runs both handshakes to their end: what each side's last step was.
std::pair<tls_session::step, tls_session::step> shake(tls_session& client,
                                                        tls_session& server) {
  auto c = client.handshake();
  auto s = server.handshake();
  for (int i = 0; i < 16; ++i) {
    server.feed(client.output().data(), client.output().size());
    client.output().clear();
    s = server.handshake();
    client.feed(server.output().data(), server.output().size());
    server.output().clear();
    c = client.handshake();
    if (client.output().empty() && server.output().empty())
      break;
  }
  return {c, s};
}

secret key_of(std::uint8_t b) {
  secret k;
  k.fill(b);
  return k;
}

} // namespace

TEST_CASE("tls: two sides with the same key agree, and bytes cross both "
          "ways encrypted") {
  tls_session client{false, key_of(1)};
  tls_session server{true, key_of(1)};
  auto [c, s] = shake(client, server);
  INFO(client.why(), " / ", server.why());
  REQUIRE(c == tls_session::step::done);
  REQUIRE(s == tls_session::step::done);
  const char text[] = "a payload marker 7f3a";
  REQUIRE(client.write(reinterpret_cast<const std::uint8_t*>(text),
                       sizeof(text)));
  auto& wire = client.output();
  CHECK(std::search(wire.begin(), wire.end(), text, text + sizeof(text) - 1)
        == wire.end());
  server.feed(wire.data(), wire.size());
  wire.clear();
  std::uint8_t buf[64] = {};
  REQUIRE(server.read(buf, sizeof(buf)) == static_cast<long>(sizeof(text)));
  CHECK(std::memcmp(buf, text, sizeof(text)) == 0);
  CHECK(server.read(buf, sizeof(buf)) == 0); // nothing more yet
  client.close();
  server.feed(client.output().data(), client.output().size());
  CHECK(server.read(buf, sizeof(buf)) == -1); // close_notify
  exchange(client, server);
}

TEST_CASE("tls: another key fails the handshake on both sides") {
  tls_session client{false, key_of(1)};
  tls_session server{true, key_of(2)};
  auto [c, s] = shake(client, server);
  CHECK(s == tls_session::step::failed);
  CHECK(c == tls_session::step::failed);
  CHECK(!server.why().empty());
}

TEST_CASE("tls: plain bytes, or a libactors plain hello, fail a server at "
          "once") {
  tls_session server{true, key_of(1)};
  const char hello[] = "ACTORS01aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  server.feed(reinterpret_cast<const std::uint8_t*>(hello), sizeof(hello));
  CHECK(server.handshake() == tls_session::step::failed);
  tls_session client{false, key_of(1)};
  client.handshake();
  client.feed(reinterpret_cast<const std::uint8_t*>(hello), sizeof(hello));
  CHECK(client.handshake() == tls_session::step::failed);
}

// The whole path in one process: a listener and connect_authenticated with
// TLS forced onto loopback, the pump between them.
TEST_CASE("tls: a listener and a client over the pump: bytes both ways, "
          "the purpose, an orderly end, and a reset told as an error") {
  using namespace actors::detail;
  tls_on_loopback(true);
  auto key = key_of(3);
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<std::pair<int, purpose>> accepted;
  {
    listener server{key, [&](int fd, purpose p) {
                      std::lock_guard<std::mutex> guard{mtx};
                      accepted.emplace_back(fd, p);
                      cv.notify_all();
                    }};
    auto fd = connect_authenticated("127.0.0.1", server.port(), key,
                                    purpose::hub, std::chrono::seconds{5});
    int theirs = -1;
    {
      std::unique_lock<std::mutex> guard{mtx};
      REQUIRE(cv.wait_for(guard, std::chrono::seconds{5},
                          [&] { return !accepted.empty(); }));
      theirs = accepted[0].first;
      CHECK(accepted[0].second == purpose::hub);
    }
    CHECK(tls_connections() == 2);
    // 1 MiB one way while 1 MiB comes back: the backlog bound holds and
    // nothing blocks for good.
    std::string big(1 << 20, 'x');
    for (std::size_t i = 0; i < big.size(); ++i)
      big[i] = static_cast<char>('a' + i % 26);
    auto pump_all = [](int from, int to, const std::string& data) {
      std::thread writer{[&] {
        std::size_t at = 0;
        while (at < data.size()) {
          auto n = ::send(from, data.data() + at, data.size() - at,
                          MSG_NOSIGNAL);
          if (n <= 0)
            return;
          at += static_cast<std::size_t>(n);
        }
      }};
      std::string got;
      char buf[65536];
      while (got.size() < data.size()) {
        pollfd p{to, POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1)
          break;
        auto n = ::recv(to, buf, sizeof(buf), 0);
        if (n <= 0)
          break;
        got.append(buf, static_cast<std::size_t>(n));
      }
      writer.join();
      return got;
    };
    std::string back;
    std::thread other{[&] { back = pump_all(theirs, fd, big); }};
    auto there = pump_all(fd, theirs, big);
    other.join();
    CHECK(there == big);
    CHECK(back == big);
    // watch_link reaches the TCP socket under the pump's end.
    CHECK(with_tls_transport(fd, [](int tcp, const void*) {
      int v = 0;
      socklen_t len = sizeof(v);
      ::getsockopt(tcp, SOL_SOCKET, SO_TYPE, &v, &len);
      CHECK(v == SOCK_STREAM);
    }, nullptr));
    CHECK(!with_tls_transport(0, [](int, const void*) {}, nullptr));
    // An orderly end: the other side reads end-of-stream, no error.
    ::shutdown(fd, SHUT_WR);
    char c;
    pollfd p{theirs, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    CHECK(::recv(theirs, &c, 1, 0) == 0);
    CHECK(far_end_failure(theirs) == 0);
    ::close(fd);
    ::close(theirs);
  }
  tls_on_loopback(false);
}

TEST_CASE("tls: a client with another key is refused by connect, and the "
          "listener counts it") {
  using namespace actors::detail;
  tls_on_loopback(true);
  listener server{key_of(4), [](int fd, purpose) { ::close(fd); }};
  try {
    auto fd = connect_authenticated("127.0.0.1", server.port(), key_of(5),
                                    purpose::worker, std::chrono::seconds{5});
    ::close(fd);
    FAIL("connected with another key");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::unauthenticated);
    CHECK(std::string{e.what()}.find("TLS") != std::string::npos);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{5};
  while (server.stats().rejected == 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield(); // the listener counts before it closes
  CHECK(server.stats().rejected == 1);
  tls_on_loopback(false);
}
