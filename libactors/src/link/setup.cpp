#include "link/setup.hpp"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "actors/error.hpp"
#include "link/frame_reader.hpp"
#include "link/frame_writer.hpp"
#include "link/link_protocol.hpp"

namespace actors::detail::links {

namespace {

// Closes a descriptor unless released (the setup throws on every failure).
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
  int release() {
    return std::exchange(fd, -1);
  }
};

[[noreturn]] void fail(errc code, const std::string& what) {
  throw error(code, "link setup: " + what);
}

void await(int fd, short events, time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      fail(errc::timeout, "the peer did not answer in time");
    pollfd p{fd, events, 0};
    auto n = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (n > 0)
      return;
    if (n < 0 && errno != EINTR)
      fail(errc::owner_unreachable, std::string{"poll: "} + strerror(errno));
  }
}

// Sends `size` bytes; with `pass` >= 0, that descriptor rides on the first.
void send_all(int fd, const void* data, std::size_t size, time_point deadline,
              int pass = -1) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    iovec iov{const_cast<char*>(p), size};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (pass >= 0) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      auto* cm = CMSG_FIRSTHDR(&msg);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cm), &pass, sizeof(int));
    }
    auto n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      size -= static_cast<std::size_t>(n);
      pass = -1;
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      await(fd, POLLOUT, deadline);
    } else {
      fail(errc::owner_unreachable, "the peer closed the connection");
    }
  }
}

// Reads exactly `size` bytes; a descriptor that arrives with them goes to
// `*got` (the first one: more are closed).
void recv_all(int fd, void* data, std::size_t size, time_point deadline,
              int* got = nullptr) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    iovec iov{p, size};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    auto n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      await(fd, POLLIN, deadline);
      continue;
    }
    if (n <= 0)
      fail(errc::owner_unreachable, "the peer closed the connection");
    for (auto* cm = CMSG_FIRSTHDR(&msg); cm != nullptr;
         cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
        continue;
      auto count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int x = -1;
        std::memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
        if (got != nullptr && *got < 0)
          *got = x;
        else
          ::close(x);
      }
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

void check_uid(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0
      || cred.uid != ::geteuid())
    fail(errc::unauthenticated, "the peer runs as another user");
}

sockaddr_un abstract_address(const std::string& name, socklen_t& len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  auto n = std::min(name.size(), sizeof(addr.sun_path) - 1);
  std::memcpy(addr.sun_path + 1, name.data(), n);
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  return addr;
}

connection exchange_hellos(fd_guard& sock, const identity& me,
                           caf::execution_unit* ctx, time_point deadline) {
  connection c;
  c.out = ring::create(me.ring_size);
  buffer hello;
  if (auto err = write_hello(hello, ctx, me.node, me.service))
    fail(errc::invalid_argument, "cannot write this node's id");
  send_all(sock.fd, hello.data(), hello.size(), deadline, c.out.fd());
  int got = -1;
  std::uint32_t size = 0;
  recv_all(sock.fd, &size, sizeof(size), deadline, &got);
  fd_guard got_guard{got};
  if (size < sizeof(hello_fixed) || size > sizeof(hello_fixed) + max_node_size)
    fail(errc::invalid_argument, "the peer's hello is malformed");
  std::vector<char> body(size);
  recv_all(sock.fd, body.data(), size, deadline, &got_guard.fd);
  if (!read_hello(body.data(), body.size(), ctx, c.node, c.service))
    fail(errc::invalid_argument, "the peer's hello is malformed");
  if (c.node == me.node)
    fail(errc::invalid_argument, "the peer is this process");
  c.in = ring::attach(got_guard.release());
  if (!c.in)
    fail(errc::invalid_argument, "the peer's ring is not a sealed ring");
  c.fd = sock.release();
  return c;
}

nonce to_nonce(const std::uint8_t* p) {
  nonce x;
  std::memcpy(x.data(), p, x.size());
  return x;
}

} // namespace

void send_run_key(int fd, const secret& key) {
  auto n = ::send(fd, key.data(), key.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n != static_cast<ssize_t>(key.size()))
    fail(errc::spawn_failed,
         std::string{"cannot hand the run's key to a child: "}
             + std::strerror(errno));
}

