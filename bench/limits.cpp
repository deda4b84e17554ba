// The physical limits the benchmarks are measured against, with plain system
// calls and no libactors: a socketpair ping-pong between two processes,
// 1 MiB writes through a pipe and through a socketpair (libactors' transport
// between local processes) to another process, fork + wait of a child that
// exits at once (how libactors' fork server starts a child) and fork + exec
// + wait of a program that exits at once. Each is the median of several
// runs.
// Usage: bench_limits   (bench/run.py prints libactors' figures as fractions)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "measure.hpp"

namespace {

void must(bool ok, const char* what) {
  if (!ok) {
    std::perror(what);
    std::exit(1);
  }
}

// Reads or writes exactly n bytes.
void full(ssize_t (*op)(int, void*, size_t), int fd, char* p, size_t n) {
  while (n > 0) {
    auto k = op(fd, p, n);
    must(k > 0, "read/write");
    p += k;
    n -= static_cast<size_t>(k);
  }
}

ssize_t write_op(int fd, void* p, size_t n) {
  return ::write(fd, p, n);
}

// Microseconds per round trip of one byte between two processes.
double socketpair_round_trip() {
  int sv[2];
  must(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  const int n = 5000;
  auto pid = ::fork();
  must(pid >= 0, "fork");
  char c = 'x';
  if (pid == 0) {
    for (int i = 0; i < n; ++i) {
      full(::read, sv[1], &c, 1);
      full(write_op, sv[1], &c, 1);
    }
    ::_exit(0);
  }
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i) {
    full(write_op, sv[0], &c, 1);
    full(::read, sv[0], &c, 1);
  }
  auto us = seconds_since(t0) * 1e6 / n;
  ::waitpid(pid, nullptr, 0);
  ::close(sv[0]);
  ::close(sv[1]);
  return us;
}

// GB/s of 1 MiB writes from fds[1] to another process reading fds[0].
double throughput(int fds[2]) {
  const size_t mib = 1 << 20;
  const int n = 128;
  std::vector<char> buf(mib, 'x');
  auto pid = ::fork();
  must(pid >= 0, "fork");
  if (pid == 0) {
    ::close(fds[1]);
    for (int i = 0; i < n; ++i)
      full(::read, fds[0], buf.data(), mib);
    ::_exit(0);
  }
  ::close(fds[0]);
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i)
    full(write_op, fds[1], buf.data(), mib);
  ::close(fds[1]);
  ::waitpid(pid, nullptr, 0); // everything read
  return n * static_cast<double>(mib) / seconds_since(t0) / 1e9;
}

double pipe_throughput() {
  int fds[2];
  must(::pipe(fds) == 0, "pipe");
  return throughput(fds);
}

// The transport libactors uses between local processes.
double socketpair_throughput() {
  int fds[2];
  must(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0, "socketpair");
  return throughput(fds);
}

// Milliseconds for fork of this process, its child exiting at once, + wait.
double fork_wait() {
  auto t0 = clock_type::now();
  auto pid = ::fork();
  must(pid >= 0, "fork");
  if (pid == 0)
    ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return seconds_since(t0) * 1e3;
}

// Milliseconds for fork + exec of this binary (exiting at once) + wait.
double fork_exec_wait() {
  auto t0 = clock_type::now();
  auto pid = ::fork();
  must(pid >= 0, "fork");
  if (pid == 0) {
    ::execl("/proc/self/exe", "bench_limits", "--exit", nullptr);
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return seconds_since(t0) * 1e3;
}

} // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--exit") == 0)
    return 0;
  std::printf("limit socketpair ping-pong: %.1f us per round trip\n",
              median_of(5, socketpair_round_trip));
  std::printf("limit pipe 1 MiB one-way: %.2f GB/s\n",
              median_of(5, pipe_throughput));
  std::printf("limit socketpair 1 MiB one-way: %.2f GB/s\n",
              median_of(5, socketpair_throughput));
  std::printf("limit fork+wait: %.3f ms\n", median_of(101, fork_wait));
  std::printf("limit fork+exec+wait: %.3f ms\n", median_of(101, fork_exec_wait));
}
