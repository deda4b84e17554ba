#pragma once

// A user type whose serialization fails at run time: `picky{x}` with a
// negative `x` cannot be written (its inspect says so), as a type with a
// checking inspect might refuse some of its values.

#include <caf/sec.hpp>

namespace support {

struct picky {
  int x = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, picky& p) {
  if constexpr (Inspector::writes_state) {
    return f(p.x);
  } else {
    if (p.x < 0)
      return caf::sec::state_not_serializable;
    return f(p.x);
  }
}

} // namespace support
