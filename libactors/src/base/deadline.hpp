#pragma once

// One bound for every wait: a caller's timeout (none: wait without bound;
// negative: zero, as Python treats it; `forever` or more, as
// duration::max(): no bound) becomes a deadline on the steady clock,
// which each kernel wait reads in its own form (poll's milliseconds, a
// futex's or pthread's CLOCK_MONOTONIC timespec, a protocol's
// nanoseconds). Linux's steady_clock is CLOCK_MONOTONIC.

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <optional>

#include <time.h>

#include "actors/detail/timeout.hpp"

namespace actors::detail {

class deadline {
public:
  using clock = std::chrono::steady_clock;
  using duration = clock::duration;

  /// No bound.
  deadline() noexcept = default;

  /// `timeout` from now; none (or `forever` and more): no bound; a
  /// negative one is zero.
  explicit deadline(std::optional<duration> timeout)
    : bounded_(timeout.has_value() && *timeout < forever),
      at_(bounded_ ? clock::now() + std::max(*timeout, duration::zero())
                   : clock::time_point::max()) {
    // nop
  }

  /// The point `at` on the steady clock.
  static deadline at(clock::time_point at) noexcept {
    deadline d;
    d.bounded_ = true;
    d.at_ = at;
    return d;
  }

  bool bounded() const noexcept {
    return bounded_;
  }

  clock::time_point when() const noexcept {
    return at_;
  }

  bool passed() const {
    return bounded_ && clock::now() >= at_;
  }

  /// What is left (zero once passed); none for no bound.
  std::optional<duration> left() const {
    if (!bounded_)
      return std::nullopt;
    return std::max(at_ - clock::now(), duration::zero());
  }

  /// What is left in nanoseconds, -1 for no bound (the form frames carry).
  std::int64_t left_ns() const {
    auto x = left();
    return x ? std::chrono::duration_cast<std::chrono::nanoseconds>(*x).count()
             : -1;
  }

  /// poll()'s timeout: milliseconds left, rounded up; -1 for no bound.
  int poll_ms() const {
    auto x = left();
    if (!x)
      return -1;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(*x).count();
    return static_cast<int>(std::min<decltype(ms)>(ms, INT_MAX));
  }

  /// The deadline as CLOCK_MONOTONIC's absolute time (bounded only).
  timespec monotonic() const {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                at_.time_since_epoch())
                .count();
    timespec ts;
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    return ts;
  }

private:
  bool bounded_ = false;
  clock::time_point at_ = clock::time_point::max();
};

/// A timeout as frames carry it: nanoseconds, -1 for none (and for
/// `forever` or more), negative as zero.
inline std::int64_t timeout_ns(std::optional<deadline::duration> timeout) {
  if (!timeout || *timeout >= forever)
    return -1;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::max(*timeout, deadline::duration::zero()))
    .count();
}

/// A timeout that frames carry (timeout_ns): none for -1 or any negative,
/// and for `forever` or more (so no sum with a peer's number overflows).
inline std::optional<std::chrono::nanoseconds> wire_timeout(std::int64_t ns) {
  if (ns < 0 || ns >= forever.count())
    return std::nullopt;
  return std::chrono::nanoseconds{ns};
}

} // namespace actors::detail
