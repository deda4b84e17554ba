#pragma once

// An epoll set with a wake-up eventfd in it: what a thread that waits on
// descriptors needs so that other threads can wake it (the child reaper,
// the queue hub, the link manager). The wake-up's event carries the data
// given to the constructor.

#include <cstdint>
#include <string>

#include <sys/epoll.h>

#include "base/fd.hpp"

namespace actors::detail {

class poller {
public:
  /// Throws errc::spawn_failed, "cannot `purpose`: ...", when the OS
  /// refuses the descriptors.
  poller(const std::string& purpose, std::uint64_t wake_data);

  /// The epoll set.
  int fd() const noexcept {
    return epoll_.get();
  }

  /// Watches `fd` for `events`, its events carrying `data`; false (errno
  /// set) if epoll refused.
  bool add(int fd, std::uint32_t events, std::uint64_t data) noexcept;

  /// Wakes the waiting thread (any thread, any time).
  void wake() noexcept;

  /// Takes the wake-ups so far (the waiting thread, on the wake event).
  void drain_wake() noexcept;

private:
  unique_fd epoll_;
  unique_fd wake_;
};

} // namespace actors::detail
