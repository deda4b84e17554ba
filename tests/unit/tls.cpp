// TLS sessions on memory buffers (net/tls.hpp): two ends in one thread,
// ciphertext moved between them by hand.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>

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
