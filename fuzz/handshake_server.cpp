// libFuzzer target: the server side of the key handshake, as the owner's
// listener (libactors/src/net/listener.cpp) runs it on each connection to its
// port: the real listener, on loopback.
//
// One listener with a fixed key serves the whole run; each input is one
// connection. The harness reads the greeting, sends bytes, shuts its write
// side, and reads until the listener closes. Byte 0 of the input is the
// mode, the rest the data:
//   bit 0 clear: the data is sent as it is;
//   bit 0 set:   a correct proof is sent (its client nonce: the first 32
//                bytes of the data, zero-padded), then the rest of the data
//                (bytes that would go on to CAF's BASP broker).
// Checked after each input, beside ASan and UBSan: the greeting is the
// magic and a fresh nonce; when the first 64 bytes sent are a correct
// proof, the listener answers with the correct MAC and hands the socket on
// (authenticated + 1), else it closes without sending a byte (rejected + 1);
// either within 5 s.

#include <cerrno>
#include <chrono>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/auth.hpp"
#include "net/listener.hpp"
#include "io.hpp"
#include "seeds.hpp"

using namespace actors::detail;
using fuzz::bytes;
using fuzz::read_until;
using fuzz::fail;

namespace {

using clock = std::chrono::steady_clock;

secret fixed_key() {
  secret k;
  for (size_t i = 0; i < k.size(); ++i)
    k[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return k;
}

const secret key = fixed_key();

listener& server() {
  // The socket of an authenticated connection would go to BASP: closed.
  static listener instance{key, [](int fd, purpose) { ::close(fd); },
                           std::chrono::seconds{5}};
  return instance;
}

// Connects (a signal, libFuzzer's timer, may interrupt a blocking connect:
// hence non-blocking, then blocking again).
int connect_to(std::uint16_t port) {
  auto fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    fail(std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS && errno != EINTR)
      fail(std::strerror(errno));
    pollfd p{fd, POLLOUT, 0};
    for (;;) {
      auto n = ::poll(&p, 1, 5000);
      if (n == 1)
        break;
      if (n < 0 && errno == EINTR)
        continue;
      fail("connecting took over 5 s");
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
      fail(std::strerror(err));
  }
  ::fcntl(fd, F_SETFL, 0);
  return fd;
}


nonce nonce_at(const bytes& xs, size_t pos) {
  nonce result{};
  if (pos < xs.size())
    std::memcpy(result.data(), xs.data() + pos,
                std::min(nonce_size, xs.size() - pos));
  return result;
}

void make_seeds(std::vector<bytes>& seeds) {
  // A correct proof alone, and followed by what BASP would read.
  seeds.push_back(bytes(1 + nonce_size, 0x01));
  bytes tail{0x01};
  for (int i = 0; i < 96; ++i)
    tail.push_back(static_cast<std::uint8_t>(i));
  seeds.push_back(tail);
  // A wrong proof, a short one, nothing, and a BASP client handshake header
  // (what a stock CAF node sends).
  seeds.push_back(bytes(1 + client_proof_size, 0x00));
  seeds.push_back(bytes{0x00, 'h', 'e', 'l', 'l', 'o'});
  seeds.push_back(bytes{0x00});
  bytes basp{0x00, 0x01, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 3};
  basp.resize(1 + 32 + 40, 0);
  seeds.push_back(basp);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::write_seeds_if_asked(make_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, size_t size) {
  if (size == 0)
    return -1;
  auto& srv = server();
  auto before = srv.stats();
  auto fd = connect_to(srv.port());
  // The greeting: magic and a fresh nonce.
  bytes hello;
  if (!read_until(fd, hello, server_hello_size)
      || hello.size() != server_hello_size)
    fail("no complete greeting");
  if (std::memcmp(hello.data(), handshake_magic.data(), handshake_magic.size())
      != 0)
    fail("the greeting lacks the magic");
  auto server_nonce = nonce_at(hello, handshake_magic.size());
  static nonce last_nonce{};
  if (server_nonce == last_nonce)
    fail("the listener sent the same nonce twice");
  last_nonce = server_nonce;
  // What this input sends.
  bytes in(data + 1, data + size);
  bytes sent;
  if (data[0] & 1) {
    auto client_nonce = nonce_at(in, 0);
    auto proof = compute_mac(key, "client", server_nonce, client_nonce);
    sent.assign(client_nonce.begin(), client_nonce.end());
    sent.insert(sent.end(), proof.begin(), proof.end());
    if (in.size() > nonce_size)
      sent.insert(sent.end(), in.begin() + nonce_size, in.end());
  } else {
    sent = std::move(in);
  }
  // The listener may close before all of it was sent (a wrong proof).
  fuzz::send_until_closed(fd, sent.data(), sent.size());
  ::shutdown(fd, SHUT_WR);
  bytes reply;
  if (!read_until(fd, reply))
    fail("the listener neither answered nor closed within 5 s");
  // Reset rather than close: the listener's side, which closed first, would
  // otherwise wait in TIME_WAIT, and a few thousand inputs a second would
  // run out of ports.
  linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  ::close(fd);
  // What it should have done.
  bool valid = false;
  nonce client_nonce{};
  if (sent.size() >= client_proof_size) {
    client_nonce = nonce_at(sent, 0);
    mac proof;
    std::memcpy(proof.data(), sent.data() + nonce_size, mac_size);
    valid = equal(proof,
                  compute_mac(key, "client", server_nonce, client_nonce));
  }
  auto after = srv.stats();
  if (after.accepted != before.accepted + 1)
    fail("the listener did not count the connection as accepted");
  if (valid) {
    auto answer = compute_mac(key, "server", client_nonce, server_nonce);
    if (reply != bytes(answer.begin(), answer.end()))
      fail("a correct proof did not get the correct answer");
    if (after.authenticated != before.authenticated + 1
        || after.rejected != before.rejected)
      fail("a correct proof was not counted as authenticated");
  } else {
    if (!reply.empty())
      fail("the listener answered a wrong proof");
    if (after.rejected != before.rejected + 1
        || after.authenticated != before.authenticated)
      fail("a wrong proof was not counted as rejected");
  }
  return 0;
}
