// Pool workloads with two workers, side by side with peers/pool.py.
// Usage: bench_pool

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"
#include "measure.hpp"

namespace {

int trivial(int x) {
  return x + 1;
}

long add(int a, int b) {
  return a + b;
}

// About 5 ms of arithmetic on this machine.
double burn(int seed) {
  volatile double x = seed; // volatile: the loop must really run
  for (int i = 0; i < 2'500'000; ++i)
    x = x * 1.0000001 + 1e-9;
  return x;
}

pid_t worker_pid(int) {
  return ::getpid();
}

// Peak resident memory of a process in MB (VmHWM).
double peak_rss_mb(pid_t pid) {
  auto path = "/proc/" + std::to_string(pid) + "/status";
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr)
    return 0;
  char line[256];
  long kb = 0;
  while (std::fgets(line, sizeof(line), f))
    if (std::sscanf(line, "VmHWM: %ld kB", &kb) == 1)
      break;
  std::fclose(f);
  return kb / 1024.0;
}

void report(const char* what, double per_second) {
  std::printf("libactors %s: %.0f tasks/s\n", what, per_second);
}

} // namespace

int main(int argc, char** argv) {
  actors::init(argc, argv);
  {
    auto t0 = clock_type::now();
    {
      actors::pool p{2};
      p.apply(trivial, 1);
      p.close();
      p.join();
    }
    std::printf("libactors pool start+task+shutdown: %.1f ms\n",
                seconds_since(t0) * 1e3);
  }
  actors::pool p{2};
  p.map(trivial, std::vector<int>(100, 0)); // warm up
  std::vector<int> big(100000), small(20000);
  std::iota(big.begin(), big.end(), 0);
  std::iota(small.begin(), small.end(), 0);
  auto t0 = clock_type::now();
  p.map(trivial, big);
  report("map 100k default chunksize", big.size() / seconds_since(t0));
  t0 = clock_type::now();
  p.map(trivial, small, 1);
  report("map chunksize 1", small.size() / seconds_since(t0));
  t0 = clock_type::now();
  for (int x : p.imap(trivial, small, 1))
    (void) x;
  report("imap chunksize 1", small.size() / seconds_since(t0));
  t0 = clock_type::now();
  for (int x : p.imap(trivial, big, 256))
    (void) x;
  report("imap chunksize 256", big.size() / seconds_since(t0));
  t0 = clock_type::now();
  for (int x : p.imap_unordered(trivial, small, 1))
    (void) x;
  report("imap_unordered chunksize 1", small.size() / seconds_since(t0));
  t0 = clock_type::now();
  std::vector<actors::async_result<int>> rs;
  for (int x : small)
    rs.push_back(p.apply_async(trivial, x));
  for (auto& r : rs)
    r.get();
  report("apply_async x 20k", small.size() / seconds_since(t0));
  std::vector<std::pair<int, int>> pairs;
  for (int x : big)
    pairs.emplace_back(x, x);
  t0 = clock_type::now();
  p.starmap(add, pairs);
  report("starmap 100k", pairs.size() / seconds_since(t0));
  std::vector<int> cpu(200);
  std::iota(cpu.begin(), cpu.end(), 0);
  t0 = clock_type::now();
  volatile double sink = 0;
  for (int x : cpu)
    sink = sink + burn(x);
  auto serial = seconds_since(t0);
  t0 = clock_type::now();
  p.map(burn, cpu, 1);
  auto parallel = seconds_since(t0);
  std::printf("libactors CPU-bound map speedup: %.2fx (serial %.2f s)\n",
              serial / parallel, serial);
  // After all of the above: the owner's and the workers' peak memory.
  std::set<pid_t> workers;
  for (auto pid : p.map(worker_pid, std::vector<int>(200, 0), 1))
    workers.insert(pid);
  double most = 0;
  for (auto pid : workers)
    most = std::max(most, peak_rss_mb(pid));
  std::printf("libactors peak RSS of a worker: %.1f MB\n", most);
  std::printf("libactors peak RSS of the owner: %.1f MB\n",
              peak_rss_mb(::getpid()));
  p.close();
  p.join();
}
