#include "base/poller.hpp"

#include <cerrno>
#include <cstring>

#include <sys/eventfd.h>
#include <unistd.h>

#include "actors/error.hpp"

namespace actors::detail {

poller::poller(const std::string& purpose, std::uint64_t wake_data) {
  auto fail = [&](const char* what) {
    throw error(errc::spawn_failed, "cannot " + purpose + ": " + what + ": "
                                      + std::strerror(errno));
  };
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_)
    fail("epoll_create1");
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_)
    fail("eventfd");
  if (!add(wake_.get(), EPOLLIN, wake_data))
    fail("epoll_ctl");
}

bool poller::add(int fd, std::uint32_t events, std::uint64_t data) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
  return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

void poller::wake() noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof(one));
}

void poller::drain_wake() noexcept {
  std::uint64_t count = 0;
  [[maybe_unused]] auto n = ::read(wake_.get(), &count, sizeof(count));
}

} // namespace actors::detail
