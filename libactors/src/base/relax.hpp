#pragma once

// Short busy waits: one step (a hint to the core, not a yield: a thread
// that yields on a busy machine waits out someone else's time slice), and
// a bounded spin before a sleep.

#include <chrono>
#include <cstdlib>

namespace actors::detail {

inline void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// A spin time in microseconds from the environment variable `name` (0 to
/// 10000; anything else, or unset: `default_us`). Callers keep it in a
/// static: it is read once.
inline std::chrono::nanoseconds spin_from_env(const char* name,
                                              long default_us) {
  long us = default_us;
  if (const char* env = std::getenv(name); env != nullptr && *env != '\0') {
    char* end = nullptr;
    auto v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 0 && v <= 10000)
      us = v;
  }
  return std::chrono::microseconds{us};
}

/// Spins (relax) until `ready()` or for `budget`; true if ready. The clock
/// is read once per 64 steps.
template <class Ready>
bool spin_until_ready(Ready&& ready, std::chrono::nanoseconds budget) {
  if (budget <= std::chrono::nanoseconds::zero())
    return ready();
  auto until = std::chrono::steady_clock::now() + budget;
  do {
    for (int i = 0; i < 64; ++i) {
      if (ready())
        return true;
      relax();
    }
  } while (std::chrono::steady_clock::now() < until);
  return ready();
}

/// A spin that backs off where it does not pay: after three spins in a row
/// that ended without what they waited for, only every 16th wait spins (a
/// probe); a spin that succeeds restores it.
class adaptive_spin {
public:
  explicit adaptive_spin(std::chrono::nanoseconds full) : full_(full) {
    // nop
  }

  /// The budget for the next wait.
  std::chrono::nanoseconds budget() noexcept {
    if (misses_ < 3 || ++skipped_ % 16 == 0)
      return full_;
    return std::chrono::nanoseconds::zero();
  }

  /// What the spin of `budget()` came to.
  void record(std::chrono::nanoseconds budget, bool ready) noexcept {
    if (budget == std::chrono::nanoseconds::zero())
      return;
    misses_ = ready ? 0 : misses_ + 1;
  }

private:
  std::chrono::nanoseconds full_;
  int misses_ = 0;
  unsigned skipped_ = 0;
};

} // namespace actors::detail
