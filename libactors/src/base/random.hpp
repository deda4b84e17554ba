#pragma once

// Randomness from the kernel (getrandom): keys, nonces and ids that others
// must not guess.

#include <cstddef>

namespace actors::detail {

/// Fills `size` bytes at `data`; throws `errc::invalid_argument` if the
/// kernel has none to give (it blocks until its pool is seeded, at boot).
void fill_random(void* data, std::size_t size);

/// A random value of a trivially copyable type.
template <class T>
T random_value() {
  T x;
  fill_random(&x, sizeof(x));
  return x;
}

} // namespace actors::detail
