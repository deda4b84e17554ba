#include "net/auth.hpp"
#include "net/tls.hpp"

#include "base/fd.hpp"
#include "base/random.hpp"

#include <cerrno>
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "actors/error.hpp"

namespace actors::detail {

namespace {

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
  fill_random(result.data(), result.size());
  return result;
}

nonce make_nonce() {
  nonce result;
  fill_random(result.data(), result.size());
  return result;
}

void write_secret(const std::string& path, const secret& key) {
  unique_fd fd{
    ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (!fd)
    throw error(errc::invalid_argument, "cannot create key file " + path + ": "
                                          + std::strerror(errno));
  auto n = ::write(fd.get(), key.data(), key.size());
  fd.reset();
  if (n != static_cast<ssize_t>(key.size()))
    throw error(errc::invalid_argument, "cannot write key file " + path);
}

secret read_secret(const std::string& path) {
  unique_fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd)
    throw error(errc::invalid_argument, "cannot open key file " + path + ": "
                                          + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && (st.st_mode & 077) != 0)
    throw error(errc::invalid_argument,
                "key file " + path
                  + " may be read by other users: chmod 600 it");
  secret key;
  std::uint8_t extra;
  auto n = ::read(fd.get(), key.data(), key.size());
  auto m = ::read(fd.get(), &extra, 1);
  fd.reset();
  if (n != static_cast<ssize_t>(key.size()) || m != 0)
    throw error(errc::invalid_argument,
                "key file " + path + " does not hold exactly 32 bytes");
  return key;
}

secret load_or_make_secret(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
    try {
      write_secret(path, make_secret());
    } catch (const error&) {
      // Made meanwhile by someone else: read theirs.
      if (::access(path.c_str(), F_OK) != 0)
        throw;
    }
  }
  return read_secret(path);
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

const char* client_label(purpose p) noexcept {
  switch (p) {
    case purpose::worker:
      return "client/worker";
    case purpose::hub:
      return "client/hub";
    case purpose::lock:
      return "client/lock";
    case purpose::connection:
      return "client/connection";
    default:
      return "client";
  }
}

const char* server_label(purpose p) noexcept {
  switch (p) {
    case purpose::worker:
      return "server/worker";
    case purpose::hub:
      return "server/hub";
    case purpose::lock:
      return "server/lock";
    case purpose::connection:
      return "server/connection";
    default:
      return "server";
  }
}

void client_handshake(int fd, const secret& key,
                      std::chrono::steady_clock::time_point deadline,
                      purpose p) {
  std::array<std::uint8_t, server_hello_size> hello;
  read_all(fd, hello.data(), hello.size(), deadline);
  if (std::memcmp(hello.data(), handshake_magic.data(), handshake_magic.size())
      != 0)
    throw error(errc::unauthenticated, "peer is not a libactors node");
  nonce server_nonce;
  std::memcpy(server_nonce.data(), hello.data() + handshake_magic.size(),
              nonce_size);
  auto client_nonce = make_nonce();
  auto proof = compute_mac(key, client_label(p), server_nonce, client_nonce);
  std::array<std::uint8_t, client_proof_size> out;
  std::memcpy(out.data(), client_nonce.data(), nonce_size);
  std::memcpy(out.data() + nonce_size, proof.data(), mac_size);
  write_all(fd, out.data(), out.size(), deadline);
  mac answer;
  read_all(fd, answer.data(), answer.size(), deadline);
  if (!equal(answer,
             compute_mac(key, server_label(p), client_nonce, server_nonce)))
    throw error(errc::unauthenticated, "peer does not hold the run's key");
}

namespace {

// Connects before `deadline`: the socket (non-blocking, close-on-exec), or
// none with the reason in `err` (an errno) and, for a name that did not
// resolve, in `text` (getaddrinfo's).
unique_fd tcp_connect(const std::string& host, std::uint16_t port,
                std::chrono::steady_clock::time_point deadline, int& err,
                std::string& text) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  err = EHOSTUNREACH;
  if (auto rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
      rc != 0) {
    text = "the name " + host + " did not resolve ("
           + (rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc))
           + ")";
    return {};
  }
  unique_fd fd;
  for (auto* ai = found; ai != nullptr && !fd; ai = ai->ai_next) {
    // Non-blocking, so that an unresponsive host costs the deadline at most.
    fd.reset(::socket(ai->ai_family,
                      ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd)
      continue;
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
        pollfd pfd{fd.get(), POLLOUT, 0};
        socklen_t len = sizeof(err);
        if (left.count() <= 0
            || ::poll(&pfd, 1, static_cast<int>(left.count())) != 1
            || ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
          err = ETIMEDOUT;
      }
      if (err != 0)
        fd.reset();
    }
  }
  ::freeaddrinfo(found);
  if (fd)
    err = 0;
  return fd;
}

} // namespace

int connect_authenticated(const std::string& host, std::uint16_t port,
                          const secret& key, purpose p,
                          std::chrono::milliseconds timeout, int* why) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int err = 0;
  std::string text;
  auto fd = tcp_connect(host, port, deadline, err, text);
  if (why)
    *why = err;
  if (!fd)
    throw error(errc::owner_unreachable,
                "cannot connect to " + host + ":" + std::to_string(port)
                  + ": " + (text.empty() ? std::strerror(err) : text));
  if (tls_needed(fd.get()))
    return tls_connect(std::move(fd), key, p, deadline).release();
  client_handshake(fd.get(), key, deadline, p); // closed if it throws
  int flags = ::fcntl(fd.get(), F_GETFL);
  ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd.release();
}

std::pair<std::string, std::uint16_t> split_address(const std::string& text) {
  auto colon = text.rfind(':');
  char* end = nullptr;
  auto port = colon == std::string::npos
                ? 0
                : std::strtoul(text.c_str() + colon + 1, &end, 10);
  if (colon == std::string::npos || colon == 0 || end == nullptr || *end != 0
      || end == text.c_str() + colon + 1 || port > 65535)
    throw error(errc::invalid_argument,
                "not an address of the form HOST:PORT: \"" + text + "\"");
  auto host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return {host, static_cast<std::uint16_t>(port)};
}

namespace {

void watch_tcp(int fd, const void* arg) {
  auto lost_after = *static_cast<const std::chrono::milliseconds*>(arg);
  // Kernel keepalive probes a silent connection every second or so;
  // TCP_USER_TIMEOUT ends it once probes, or data sent, go unacknowledged
  // for `lost_after`: a cut link or a vanished host shows as an error on
  // the socket within that bound, even while the peer computes silently.
  auto secs = static_cast<int>(std::max<std::int64_t>(
    1, std::chrono::duration_cast<std::chrono::seconds>(lost_after).count()
         / 4));
  int one = 1;
  auto ms = static_cast<unsigned>(lost_after.count());
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof(secs));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof(secs));
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
}

} // namespace

void watch_link(int fd, std::chrono::milliseconds lost_after) {
  // Encrypted, the TCP socket is the pump's (tls.hpp).
  if (!with_tls_transport(fd, watch_tcp, &lost_after))
    watch_tcp(fd, &lost_after);
}

} // namespace actors::detail
