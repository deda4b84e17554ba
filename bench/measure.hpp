#pragma once

// What every benchmark program measures with: a clock, elapsed seconds,
// the median of repeated measurements, CPU time of a process, and busy
// cores.

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// The median of `runs` calls of `measure()`.
template <class F>
double median_of(int runs, F measure) {
  std::vector<double> xs;
  for (int i = 0; i < runs; ++i)
    xs.push_back(measure());
  std::sort(xs.begin(), xs.end());
  return xs[xs.size() / 2];
}

/// CPU seconds (user + system) that process `pid` has used so far, from
/// /proc/PID/stat; 0 if it cannot be read.
inline double cpu_seconds(pid_t pid) {
  auto path = "/proc/" + std::to_string(pid) + "/stat";
  auto* f = std::fopen(path.c_str(), "r");
  if (f == nullptr)
    return 0;
  char buf[1024];
  auto n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = 0;
  // Fields after the command (which may hold spaces), from ")": state is
  // the 3rd field, utime the 14th and stime the 15th.
  const char* p = buf;
  for (const char* q = buf; *q; ++q)
    if (*q == ')')
      p = q + 1;
  unsigned long utime = 0, stime = 0;
  if (std::sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                  &utime, &stime)
      != 2)
    return 0;
  return static_cast<double>(utime + stime)
         / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// CPU seconds this process has used so far (every thread).
inline double cpu_seconds_self() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
         + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec)
             * 1e-6;
}

/// While it lives, `n` processes that each burn a core (the "cores busy"
/// rows: two on a 2-core machine, as its Python peer does). They are
/// forked plain (they only spin) and die with this process.
class cores_busy {
public:
  explicit cores_busy(int n = 2) {
    auto parent = ::getpid();
    for (int i = 0; i < n; ++i) {
      auto pid = ::fork();
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent)
          ::_exit(0); // the parent died before the line above
        for (volatile unsigned long x = 0;; x = x + 1) {
        }
      }
      if (pid > 0)
        pids_.push_back(pid);
    }
  }

  cores_busy(const cores_busy&) = delete;
  cores_busy& operator=(const cores_busy&) = delete;

  ~cores_busy() {
    for (auto pid : pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

private:
  std::vector<pid_t> pids_;
};
