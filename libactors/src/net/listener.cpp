#include "net/listener.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "actors/error.hpp"
#include "base/deadline.hpp"
#include "net/tls.hpp"

namespace actors::detail {

namespace {

struct pending {
  unique_fd fd;
  std::unique_ptr<tls_session> tls; // between hosts (tls.hpp)
  bool secured = false;              // its handshake done
  std::chrono::steady_clock::time_point deadline;
  nonce server_nonce{};
  std::array<std::uint8_t, client_proof_size> buf{};
  size_t got = 0;
};

// Advances the TLS side of `p` with what its socket holds: the purpose
// once the handshake is done and the client named it; none while it is
// under way, and none with `p.fd` closed once it failed.
std::optional<purpose> serve_tls(pending& p) {
  std::uint8_t buf[4096];
  auto fail = [&]() -> std::optional<purpose> {
    p.fd.reset();
    return std::nullopt;
  };
  auto got = ::recv(p.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
  if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
    return fail();
  if (got > 0)
    p.tls->feed(buf, static_cast<std::size_t>(got));
  if (!p.secured) {
    auto step = p.tls->handshake();
    if (step == tls_session::step::failed) {
      // Its alert, so that the client learns why (best effort).
      ::send(p.fd.get(), p.tls->output().data(), p.tls->output().size(),
             MSG_NOSIGNAL | MSG_DONTWAIT);
      return fail();
    }
    p.secured = step == tls_session::step::done;
  }
  auto& out = p.tls->output();
  if (!out.empty()) {
    auto n = ::send(p.fd.get(), out.data(), out.size(),
                    MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      return fail();
    if (n > 0)
      out.erase(out.begin(), out.begin() + n);
  }
  if (!p.secured)
    return std::nullopt;
  // 'P' and the purpose, inside TLS.
  while (p.got < 2) {
    auto n = p.tls->read(p.buf.data() + p.got, 2 - p.got);
    if (n == 0)
      return std::nullopt;
    if (n < 0)
      return fail();
    p.got += static_cast<std::size_t>(n);
  }
  auto kind = std::find_if(std::begin(all_purposes), std::end(all_purposes),
                           [&](purpose x) {
                             return static_cast<std::uint8_t>(x) == p.buf[1];
                           });
  if (p.buf[0] != 'P' || kind == std::end(all_purposes))
    return fail();
  // Let in: the client waits for this byte (the pump sends it), so that a
  // client whose certificate we refused learns it from its connect.
  const std::uint8_t welcome = 'A';
  if (!p.tls->write(&welcome, 1))
    return fail();
  return *kind;
}

} // namespace

listener::listener(const secret& key, callback on_authenticated,
                   std::chrono::milliseconds deadline,
                   const std::string& address, std::uint16_t port)
  : key_(key), on_authenticated_(std::move(on_authenticated)),
    deadline_(deadline) {
  // Initialise OpenSSL now, so that its exit handler runs after ours and the
  // thread's OpenSSL state can still be released when the thread stops.
  OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  auto where = address + ":" + service;
  if (::getaddrinfo(address.c_str(), service.c_str(), &hints, &found) != 0)
    throw error(errc::invalid_argument, "cannot listen on " + where
                                          + ": not an address of this host");
  listen_fd_.reset(::socket(found->ai_family,
                            SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  int one = 1;
  if (listen_fd_)
    ::setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (!listen_fd_
      || ::bind(listen_fd_.get(), found->ai_addr, found->ai_addrlen) != 0
      || ::listen(listen_fd_.get(), SOMAXCONN) != 0) {
    auto err = errno;
    ::freeaddrinfo(found);
    listen_fd_.reset();
    // Out of descriptors or memory is no fault of the address.
    auto code = err == EMFILE || err == ENFILE || err == ENOBUFS
                    || err == ENOMEM
                  ? errc::spawn_failed
                  : errc::invalid_argument;
    throw error(code, "cannot listen on " + where + ": " + std::strerror(err));
  }
  ::freeaddrinfo(found);
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = addr.ss_family == AF_INET6
            ? ntohs(reinterpret_cast<sockaddr_in6&>(addr).sin6_port)
            : ntohs(reinterpret_cast<sockaddr_in&>(addr).sin_port);
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) {
    auto reason = std::string{"eventfd: "} + std::strerror(errno);
    listen_fd_.reset();
    throw error(errc::spawn_failed, "cannot listen on " + where + ": " + reason);
  }
  try {
    thread_ = std::thread{[this] { run(); }};
  } catch (const std::system_error& e) {
    listen_fd_.reset();
    wake_fd_.reset();
    throw error(errc::spawn_failed, "cannot listen on " + where
                                      + ": no thread: " + e.code().message());
  }
}

listener::~listener() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_.get(), &one, sizeof(one));
  thread_.join();
}

listener::counters listener::stats() const noexcept {
  return {accepted_.load(), authenticated_.load(), rejected_.load()};
}

void listener::run() {
  std::deque<pending> waiting;
  std::vector<pollfd> fds;
  auto reject = [&](size_t i) {
    ++rejected_; // counted before the peer can observe the close
    waiting[i].fd.reset();
    waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
  };
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    // Drop every connection whose deadline passed.
    for (size_t i = waiting.size(); i-- > 0;)
      if (waiting[i].deadline <= now)
        reject(i);
    deadline next;
    if (!waiting.empty()) {
      auto first = waiting.front().deadline;
      for (auto& p : waiting)
        first = std::min(first, p.deadline);
      next = deadline::at(first);
    }
    fds.clear();
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    fds.push_back({listen_fd_.get(), POLLIN, 0});
    for (auto& p : waiting) {
      short events = POLLIN;
      if (p.tls && !p.tls->output().empty())
        events |= POLLOUT;
      fds.push_back({p.fd.get(), events, 0});
    }
    auto n = ::poll(fds.data(), fds.size(), next.poll_ms());
    if (n < 0 && errno != EINTR)
      break;
    if (n <= 0)
      continue;
    if (fds[0].revents != 0)
      break;
    // Serve the pending connections first (indices shift as we erase).
    for (size_t k = fds.size(); k-- > 2;) {
      if (fds[k].revents == 0)
        continue;
      auto i = k - 2;
      auto& p = waiting[i];
      if (p.tls) {
        if (auto kind = serve_tls(p)) {
          unique_fd fd;
          try {
            fd = tls_adopt(std::move(p.fd), std::move(p.tls));
          } catch (const error&) {
            reject(i); // out of descriptors or threads: as a failed handshake
            continue;
          }
          waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
          ++authenticated_;
          on_authenticated_(fd.release(), *kind);
        } else if (!p.fd) {
          reject(i);
        }
        continue;
      }
      auto got = ::recv(p.fd.get(), p.buf.data() + p.got, p.buf.size() - p.got, 0);
      if (got < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      if (got <= 0) {
        reject(i);
        continue;
      }
      p.got += static_cast<size_t>(got);
      if (p.got < p.buf.size())
        continue;
      nonce client_nonce;
      mac proof;
      std::memcpy(client_nonce.data(), p.buf.data(), nonce_size);
      std::memcpy(proof.data(), p.buf.data() + nonce_size, mac_size);
      // The label the proof was made with says what the connection is for.
      auto kind = std::find_if(
        std::begin(all_purposes), std::end(all_purposes), [&](purpose x) {
          return equal(proof, compute_mac(key_, client_label(x),
                                          p.server_nonce, client_nonce));
        });
      if (kind == std::end(all_purposes)) {
        reject(i);
        continue;
      }
      auto answer = compute_mac(key_, server_label(*kind), client_nonce,
                                p.server_nonce);
      if (::send(p.fd.get(), answer.data(), answer.size(), MSG_NOSIGNAL)
          != static_cast<ssize_t>(answer.size())) {
        reject(i);
        continue;
      }
      auto fd = p.fd.release();
      waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
      ++authenticated_;
      int flags = ::fcntl(fd, F_GETFL);
      ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      on_authenticated_(fd, *kind);
    }
    if (fds[1].revents != 0) {
      for (;;) {
        unique_fd fd{::accept4(listen_fd_.get(), nullptr, nullptr,
                               SOCK_NONBLOCK | SOCK_CLOEXEC)};
        if (!fd)
          break;
        ++accepted_;
        pending p;
        p.deadline = std::chrono::steady_clock::now() + deadline_;
        if (tls_needed(fd.get())) {
          // Between hosts: the client speaks first (its ClientHello).
          try {
            p.tls = std::make_unique<tls_session>(true, key_);
          } catch (const error&) {
            ++rejected_;
            continue;
          }
          p.fd = std::move(fd);
          if (waiting.size() >= max_pending)
            reject(0);
          waiting.push_back(std::move(p));
          continue;
        }
        p.server_nonce = make_nonce();
        std::array<std::uint8_t, server_hello_size> hello;
        std::memcpy(hello.data(), handshake_magic.data(),
                    handshake_magic.size());
        std::memcpy(hello.data() + handshake_magic.size(),
                    p.server_nonce.data(), nonce_size);
        if (::send(fd.get(), hello.data(), hello.size(), MSG_NOSIGNAL)
            != static_cast<ssize_t>(hello.size())) {
          ++rejected_; // closed as it goes
          continue;
        }
        p.fd = std::move(fd);
        if (waiting.size() >= max_pending)
          reject(0);
        waiting.push_back(std::move(p));
      }
    }
  }
  waiting.clear(); // closes them
  // Frees OpenSSL's per-thread state of this thread (HMAC uses it).
  OPENSSL_thread_stop();
}

} // namespace actors::detail
