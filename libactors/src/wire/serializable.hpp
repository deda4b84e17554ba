#pragma once

// Whether a value or a call can reach another process. CAF's BASP drops a
// message it cannot serialize, silently: a request carrying one would never
// be answered. So values are checked where they enter, and a bad one is an
// error for its caller.

#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include "actors/detail/closure.hpp"
#include "actors/detail/value.hpp"

namespace actors::detail {

/// The error serializing `x` gives (none if it serializes), found without
/// writing a byte.
caf::error serializable(value& x);
caf::error serializable(closure& x);

/// Registers the standard containers of builtins (vectors, lists, deques,
/// sets and unordered sets of numbers, strings and atoms, and maps and
/// unordered maps from integers or strings to them) with `cfg`, so that
/// actor messages holding them cross processes unregistered.
void add_builtin_message_types(caf::actor_system_config& cfg);

} // namespace actors::detail
