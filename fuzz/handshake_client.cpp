// libFuzzer target: the client side of the key handshake
// (libactors/src/net/auth.cpp, client_handshake), as a node joining the owner
// runs it on its connection.
//
// Each input plays the server on the other end of a socket pair, from a
// thread, then hangs up. Byte 0 of the input is the mode, the rest the data:
//   bit 0 set:   the greeting is the magic and the data's first 32 bytes as
//                nonce; clear: the data's first 40 bytes as they are (or
//                fewer, when the data is shorter);
//   bit 1 set:   the answer is the correct MAC; clear: the data's next 32
//                bytes (or fewer).
// Checked after each input, beside ASan and UBSan: the client sends its
// proof only after a complete greeting with the magic, and that proof is
// correct; it sends nothing else; client_handshake returns exactly when the
// greeting had the magic and the answer was correct, and otherwise throws
// errc::unauthenticated (never a timeout: the server always hangs up).

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/error.hpp"
#include "net/auth.hpp"
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
    k[i] = static_cast<std::uint8_t>(i * 5 + 1);
  return k;
}

const secret key = fixed_key();



// What the server side saw and did.
struct server_side {
  bytes hello;
  bool hello_ok = false;   // complete, with the magic
  bool answer_ok = false;  // the correct answer was sent
  bool proof_read = false; // the client sent 64 bytes
  bool proof_ok = false;   // ... that prove the key
  bytes after;             // what the client sent after its proof
  bool ended = true;       // the client closed within 5 s
};

void play_server(int fd, std::uint8_t mode, const bytes& in,
                 server_side& out) {
  size_t pos = 0;
  auto take = [&](size_t n) {
    auto k = std::min(n, in.size() - pos);
    bytes result(in.begin() + static_cast<std::ptrdiff_t>(pos),
                 in.begin() + static_cast<std::ptrdiff_t>(pos + k));
    pos += k;
    return result;
  };
  if (mode & 1) {
    out.hello.assign(handshake_magic.begin(), handshake_magic.end());
    auto n = take(nonce_size);
    out.hello.insert(out.hello.end(), n.begin(), n.end());
    out.hello.resize(server_hello_size, 0);
  } else {
    out.hello = take(server_hello_size);
  }
  out.hello_ok = out.hello.size() == server_hello_size
                 && std::memcmp(out.hello.data(), handshake_magic.data(),
                                handshake_magic.size())
                      == 0;
  fuzz::send_until_closed(fd, out.hello.data(), out.hello.size());
  if (out.hello_ok) {
    bytes proof;
    out.ended = read_until(fd, proof, client_proof_size);
    out.proof_read = proof.size() == client_proof_size;
    if (out.proof_read) {
      nonce server_nonce, client_nonce;
      std::memcpy(server_nonce.data(),
                  out.hello.data() + handshake_magic.size(), nonce_size);
      std::memcpy(client_nonce.data(), proof.data(), nonce_size);
      mac m;
      std::memcpy(m.data(), proof.data() + nonce_size, mac_size);
      out.proof_ok = equal(
        m, compute_mac(key, "client", server_nonce, client_nonce));
      auto right = compute_mac(key, "server", client_nonce, server_nonce);
      bytes answer;
      if (mode & 2)
        answer.assign(right.begin(), right.end());
      else
        answer = take(mac_size);
      out.answer_ok = answer == bytes(right.begin(), right.end());
      fuzz::send_until_closed(fd, answer.data(), answer.size());
    }
  }
  ::shutdown(fd, SHUT_WR);
  // Whatever else the client sends, until it closes.
  if (out.ended)
    out.ended = read_until(fd, out.after);
}

void make_seeds(std::vector<bytes>& seeds) {
  // A correct greeting and answer; a correct greeting and a wrong answer;
  // a wrong magic; a short greeting; nothing.
  seeds.push_back(bytes(1 + nonce_size, 0x03));
  seeds.push_back(bytes(1 + nonce_size + mac_size, 0x01));
  bytes wrong{0x00, 'A', 'C', 'T', 'O', 'R', 'S', '0', '2'};
  wrong.resize(1 + server_hello_size, 0x2a);
  seeds.push_back(wrong);
  seeds.push_back(bytes{0x00, 'A', 'C', 'T'});
  seeds.push_back(bytes{0x02});
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::write_seeds_if_asked(make_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, size_t size) {
  if (size == 0)
    return -1;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    fail("socketpair");
  server_side seen;
  bytes in(data + 1, data + size);
  std::thread server{[&] { play_server(fds[1], data[0], in, seen); }};
  bool joined = false;
  bool unauthenticated = false;
  try {
    client_handshake(fds[0], key,
                     clock::now() + std::chrono::seconds{5});
    joined = true;
  } catch (const actors::error& e) {
    unauthenticated = e.code() == actors::errc::unauthenticated;
  }
  ::close(fds[0]);
  server.join();
  ::close(fds[1]);
  if (!seen.ended)
    fail("the client neither sent its proof nor closed within 5 s");
  if (seen.proof_read != seen.hello_ok)
    fail("the client sent a proof exactly when the greeting was right: no");
  if (seen.proof_read && !seen.proof_ok)
    fail("the client's proof is wrong");
  if (!seen.after.empty())
    fail("the client sent more than its proof");
  if (joined != (seen.hello_ok && seen.answer_ok))
    fail("client_handshake succeeded against a wrong server, or failed "
         "against a right one");
  if (!joined && !unauthenticated)
    fail("client_handshake failed with another error than unauthenticated");
  return 0;
}
