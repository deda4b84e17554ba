#pragma once

// What every benchmark program measures with: a clock, elapsed seconds,
// and the median of repeated measurements.

#include <algorithm>
#include <chrono>
#include <vector>

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
