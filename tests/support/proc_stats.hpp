#pragma once

// What the reliability tests (chaos, soak, bad input) measure of a process
// and share between processes: thread count and resident memory from
// /proc/self/status, the state, parent and group of any process from
// /proc/PID/stat, a file mapped shared by unrelated processes (children of
// libactors are forked from a copy made at actors::init, so an anonymous
// shared mapping of the owner would not reach them), and the seed of a
// randomized test.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

namespace support {

/// A field of /proc/self/status such as "Threads" or "VmRSS" (in its unit,
/// kB for memory), or -1.
inline long status_field(const char* name) {
  long value = -1;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    std::string prefix = std::string{name} + ":";
    while (std::fgets(line, sizeof(line), f))
      if (std::string{line}.rfind(prefix, 0) == 0) {
        value = std::strtol(line + prefix.size(), nullptr, 10);
        break;
      }
    std::fclose(f);
  }
  return value;
}

/// Threads of this process.
inline long thread_count() {
  return status_field("Threads");
}

/// Resident memory of this process, in kB.
inline long rss_kb() {
  return status_field("VmRSS");
}

/// The first fields of /proc/PID/stat after the command: the state letter
/// (R, S, D, T, t, Z...; '?' when there is no such process), the parent's
/// pid and the process group (0 when unknown).
struct stat_fields {
  char state = '?';
  pid_t ppid = 0;
  pid_t pgrp = 0;
};

inline stat_fields proc_stat(pid_t pid) {
  stat_fields x;
  auto path = "/proc/" + std::to_string(pid) + "/stat";
  if (std::FILE* f = std::fopen(path.c_str(), "r")) {
    std::string stat;
    for (int c; (c = std::fgetc(f)) != EOF;)
      stat += static_cast<char>(c);
    std::fclose(f);
    // pid (comm) state ppid pgrp ...: comm may hold anything but ')'.
    auto close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size()) {
      int ppid = 0;
      int pgrp = 0;
      x.state = stat[close + 2];
      if (std::sscanf(stat.c_str() + close + 3, " %d %d", &ppid, &pgrp) == 2) {
        x.ppid = static_cast<pid_t>(ppid);
        x.pgrp = static_cast<pid_t>(pgrp);
      }
    }
  }
  return x;
}

/// The state letter of `pid` (see proc_stat).
inline char process_state(pid_t pid) {
  return proc_stat(pid).state;
}

/// A zero-filled file of `sizeof(T)` bytes mapped shared, so that every
/// process that maps it by its path sees the same `T`. The creator removes
/// the file when done. `T` must be valid when all zero bytes (atomics,
/// integers, arrays of them).
template <class T>
class shared_file {
public:
  /// Creates the file and maps it.
  shared_file() {
    char path[] = "/tmp/actors-shared-XXXXXX";
    auto fd = ::mkstemp(path);
    if (fd < 0 || ::ftruncate(fd, sizeof(T)) != 0)
      throw std::runtime_error("cannot create a shared file");
    path_ = path;
    owner_ = true;
    map(fd);
  }

  /// Maps the file at `path`, made by another process.
  explicit shared_file(const std::string& path) : path_(path) {
    auto fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0)
      throw std::runtime_error("cannot open " + path);
    map(fd);
  }

  shared_file(const shared_file&) = delete;
  shared_file& operator=(const shared_file&) = delete;

  ~shared_file() {
    ::munmap(data_, sizeof(T));
    if (owner_)
      ::unlink(path_.c_str());
  }

  T* operator->() const noexcept {
    return data_;
  }
  T& operator*() const noexcept {
    return *data_;
  }
  const std::string& path() const noexcept {
    return path_;
  }

private:
  void map(int fd) {
    auto* addr = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE,
                        MAP_SHARED, fd, 0);
    ::close(fd);
    if (addr == MAP_FAILED)
      throw std::runtime_error("cannot map " + path_);
    data_ = static_cast<T*>(addr);
  }

  std::string path_;
  bool owner_ = false;
  T* data_ = nullptr;
};

/// The seed of a randomized test: ACTORS_CHAOS_SEED when set (to replay a
/// failure), else a fresh one. Print it with the test's MESSAGE/INFO.
inline std::uint64_t chaos_seed() {
  if (const char* env = std::getenv("ACTORS_CHAOS_SEED"))
    return std::strtoull(env, nullptr, 10);
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

} // namespace support
