// Process start + join: the time from process::start() to join() returning
// for a child that does nothing, median over many runs.
// Peer: peers/process.py (Python multiprocessing, fork start method).
// Usage: bench_process [runs]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "actors/all.hpp"

int main(int argc, char** argv) {
  actors::init(argc, argv);
  int runs = argc > 1 ? std::atoi(argv[1]) : 200;
  std::vector<double> ms;
  for (int i = 0; i < runs + 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    actors::process p{[] {}};
    p.start();
    p.join();
    auto t1 = std::chrono::steady_clock::now();
    if (i >= 5) // the first runs bring the runtime up
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("libactors process start+join: median %.3f ms, min %.3f ms, "
              "max %.3f ms (%d runs)\n",
              ms[ms.size() / 2], ms.front(), ms.back(), runs);
}
