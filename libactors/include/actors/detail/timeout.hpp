#pragma once

// What a timeout of the public API means before any wait reads it: none
// waits without bound, and so does one of `forever` or more, such as
// duration::max(), the usual C++ "forever" (added to the clock, it would
// overflow into the past and end the wait at once). Users never name it.

#include <chrono>
#include <cstdint>
#include <optional>

namespace actors::detail {

/// A timeout this long or longer (2^60 ns, 36 years) is no bound.
constexpr std::chrono::nanoseconds forever{std::int64_t{1} << 60};

/// `timeout`, or none if it is `forever` or longer.
inline std::optional<std::chrono::steady_clock::duration>
finite(std::optional<std::chrono::steady_clock::duration> timeout) noexcept {
  if (timeout && *timeout >= forever)
    return std::nullopt;
  return timeout;
}

/// `d`, at most `forever`: for a wait that needs a bound (a timer, CAF's
/// request), which then never ends in practice. Compared in `d`'s own unit,
/// so a `max()` of a coarser one does not overflow either.
template <class Rep, class Period>
std::chrono::duration<Rep, Period>
at_most_forever(std::chrono::duration<Rep, Period> d) noexcept {
  using unit = std::chrono::duration<Rep, Period>;
  auto cap = std::chrono::duration_cast<unit>(forever);
  return d < cap ? d : cap;
}

} // namespace actors::detail
