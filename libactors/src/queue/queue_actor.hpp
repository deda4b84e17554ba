#pragma once

// The queue's actor: its identity in handles, and what needs CAF. Its
// messages (a protocol between the processes of a run):
//   (q_poll, id, timeout_ns)  -> ok(id, bool ready)   for wait_any
//   (q_attach, role, service, flight, sender) -> ok
//                             the process of `service` holds the end that
//                             reads or writes this queue; with a flight
//                             (not 0), it received it from `sender`
//   (q_depart, role, flight, sender)
//                             the process of `sender` handed the end over:
//                             it holds it until the receiver's attach
//   (q_lost, role, flight, sender)
//                             the process `sender` handed the end to ended
//                             before it held it: the flight is over (the
//                             receiver's late attach, if any, is undone by
//                             its death as a holder's)
//   (q_detach, id, role, service) ... no longer (-> ok(id)); when the last
//                             reader or the last writer is gone (detached,
//                             or dead and everything it sent read) and
//                             none is on its way, the queue closes
// and the messages of actors that subscribe to the queue or put into it
// without blocking (q_sub, q_ack, q_unsub, q_put: actors/mailbox.hpp).
// Attach, depart and detach go through the actor so that they stay in the
// order they were sent in, from each process. A receiver's attach may
// overtake its sender's depart (they come from two processes): the core
// matches them in either order.

#include <memory>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>

#include "queue/queue_core.hpp"

namespace actors::detail {

using q_poll = caf::atom_constant<caf::atom("q_poll")>;
using q_expire = caf::atom_constant<caf::atom("q_expire")>;
using q_attach = caf::atom_constant<caf::atom("q_attach")>;
using q_depart = caf::atom_constant<caf::atom("q_depart")>;
using q_detach = caf::atom_constant<caf::atom("q_detach")>;
using q_lost = caf::atom_constant<caf::atom("q_lost")>;
using q_gone = caf::atom_constant<caf::atom("q_gone")>;
using ok_atom = caf::ok_atom;

/// The name of every queue's actor (caf::scheduled_actor::name()).
inline constexpr const char* queue_actor_name = "actors.queue";

/// Spawns the actor of the queue whose state is `core`.
caf::actor spawn_queue_actor(caf::actor_system& sys,
                             std::shared_ptr<queue_core> core);

} // namespace actors::detail
