// Named shared memory (actors::shared_memory, actors/shared_memory.hpp):
// POSIX shared memory objects, as Python's SharedMemory, and the names
// this process created and must unlink at its exit (shm/shared_memory.hpp).
//
// The names are also told to a tracker, as Python's resource tracker: this
// program executed again in the tracker role (run_shm_tracker), started at
// the first name, reading "+name" and "-name" lines from a socket that
// only this process holds. When it ends, whatever this process's end was
// (a signal too), it unlinks what is left, and exits.

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

#include <csignal>
#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace actors {

namespace {

// The names this process created with track and did not unlink.
struct tracked_names {
  std::mutex mtx;
  std::set<std::string> names;
  bool registered = false;
  int tracker = -1; // this end of the socket to the tracker
};

// Starts the tracker (no tracker: the names are unlinked at a normal exit
// only, as before). A socket, not a pipe: a tracker that was killed must
// not take this process with it by SIGPIPE (send's MSG_NOSIGNAL).
int start_tracker() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0],
                                   detail::shm_tracker_fd);
  char arg0[] = "libactors-shm-tracker";
  char arg1[] = "--actors-shm-tracker";
  char* argv[] = {arg0, arg1, nullptr};
  pid_t pid = -1;
  auto rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv,
                          environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[0]);
  if (rc != 0) {
    ::close(fds[1]);
    return -1;
  }
  return fds[1];
}

// Tells the tracker `line` (under the lock); a tracker gone is forgotten.
void tell(tracked_names& t, char what, const std::string& name) {
  if (t.tracker < 0)
    return;
  auto line = what + name + "\n";
  if (::send(t.tracker, line.data(), line.size(), MSG_NOSIGNAL)
      != static_cast<ssize_t>(line.size())) {
    ::close(t.tracker);
    t.tracker = -1;
  }
}

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
    t.tracker = start_tracker();
  }
  tell(t, '+', name);
}

// Forgets `name`; true if this process tracked it.
bool untrack(const std::string& name) {
  auto& t = tracked();
  std::lock_guard<std::mutex> guard{t.mtx};
  if (t.names.erase(name) == 0)
    return false;
  tell(t, '-', name);
  return true;
}

std::string checked_name(const std::string& name) {
  if (name.empty() || name.size() > 250
      || name.find_first_of("/\n") != std::string::npos)
    throw error(errc::invalid_argument,
                "a shared memory name is 1 to 250 characters without '/' "
                "or a line break: \""
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
  std::lock_guard<std::mutex> guard{t.mtx};
  for (auto& name : names)
    tell(t, '-', name);
}

void run_shm_tracker() {
  // Its own session: a signal to the program's process group (Ctrl-C)
  // leaves it to clean up after the program.
  ::setsid();
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGHUP, SIG_IGN);
  std::set<std::string> names;
  std::string pending;
  char buf[4096];
  for (;;) {
    auto n = ::read(shm_tracker_fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t end;
    while ((end = pending.find('\n')) != std::string::npos) {
      auto line = pending.substr(0, end);
      pending.erase(0, end + 1);
      if (line.size() < 2)
        continue;
      if (line[0] == '+')
        names.insert(line.substr(1));
      else if (line[0] == '-')
        names.erase(line.substr(1));
    }
  }
  for (auto& name : names)
    if (::shm_unlink(("/" + name).c_str()) == 0)
      std::fprintf(stderr,
                   "libactors: shared memory \"%s\" left behind by a "
                   "process that ended without unlinking it: unlinked\n",
                   name.c_str());
  std::_Exit(0);
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
    // Reserved, not only sized: a sparse file in a full /dev/shm would
    // kill the first process that writes to it with SIGBUS.
    int err = 0;
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
      err = errno;
    else if (size > 0)
      err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size));
    if (err != 0) {
      ::shm_unlink(path.c_str());
      throw error(errc::spawn_failed,
                  "cannot size shared memory \"" + name + "\" to "
                    + std::to_string(size) + " bytes: " + std::strerror(err)
                    + (err == ENOSPC ? " (/dev/shm is full)" : ""));
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
