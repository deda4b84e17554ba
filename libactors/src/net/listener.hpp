#pragma once

// The listener of a node: accepts TCP connections on one address and runs
// the server side of the key handshake (net/auth.hpp) on each in one poll
// thread; only authenticated sockets reach its callback, with their
// purpose.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "base/fd.hpp"
#include "net/auth.hpp"

namespace actors::detail {

/// Accepts TCP connections on one address and runs the server side of the
/// key handshake (auth.hpp) on each, all in one thread with a poll loop.
/// Only a connection that proves the key reaches `on_authenticated`, with
/// the purpose it was opened for; the callback takes ownership of the
/// socket (blocking, close-on-exec, TCP_NODELAY). Every other one is
/// closed: a wrong or garbled answer at once, a silent or slow one at its deadline, and the
/// oldest pending one when more than `max_pending` wait, so a flood cannot
/// crowd out a legitimate node.
class listener {
public:
  struct counters {
    std::uint64_t accepted = 0;
    std::uint64_t authenticated = 0;
    std::uint64_t rejected = 0;
  };

  static constexpr size_t max_pending = 256;

  using callback = std::function<void(int fd, purpose p)>;

  /// Listens on `address` (a name or a numeric address) and `port` (0: a
  /// free one); throws `errc::invalid_argument` if it cannot.
  listener(const secret& key, callback on_authenticated,
           std::chrono::milliseconds deadline = std::chrono::seconds{2},
           const std::string& address = "127.0.0.1", std::uint16_t port = 0);

  /// Stops the thread and closes every socket it still holds.
  ~listener();

  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;

  std::uint16_t port() const noexcept {
    return port_;
  }

  counters stats() const noexcept;

private:
  void run();

  secret key_;
  callback on_authenticated_;
  std::chrono::milliseconds deadline_;
  unique_fd listen_fd_;
  unique_fd wake_fd_; // written to stop the thread
  std::uint16_t port_ = 0;
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> authenticated_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::thread thread_;
};

} // namespace actors::detail
