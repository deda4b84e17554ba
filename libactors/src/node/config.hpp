#pragma once

// The configuration of this process's actor system: the program's message
// types (add_config_step, before anything starts), libactors' own, the
// middleman, the scheduler. And a check, just before the system starts,
// that it can get the descriptors and threads it will make, as CAF 0.17
// ends the program when it cannot.

#include <memory>

#include <caf/actor_system_config.hpp>

namespace actors::detail {

/// A fresh configuration, with every step the program added.
std::unique_ptr<caf::actor_system_config> make_config();

/// Throws `errc::spawn_failed` unless an actor system made with `cfg` could
/// get its descriptors and threads now.
void check_resources(const caf::actor_system_config& cfg);

} // namespace actors::detail