secret read_run_key(int fd, time_point deadline) {
  secret key{};
  recv_all(fd, key.data(), key.size(), deadline);
  return key;
}

std::string link_address(const secret& key, pid_t pid) {
  nonce zero{};
  auto tag = compute_mac(key, "link-address", zero, zero);
  char name[64];
  std::snprintf(name, sizeof(name), "actors-link-%02x%02x%02x%02x%02x%02x-%d",
                tag[0], tag[1], tag[2], tag[3], tag[4], tag[5],
                static_cast<int>(pid));
  return name;
}

int listen_on(const std::string& name) {
  fd_guard fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  socklen_t len = 0;
  auto addr = abstract_address(name, len);
  if (fd.fd < 0 || ::bind(fd.fd, reinterpret_cast<sockaddr*>(&addr), len) != 0
      || ::listen(fd.fd, 128) != 0)
    throw error(errc::spawn_failed, "cannot listen for links on " + name
                                        + ": " + std::strerror(errno));
  return fd.release();
}

connection setup_inherited(int fd, const identity& me, caf::execution_unit* ctx,
                           time_point deadline) {
  fd_guard sock{fd};
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return exchange_hellos(sock, me, ctx, deadline);
}

connection setup_connect(const std::string& name, const secret& key,
                         const identity& me, caf::execution_unit* ctx,
                         time_point deadline) {
  fd_guard sock{
      ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (sock.fd < 0)
    fail(errc::owner_unreachable, std::string{"socket: "} + strerror(errno));
  socklen_t len = 0;
  auto addr = abstract_address(name, len);
  for (;;) {
    if (::connect(sock.fd, reinterpret_cast<sockaddr*>(&addr), len) == 0)
      break;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN) { // the backlog is full: the peer is busy
      if (std::chrono::steady_clock::now() >= deadline)
        fail(errc::timeout, "the process at " + name + " accepts no links");
      ::usleep(1000);
      continue;
    }
    fail(errc::owner_unreachable,
         "no process listens at " + name + " (" + std::strerror(errno) + ")");
  }
  check_uid(sock.fd);
  challenge ch;
  recv_all(sock.fd, &ch, sizeof(ch), deadline);
  if (std::memcmp(ch.magic, protocol_magic, sizeof(ch.magic)) != 0)
    fail(errc::unauthenticated, "the peer is not a link");
  auto sn = to_nonce(ch.nonce);
  auto cn = make_nonce();
  proof pr;
  std::memcpy(pr.nonce, cn.data(), cn.size());
  auto m = compute_mac(key, "link-client", sn, cn);
  std::memcpy(pr.mac, m.data(), m.size());
  send_all(sock.fd, &pr, sizeof(pr), deadline);
  mac theirs;
  recv_all(sock.fd, theirs.data(), theirs.size(), deadline);
  if (!equal(theirs, compute_mac(key, "link-server", cn, sn)))
    fail(errc::unauthenticated, "the peer did not prove the run's key");
  return exchange_hellos(sock, me, ctx, deadline);
}

nonce begin_accept(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  check_uid(fd);
  challenge ch;
  std::memcpy(ch.magic, protocol_magic, sizeof(ch.magic));
  auto sn = make_nonce();
  std::memcpy(ch.nonce, sn.data(), sn.size());
  // A fresh socket's buffer takes these bytes at once: no waiting.
  send_all(fd, &ch, sizeof(ch), std::chrono::steady_clock::now());
  return sn;
}

connection finish_accept(int fd, const nonce& sn, const secret& key,
                         const identity& me, caf::execution_unit* ctx,
                         time_point deadline) {
  fd_guard sock{fd};
  proof pr;
  recv_all(fd, &pr, sizeof(pr), deadline);
  auto cn = to_nonce(pr.nonce);
  mac theirs;
  std::memcpy(theirs.data(), pr.mac, theirs.size());
  if (!equal(theirs, compute_mac(key, "link-client", sn, cn)))
    fail(errc::unauthenticated, "the peer did not prove the run's key");
  auto m = compute_mac(key, "link-server", cn, sn);
  send_all(fd, m.data(), m.size(), deadline);
  return exchange_hellos(sock, me, ctx, deadline);
}

} // namespace actors::detail::links
