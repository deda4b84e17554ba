#pragma once

// The errc an expression throws, for checking error categories in tests.

#include "actors/error.hpp"

namespace support {

/// Runs `fn`; returns the `actors::errc` of the `actors::error` it threw, or
/// a value-initialized errc (no error) if it threw none.
template <class F>
actors::errc code_of(F fn) {
  try {
    fn();
  } catch (const actors::error& e) {
    return static_cast<actors::errc>(e.code().value());
  }
  return actors::errc{};
}

} // namespace support
