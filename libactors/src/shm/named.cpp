// Named shared memory (actors::shared_memory, actors/shared_memory.hpp):
// POSIX shared memory objects, as Python's SharedMemory, and the names
// this process created and must unlink at its exit (shm/shared_memory.hpp).

#include "actors/shared_memory.hpp"

#include "base/random.hpp"
#include "shm/shared_memory.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace actors {

namespace {

// The names this process created with track and did not unlink.
struct tracked_names {
  std::mutex mtx;
  std::set<std::string> names;
  bool registered = false;
};

tracked_names& tracked() {
  static auto* instance = new tracked_names; // used at exit: never destroyed
  return *instance;
}

void track(const std::string& name) {
  auto& t = tracked();
  std::lock_guard<std::mutex> guard{t.mtx};
  t.names.insert(name);
  if (!t.registered) {
    t.registered = true;
    std::atexit(detail::unlink_tracked_blocks);
  }
}

// Forgets `name`; true if this process tracked it.
bool untrack(const std::string& name) {
  auto& t = tracked();
  std::lock_guard<std::mutex> guard{t.mtx};
  return t.names.erase(name) > 0;
}

std::string checked_name(const std::string& name) {
  if (name.empty() || name.size() > 250
      || name.find('/') != std::string::npos)
    throw error(errc::invalid_argument,
                "a shared memory name is 1 to 250 characters without '/': \""
                  + name + "\"");
  return "/" + name;
}

} // namespace

namespace detail {

void unlink_tracked_blocks() noexcept {
  auto& t = tracked();
  std::set<std::string> names;
  {
    std::lock_guard<std::mutex> guard{t.mtx};
    names.swap(t.names);
  }
  for (auto& name : names)
    ::shm_unlink(("/" + name).c_str());
}

} // namespace detail

shared_memory shared_memory::create(std::size_t size, std::string name,
                                    bool track_it) {
  if (size == 0)
    throw error(errc::invalid_argument,
                "a shared memory block needs a positive size");
  bool random_name = name.empty();
  for (int attempt = 0;; ++attempt) {
    if (random_name) {
      char hex[17];
      std::snprintf(hex, sizeof(hex), "%016llx",
                    static_cast<unsigned long long>(
                      detail::random_value<std::uint64_t>()));
      name = std::string{"actors_"} + hex;
    }
    auto path = checked_name(name);
    detail::unique_fd fd{
      ::shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600)};
    if (!fd) {
      if (errno == EEXIST && random_name && attempt < 8)
        continue;
      if (errno == EEXIST)
        throw error(errc::invalid_argument,
                    "a shared memory block named \"" + name + "\" exists");
      throw error(errc::spawn_failed, "cannot create shared memory \"" + name
                                        + "\": " + std::strerror(errno));
    }
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      auto err = errno;
      ::shm_unlink(path.c_str());
      throw error(errc::spawn_failed, "cannot size shared memory \"" + name
                                        + "\": " + std::strerror(err));
    }
    auto* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                     fd.get(), 0);
    if (p == MAP_FAILED) {
      auto err = errno;
      ::shm_unlink(path.c_str());
      throw error(errc::spawn_failed, "cannot map shared memory \"" + name
                                        + "\": " + std::strerror(err));
    }
    if (track_it)
      track(name);
    shared_memory result;
    result.name_ = std::move(name);
    result.size_ = size;
    result.memory_ = p;
    return result;
  }
}

shared_memory shared_memory::attach(const std::string& name) {
  auto path = checked_name(name);
  detail::unique_fd fd{::shm_open(path.c_str(), O_RDWR | O_CLOEXEC, 0)};
  if (!fd) {
    if (errno == ENOENT)
      throw error(errc::invalid_argument,
                  "no shared memory block is named \"" + name + "\"");
    throw error(errc::spawn_failed, "cannot open shared memory \"" + name
                                      + "\": " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || st.st_size <= 0)
    throw error(errc::invalid_argument,
                "the shared memory block \"" + name + "\" is empty");
  auto size = static_cast<std::size_t>(st.st_size);
  auto* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd.get(), 0);
  if (p == MAP_FAILED)
    throw error(errc::spawn_failed, "cannot map shared memory \"" + name
                                      + "\": " + std::strerror(errno));
  shared_memory result;
  result.name_ = name;
  result.size_ = size;
  result.memory_ = p;
  return result;
}

shared_memory::shared_memory(shared_memory&& other) noexcept
  : name_(std::move(other.name_)),
    size_(std::exchange(other.size_, 0)),
    memory_(std::exchange(other.memory_, nullptr)) {
  // nop
}

shared_memory& shared_memory::operator=(shared_memory&& other) noexcept {
  if (this != &other) {
    close();
    name_ = std::move(other.name_);
    size_ = std::exchange(other.size_, 0);
    memory_ = std::exchange(other.memory_, nullptr);
  }
  return *this;
}

shared_memory::~shared_memory() {
  close();
}

std::byte* shared_memory::buf() const {
  if (memory_ == nullptr)
    throw error(errc::invalid_argument,
                name_.empty() ? "no shared memory block"
                              : "the shared memory block \"" + name_
                                  + "\" was closed here");
  return static_cast<std::byte*>(memory_);
}

void shared_memory::close() {
  if (memory_ != nullptr)
    ::munmap(memory_, size_);
  memory_ = nullptr;
}

void shared_memory::unlink() {
  if (name_.empty())
    throw error(errc::invalid_argument, "no shared memory block");
  untrack(name_);
  if (::shm_unlink(checked_name(name_).c_str()) != 0)
    throw error(errc::invalid_argument,
                "the shared memory block \"" + name_ + "\" was unlinked "
                  "already: " + std::strerror(errno));
}

} // namespace actors
