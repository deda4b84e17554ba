#pragma once

// A stream into this process's queue hub for the tests of queues and pipes
// used from another host (queue/hub_stream.cpp). The run's
// authenticated listener is not the hub's: here a plain TCP socket on
// 127.0.0.1 stands in for it, every connection it accepts going to
// queue_hub::serve_stream as it is. A child started with the door's port
// calls use_door(port) first and is then a client of remote hubs: every
// operation on a queue it does not own goes through the stream.

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/error.hpp"
#include "queue/queue_hub.hpp"
#include "node/runtime.hpp"

namespace support {

/// A connected TCP socket to 127.0.0.1:`port`, or -1.
inline int dial(int port) {
  auto fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Makes this process a client of remote hubs that reaches every owner
/// through the door at `port` (in a child, before it uses a queue).
inline void use_door(int port) {
  actors::detail::set_remote_hub([port](const caf::node_id&) {
    auto fd = dial(port);
    if (fd < 0)
      throw actors::error(actors::errc::owner_unreachable,
                          std::string{"cannot reach the door: "}
                            + std::strerror(errno));
    return fd;
  });
}

class stream_door {
public:
  /// Listens on an ephemeral port of 127.0.0.1. With `keep`, it keeps a
  /// duplicate of each connection it hands over, so that cut() can end
  /// them from the hub's side (and the hub's own hang-up is not seen).
  explicit stream_door(bool keep = false) : keep_(keep) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (listen_fd_ < 0
        || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0
        || ::listen(listen_fd_, 64) != 0
        || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len)
             != 0)
      throw std::runtime_error(std::string{"no door: "}
                               + std::strerror(errno));
    port_ = ntohs(addr.sin_port);
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
    auto& hub = actors::detail::queue_hub::local();
    thread_ = std::thread{[this, &hub] {
      for (;;) {
        pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0 && errno != EINTR)
          return;
        if (fds[1].revents != 0)
          return;
        if (fds[0].revents == 0)
          continue;
        auto fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0)
          continue;
        if (keep_) {
          std::lock_guard<std::mutex> guard{mtx_};
          kept_.push_back(::dup(fd));
        }
        hub.serve_stream(fd);
        ++accepted_;
      }
    }};
  }

  stream_door(const stream_door&) = delete;
  stream_door& operator=(const stream_door&) = delete;

  /// Stops accepting; connections handed over stay with the hub.
  ~stream_door() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof(one));
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_fd_);
    for (auto fd : kept_)
      ::close(fd);
  }

  int port() const noexcept {
    return port_;
  }

  /// Connections handed to the hub so far.
  int accepted() const noexcept {
    return accepted_.load();
  }

  /// Ends every kept connection in both directions, as a broken network
  /// would end it: the hub and the client each see the end.
  void cut() {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto fd : kept_) {
      ::shutdown(fd, SHUT_RDWR);
      ::close(fd);
    }
    kept_.clear();
  }

private:
  const bool keep_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::mutex mtx_;
  std::vector<int> kept_;
  std::thread thread_;
};

} // namespace support
