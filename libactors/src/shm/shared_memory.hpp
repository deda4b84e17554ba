#pragma once

// Memory shared between the processes of one host: an area a process makes
// (a memfd, mapped shared; its descriptor stays open so that others can
// find it) and the mapping of another process's area through
// /proc/PID/fd/N, opened only when it is a regular file of the size
// expected (the pid may have been reused, a descriptor number may come
// from anyone: no device or pipe is ever opened).
//
//   make_shared_memory(name, size)  -> shared_memory (fd + mapping)
//   map_peer_memory(pid, fd, size)  -> mapping, or why not
//   unlink_tracked_blocks()         what actors::shared_memory must not
//                                   leave behind at exit
//   run_shm_tracker()               the tracker role, which unlinks them
//                                   after a process that died
//
// Neither throws: callers say what failed in their own terms.

#include <cstddef>
#include <string>
#include <utility>

#include <sys/types.h>

#include "base/fd.hpp"

namespace actors::detail {

/// `size` bytes mapped shared, unmapped when it goes (unless released).
class mapping {
public:
  mapping() noexcept = default;

  mapping(void* addr, std::size_t size) noexcept : addr_(addr), size_(size) {
    // nop
  }

  mapping(mapping&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr)),
      size_(std::exchange(other.size_, 0)) {
    // nop
  }

  mapping& operator=(mapping&& other) noexcept {
    reset();
    addr_ = std::exchange(other.addr_, nullptr);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }

  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;

  ~mapping() {
    reset();
  }

  void* get() const noexcept {
    return addr_;
  }

  std::size_t size() const noexcept {
    return size_;
  }

  explicit operator bool() const noexcept {
    return addr_ != nullptr;
  }

  /// Gives up ownership: the memory stays mapped for good (or until the
  /// caller unmaps it).
  [[nodiscard]] void* release() noexcept {
    size_ = 0;
    return std::exchange(addr_, nullptr);
  }

  /// Unmaps the memory held, if any.
  void reset() noexcept;

private:
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

/// An area this process shares: a memfd and its mapping.
struct shared_memory {
  unique_fd fd;
  mapping memory;
};

/// Makes a memfd called `name` of `size` bytes (sparse: zero, and backed
/// page by page as it is written) and maps it shared. On failure both are
/// empty and errno says why.
shared_memory make_shared_memory(const char* name, std::size_t size);

/// Maps the area process `pid` shares as its descriptor `fd`, if that is a
/// regular file of exactly `size` bytes. On failure the mapping is empty
/// and `why` says what was wrong (an errno text, or "its memory is not
/// there" for something of another kind or size).
mapping map_peer_memory(pid_t pid, int fd, std::size_t size,
                        std::string& why);

/// Unlinks the named blocks (actors::shared_memory) this process created
/// to be tracked and did not unlink: at its exit (std::atexit in the
/// program the user started, runtime::finish in a child).
void unlink_tracked_blocks() noexcept;

/// The descriptor on which the tracker reads what a process created.
constexpr int shm_tracker_fd = 3;

/// The tracker role (actors::init with --actors-shm-tracker): keeps the
/// names a process tells it on shm_tracker_fd ("+name", "-name" lines) and,
/// once that process is gone (end of file), unlinks those left, saying so
/// on stderr; then exits.
[[noreturn]] void run_shm_tracker();

} // namespace actors::detail
