#pragma once

// libactors' errors in CAF's form, for the code below the public API (users
// see the same two functions in actors/actor_process.hpp): an `errc` and a
// text in a `caf::error` of category "actors", as exit reasons and failed
// requests carry them between processes.

#include <optional>
#include <string>

#include <caf/error.hpp>

#include "actors/error.hpp"

namespace actors {

/// A `caf::error` of category "actors" with `code` and the text `what`.
caf::error make_error(errc code, std::string what);

/// The `errc` of a CAF error made by `make_error`; empty for any other.
std::optional<errc> errc_of(const caf::error& err);

} // namespace actors
