#include "shm/shared_memory.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace actors::detail {

namespace {

mapping map_shared(int fd, std::size_t size) {
  auto* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return {};
  return {p, size};
}

bool regular_of_size(const struct stat& st, std::size_t size) {
  return S_ISREG(st.st_mode) && static_cast<std::size_t>(st.st_size) == size;
}

} // namespace

void mapping::reset() noexcept {
  if (addr_ != nullptr)
    ::munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
}

shared_memory make_shared_memory(const char* name, std::size_t size) {
  shared_memory result;
  unique_fd fd{::memfd_create(name, MFD_CLOEXEC)};
  if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
    return result;
  auto memory = map_shared(fd.get(), size);
  if (!memory)
    return result;
  result.fd = std::move(fd);
  result.memory = std::move(memory);
  return result;
}

mapping map_peer_memory(pid_t pid, int fd, std::size_t size,
                        std::string& why) {
  if (pid <= 0 || fd < 0) {
    why = "no such process";
    return {};
  }
  auto path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  // Looked at before it is opened: opening a device or a pipe may do
  // something of its own.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    why = std::strerror(errno);
    return {};
  }
  if (!regular_of_size(st, size)) {
    why = "its memory is not there";
    return {};
  }
  unique_fd opened{
    ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)};
  if (!opened) {
    why = std::strerror(errno);
    return {};
  }
  // Looked at again: the descriptor may name something else by now.
  if (::fstat(opened.get(), &st) != 0 || !regular_of_size(st, size)) {
    why = "its memory is not there";
    return {};
  }
  auto memory = map_shared(opened.get(), size);
  if (!memory)
    why = std::strerror(errno);
  return memory;
}

} // namespace actors::detail
