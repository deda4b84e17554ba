#pragma once

// Socket helpers of the fuzz targets: each plays the peer of the code
// under test over a real socket.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstddef>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

namespace fuzz {

/// Sends `data` until all of it went or the peer hung up (the code under
/// test may close before reading everything).
inline void send_until_closed(int fd, const std::uint8_t* data,
                              std::size_t size) {
  for (std::size_t done = 0; done < size;) {
    auto n = ::send(fd, data + done, size - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    done += static_cast<std::size_t>(n);
  }
}

/// Reads into `out` until the peer closes (or resets) the connection or
/// `want` bytes arrived; false if neither happened within 5 s.
inline bool read_until(int fd, std::vector<std::uint8_t>& out,
                       std::size_t want = SIZE_MAX) {
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + std::chrono::seconds{5};
  std::uint8_t buf[512];
  while (out.size() < want) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - clock::now());
    if (left.count() <= 0)
      return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      continue;
    auto n = ::recv(fd, buf, std::min(sizeof(buf), want - out.size()), 0);
    if (n > 0)
      out.insert(out.end(), buf, buf + n);
    else if (n == 0 || errno != EINTR)
      return true;
  }
  return true;
}

} // namespace fuzz
