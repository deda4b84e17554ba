#pragma once

// Whether a value or a call can reach another process. CAF's BASP drops a
// message it cannot serialize, silently: a request carrying one would never
// be answered. So values are checked where they enter, and a bad one is an
// error for its caller.

#include <caf/error.hpp>

#include "actors/detail/closure.hpp"
#include "actors/detail/value.hpp"

namespace actors::detail {

/// The error serializing `x` gives (none if it serializes), found without
/// writing a byte.
caf::error serializable(value& x);
caf::error serializable(closure& x);

} // namespace actors::detail
