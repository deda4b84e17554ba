#include "wire/channel.hpp"

#include <algorithm>
#include <cerrno>

#include <sys/socket.h>
#include <unistd.h>

#include <caf/scoped_execution_unit.hpp>

#include "wire/node_context.hpp"

namespace actors::detail {

channel::channel(int fd) : fd_(fd) {
  // nop
}

channel::~channel() {
  ::close(fd_);
}

bool channel::runtime_ready() noexcept {
  return node_context::started();
}

caf::execution_unit& channel::context() {
  thread_local caf::scoped_execution_unit unit{&node_context::system()};
  thread_local bool ready = false;
  if (!ready) {
    unit.proxy_registry_ptr(node_context::proxies());
    ready = true;
  }
  return unit;
}

bool channel::flush(bool block) {
  std::lock_guard<std::mutex> guard{writing_};
  midframe_ = false;
  while (sent_ < out_.size()) {
    auto n = ::send(fd_, out_.data() + sent_, out_.size() - sent_,
                    MSG_NOSIGNAL | (block ? 0 : MSG_DONTWAIT));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        midframe_ = sent_ > 0;
        return true;
      }
      failure_ = failure_ != 0 ? failure_ : errno;
      return false;
    }
    sent_ += static_cast<std::size_t>(n);
  }
  out_.clear();
  sent_ = 0;
  return true;
}

bool channel::fill(bool block) {
  // Move what next() left to the front, and make room for at least the
  // frame being read (or 64 KiB).
  auto used = in_len_ - read_;
  std::size_t want = 65536;
  if (used >= header_size) {
    std::uint32_t size;
    std::memcpy(&size, in_.get() + read_, sizeof(size));
    want = std::max(want, header_size + size - std::min(used, header_size + size));
  }
  if (used + want > in_cap_) {
    auto cap = std::max(used + want, 2 * in_cap_);
    std::unique_ptr<char[]> bigger{new char[cap]};
    if (used > 0)
      std::memcpy(bigger.get(), in_.get() + read_, used);
    in_ = std::move(bigger);
    in_cap_ = cap;
  } else if (read_ > 0 && used > 0) {
    std::memmove(in_.get(), in_.get() + read_, used);
  }
  read_ = 0;
  in_len_ = used;
  for (;;) {
    auto n = ::recv(fd_, in_.get() + in_len_, in_cap_ - in_len_,
                    block ? 0 : MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return true;
    if (n < 0)
      failure_ = failure_ != 0 ? failure_ : errno;
    if (n <= 0)
      return false;
    in_len_ += static_cast<std::size_t>(n);
    heard_ = std::chrono::steady_clock::now();
    return true;
  }
}

void channel::feed(const char* data, std::size_t size) {
  auto used = in_len_ - read_;
  if (used + size > in_cap_) {
    auto cap = std::max({used + size, 2 * in_cap_, std::size_t{65536}});
    std::unique_ptr<char[]> bigger{new char[cap]};
    if (used > 0)
      std::memcpy(bigger.get(), in_.get() + read_, used);
    in_ = std::move(bigger);
    in_cap_ = cap;
  } else if (read_ > 0 && in_len_ + size > in_cap_) {
    std::memmove(in_.get(), in_.get() + read_, used);
  } else {
    used = in_len_; // append in place
    std::memcpy(in_.get() + used, data, size);
    in_len_ += size;
    return;
  }
  read_ = 0;
  std::memcpy(in_.get() + used, data, size);
  in_len_ = used + size;
}

std::optional<channel::frame> channel::next() {
  auto avail = in_len_ - read_;
  if (avail < header_size)
    return std::nullopt;
  std::uint32_t size;
  std::memcpy(&size, in_.get() + read_, sizeof(size));
  if (avail < header_size + size)
    return std::nullopt;
  frame f{static_cast<std::uint8_t>(in_[read_ + sizeof(size)]),
          in_.get() + read_ + header_size, size};
  read_ += header_size + size;
  return f;
}

std::optional<std::uint32_t> channel::next_size() const {
  if (in_len_ - read_ < header_size)
    return std::nullopt;
  std::uint32_t size;
  std::memcpy(&size, in_.get() + read_, sizeof(size));
  return size;
}

void channel::shutdown_write() {
  ::shutdown(fd_, SHUT_WR);
}

bool channel::beat(std::uint8_t kind) {
  std::unique_lock<std::mutex> guard{writing_, std::try_to_lock};
  if (!guard.owns_lock() || midframe_)
    return true;
  char frame[header_size] = {0, 0, 0, 0, static_cast<char>(kind)};
  // Whole, so that the next frame starts where it should.
  for (std::size_t sent = 0; sent < header_size;) {
    auto n = ::send(fd_, frame + sent, header_size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

void channel::abandon(int err) {
  failure_ = failure_ != 0 ? failure_ : err;
  ::shutdown(fd_, SHUT_RDWR);
}

} // namespace actors::detail
