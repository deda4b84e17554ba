#pragma once

// What the wire needs of this process's node, declared here and defined by
// node/ (runtime.cpp): payloads that hold actor handles are serialized in an
// actor system, and handles of other processes' actors need its proxies.

namespace caf {
class actor_system;
class proxy_registry;
} // namespace caf

namespace actors::detail::node_context {

/// Whether this process's actor system runs (a child may not have one yet).
bool started() noexcept;

/// This process's actor system, started on first use.
caf::actor_system& system();

/// The registry of proxies for actors of other processes.
caf::proxy_registry* proxies();

} // namespace actors::detail::node_context
