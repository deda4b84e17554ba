#include "auth.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "actors/error.hpp"

namespace actors::detail {

namespace {

template <class Array>
void fill_random(Array& xs) {
  size_t done = 0;
  while (done < xs.size()) {
    auto n = getrandom(xs.data() + done, xs.size() - done, 0);
    if (n < 0 && errno != EINTR)
      throw error(errc::invalid_argument,
                  std::string{"getrandom failed: "} + std::strerror(errno));
    if (n > 0)
      done += static_cast<size_t>(n);
  }
}

// Waits until `fd` is ready for `events` or the deadline passed.
void await(int fd, short events,
           std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      throw error(errc::timeout, "handshake did not finish in time");
    pollfd p{fd, events, 0};
    auto n = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (n > 0)
      return;
    if (n < 0 && errno != EINTR)
      throw error(errc::unauthenticated, "poll failed during handshake");
  }
}

void write_all(int fd, const std::uint8_t* buf, size_t len,
               std::chrono::steady_clock::time_point deadline) {
  while (len > 0) {
    auto n = ::send(fd, buf, len, MSG_NOSIGNAL);
    if (n > 0) {
      buf += n;
      len -= static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      await(fd, POLLOUT, deadline);
    } else {
      throw error(errc::unauthenticated, "peer closed during handshake");
    }
  }
}

void read_all(int fd, std::uint8_t* buf, size_t len,
              std::chrono::steady_clock::time_point deadline) {
  while (len > 0) {
    auto n = ::recv(fd, buf, len, 0);
    if (n > 0) {
      buf += n;
      len -= static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      await(fd, POLLIN, deadline);
    } else {
      throw error(errc::unauthenticated, "peer closed during handshake");
    }
  }
}

} // namespace

secret make_secret() {
  secret result;
  fill_random(result);
  return result;
}

nonce make_nonce() {
  nonce result;
  fill_random(result);
  return result;
}

void write_secret(const std::string& path, const secret& key) {
  auto fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    throw error(errc::invalid_argument, "cannot create key file " + path + ": "
                                          + std::strerror(errno));
  auto n = ::write(fd, key.data(), key.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(key.size()))
    throw error(errc::invalid_argument, "cannot write key file " + path);
}

secret read_secret(const std::string& path) {
  auto fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw error(errc::invalid_argument, "cannot open key file " + path + ": "
                                          + std::strerror(errno));
  secret key;
  std::uint8_t extra;
  auto n = ::read(fd, key.data(), key.size());
  auto m = ::read(fd, &extra, 1);
  ::close(fd);
  if (n != static_cast<ssize_t>(key.size()) || m != 0)
    throw error(errc::invalid_argument,
                "key file " + path + " does not hold exactly 32 bytes");
  return key;
}

mac compute_mac(const secret& key, const char* role, const nonce& first,
                const nonce& second) {
  std::uint8_t msg[16 + 2 * nonce_size] = {};
  std::strncpy(reinterpret_cast<char*>(msg), role, 15);
  std::memcpy(msg + 16, first.data(), nonce_size);
  std::memcpy(msg + 16 + nonce_size, second.data(), nonce_size);
  mac result;
  unsigned len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), msg,
       sizeof(msg), result.data(), &len);
  return result;
}

bool equal(const mac& x, const mac& y) {
  return CRYPTO_memcmp(x.data(), y.data(), x.size()) == 0;
}

void client_handshake(int fd, const secret& key,
                      std::chrono::steady_clock::time_point deadline) {
  std::array<std::uint8_t, server_hello_size> hello;
  read_all(fd, hello.data(), hello.size(), deadline);
  if (std::memcmp(hello.data(), handshake_magic.data(), handshake_magic.size())
      != 0)
    throw error(errc::unauthenticated, "peer is not a libactors node");
  nonce server_nonce;
  std::memcpy(server_nonce.data(), hello.data() + handshake_magic.size(),
              nonce_size);
  auto client_nonce = make_nonce();
  auto proof = compute_mac(key, "client", server_nonce, client_nonce);
  std::array<std::uint8_t, client_proof_size> out;
  std::memcpy(out.data(), client_nonce.data(), nonce_size);
  std::memcpy(out.data() + nonce_size, proof.data(), mac_size);
  write_all(fd, out.data(), out.size(), deadline);
  mac answer;
  read_all(fd, answer.data(), answer.size(), deadline);
  if (!equal(answer, compute_mac(key, "server", client_nonce, server_nonce)))
    throw error(errc::unauthenticated, "peer does not hold the run's key");
}

} // namespace actors::detail
