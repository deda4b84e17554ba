#pragma once

// The messages of a node's service actor (service_actor.hpp). A child asks
// its parent's for its task (hello, answered with the task and the
// process's name) and says it holds it (started); the spawner queues the
// task (task) or drops it (forget); names are registered (name) and looked
// up (whereis) at the owner; ping/pong tells a node is alive; bye, answered,
// tells a child that what it sent before has arrived.

#include <caf/atom.hpp>

namespace actors::detail {

using hello_atom = caf::atom_constant<caf::atom("a_hello")>;
using bye_atom = caf::atom_constant<caf::atom("a_bye")>;
using task_atom = caf::atom_constant<caf::atom("a_task")>;
using forget_atom = caf::atom_constant<caf::atom("a_forget")>;
using ping_atom = caf::atom_constant<caf::atom("a_ping")>;
using pong_atom = caf::atom_constant<caf::atom("a_pong")>;
using started_atom = caf::atom_constant<caf::atom("a_started")>;
using name_atom = caf::atom_constant<caf::atom("a_name")>;
using whereis_atom = caf::atom_constant<caf::atom("a_whereis")>;
using ended_atom = caf::atom_constant<caf::atom("a_ended")>;

} // namespace actors::detail
