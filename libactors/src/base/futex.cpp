// The futex calls of base/futex.hpp.

#include "base/futex.hpp"

#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace actors::detail {

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t seen,
                std::chrono::steady_clock::time_point deadline,
                std::uint32_t bits) {
  // An absolute deadline on CLOCK_MONOTONIC, steady_clock's clock.
  timespec ts{};
  timespec* bound = nullptr;
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  deadline.time_since_epoch())
                  .count();
    if (ns <= 0)
      return;
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    bound = &ts;
  }
  // EINTR, EAGAIN and ETIMEDOUT all mean "look again".
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word),
            FUTEX_WAIT_BITSET, seen, bound, nullptr, bits);
}

int futex_wake(std::atomic<std::uint32_t>& word, int n, std::uint32_t bits) {
  auto r = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word),
                     FUTEX_WAKE_BITSET, n, nullptr, nullptr, bits);
  return r > 0 ? static_cast<int>(r) : 0;
}

} // namespace actors::detail
