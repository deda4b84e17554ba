#pragma once

// An owning file descriptor: closed exactly once, when its owner goes or is
// given another. Every descriptor libactors makes is held by one of these
// (or handed on with release()), so no error path leaks one.

#include <utility>

#include <unistd.h>

namespace actors::detail {

class unique_fd {
public:
  unique_fd() noexcept = default;

  /// Owns `fd` (-1: nothing).
  explicit unique_fd(int fd) noexcept : fd_(fd) {
    // nop
  }

  unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {
    // nop
  }

  unique_fd& operator=(unique_fd&& other) noexcept {
    reset(other.release());
    return *this;
  }

  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  ~unique_fd() {
    reset();
  }

  /// The descriptor, still owned here.
  int get() const noexcept {
    return fd_;
  }

  explicit operator bool() const noexcept {
    return fd_ >= 0;
  }

  /// Gives up ownership: the caller closes it.
  [[nodiscard]] int release() noexcept {
    return std::exchange(fd_, -1);
  }

  /// Closes the descriptor held, then owns `fd`.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_ = -1;
};

} // namespace actors::detail
