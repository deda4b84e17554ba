#pragma once

// The service actor of a node (messages.hpp): hands children their task,
// keeps the run's service names (at the owner; a child's delegates to its
// parent's) and answers pings. It lives exactly as long as its process.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>

#include <caf/actor.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/detail/closure.hpp"

namespace actors::detail {

class runtime;

struct service_state {
  // Tasks queued for children not yet started, by token.
  std::unordered_map<std::uint64_t, std::pair<closure, std::string>> tasks;
  // The run's service names (kept by the owner; children ask their parent).
  std::unordered_map<std::string, caf::actor> names;
  static constexpr const char* name = "actors.service_actor";
};

caf::behavior service_actor(caf::stateful_actor<service_state>* self,
                            runtime* rt);

} // namespace actors::detail
