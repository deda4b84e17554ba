#pragma once

// The seed's sleeps, scaled by the environment variable ACTORS_DEMO_SCALE
// (1 by default; the tests run the demos at a fraction of the seed's timings,
// which keeps every ordering the seed shows), and a clock shared by all
// processes of a demo (CLOCK_MONOTONIC) for timestamps that tasks report.

#include <chrono>
#include <cstdlib>
#include <thread>

namespace demo {

inline double scale() {
  auto* s = std::getenv("ACTORS_DEMO_SCALE");
  return s ? std::atof(s) : 1.0;
}

inline void sleep_seconds(double seconds) {
  std::this_thread::sleep_for(
    std::chrono::duration<double>(seconds * scale()));
}

/// Milliseconds on a clock that every process of this machine shares.
inline long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

} // namespace demo
