#pragma once

// The guardian of an actor process, in the spawning process: a local actor
// that forwards every message to the actor (CAF delegation, so the actor
// answers the original sender directly) and that ends exactly when the
// actor ends, with an exit reason that says why. It learns of the actor
// from two sources: the actor's down message over BASP, and the process's
// exit status from the runtime's reaper. A down message saying the link is
// gone is only a symptom; the exit status names the cause.
//
//   child  -> guardian  ready(actor, checker) | failed(what)  once, at start
//   reaper -> guardian  exited(code)                 when the process ended
//   spawner -> guardian ready                        answered once it runs
//   guardian: down(actor)     normal/error: ends with that reason
//                             link lost: waits for exited (lost_grace)
//             exit_msg        forwarded to the actor; killed if overdue
//
//   spawn_guardian(sys, slot)  the guardian of the actor process of `slot`

#include <atomic>
#include <csignal>
#include <memory>
#include <mutex>
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/exit_reason.hpp>
#include <caf/message.hpp>

#include "actors/actor_process.hpp"
#include "actors/process.hpp"

#include "node/runtime.hpp"
#include "process/children.hpp"

namespace actors::detail {

using ready_atom = caf::atom_constant<caf::atom("a_ready")>;
using failed_atom = caf::atom_constant<caf::atom("a_failed")>;
using exited_atom = caf::atom_constant<caf::atom("a_exited")>;
using checker_atom = caf::atom_constant<caf::atom("a_checker")>;

// What the guardian and the handles share; the guardian holds it, handles
// hold the guardian.
struct actor_slot {
  std::string name;
  actor_options opts;
  std::atomic<bool> settled{false}; // the guardian ends because the actor did
  std::mutex mtx;
  std::shared_ptr<child> proc; // set once the process exists
  std::string failure; // why the actor never ran, for the spawner
  caf::actor actor;    // the actor (a proxy on the link), once it runs

  std::shared_ptr<child> process() {
    std::lock_guard<std::mutex> guard{mtx};
    return proc;
  }

  void kill() {
    if (auto p = process())
      p->signal(SIGKILL);
  }

  /// Kills the process, saying why in its end's reason.
  void kill(const std::string& why) {
    if (auto p = process())
      p->kill_because(why);
  }
};

/// Takes an exit message to the actor of an actor process (its proxy) that
/// does not come from its guardian, and hands it to the guardian: the
/// guardian stops the actor and kills its process if it does not stop in
/// time. The links' exit hook (runtime::on_exit_to_proxy).
bool exit_to_guardian(const caf::strong_actor_ptr& target,
                      const caf::strong_actor_ptr& sender,
                      const caf::exit_msg& x);

/// True for the actor of a running actor process of this process: links to
/// it stay here (its guardian passes exits on; its process ends with this
/// one).
bool has_guardian(const caf::actor_addr& actor);

/// Spawns the guardian of the actor process of `slot`.
caf::actor spawn_guardian(caf::actor_system& sys,
                          std::shared_ptr<actor_slot> slot);

/// Whether `err` is the exit reason `reason`.
bool is_exit(const caf::error& err, caf::exit_reason reason);

/// The names of the types in `msg` that cannot cross a process boundary
/// (empty: all can).
std::string unregistered(caf::actor_system& sys, const caf::message& msg);

} // namespace actors::detail
