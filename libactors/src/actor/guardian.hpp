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
//   pool -> guardian   exited(code) | gone(why)      a hosted actor's task
//                                                    ended (or was lost)
//   guardian: down(actor)     normal/error: ends with that reason
//                             link lost: waits for exited (lost_grace)
//             exit_msg        forwarded to the actor; killed if overdue
//
//   spawn_guardian(sys, slot)  the guardian of the actor process of `slot`

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <optional>
#include <csignal>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/exit_reason.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>

#include "actors/actor_process.hpp"
#include "actors/process.hpp"
#include "actors/detail/pool_core.hpp"

#include "node/runtime.hpp"
#include "process/children.hpp"

namespace actors::detail {

using ready_atom = caf::atom_constant<caf::atom("a_ready")>;
using failed_atom = caf::atom_constant<caf::atom("a_failed")>;
using exited_atom = caf::atom_constant<caf::atom("a_exited")>;
using checker_atom = caf::atom_constant<caf::atom("a_checker")>;
using gone_atom = caf::atom_constant<caf::atom("a_gone")>;

// What the guardian and the handles share; the guardian holds it, handles
// hold the guardian. The actor runs in a child process of this host
// (`proc`), or as a task on a worker process of another host (`hosts`,
// actor_options::hosts): then the task's outcome tells its end.
struct actor_slot {
  std::string name;
  actor_options opts;
  std::atomic<bool> settled{false}; // the guardian ends because the actor did
  std::mutex mtx;
  std::condition_variable ended; // hosted: `code` was set
  std::shared_ptr<child> proc; // set once the process exists
  std::shared_ptr<pool_core> hosts; // or the pool whose host runs it ...
  std::uint64_t task = 0;           // ... as this task ...
  std::string where;                // ... on "PID on HOST"
  std::optional<int> code;          // hosted: 0, 1 (failed), -9 (killed, lost)
  std::atomic<bool> killed{false};  // hosted: kill() cancelled its task
  std::string failure; // why the actor never ran, for the spawner
  caf::actor actor;    // the actor (a proxy on the link), once it runs

  std::shared_ptr<child> process() {
    std::lock_guard<std::mutex> guard{mtx};
    return proc;
  }

  /// A hosted actor's pool and task; a null pool for a process here.
  std::pair<std::shared_ptr<pool_core>, std::uint64_t> hosted_task() {
    std::lock_guard<std::mutex> guard{mtx};
    return {hosts, task};
  }

  bool hosted() {
    return hosted_task().first != nullptr;
  }

  /// "actor process 42 (name)", "actor process 42 on east (name)".
  std::string label();

  pid_t pid();
  bool wait(std::optional<std::chrono::steady_clock::duration> timeout);
  std::optional<int> exitcode();

  /// Kills the process (a hosted actor: its task is cancelled, which ends
  /// its worker process).
  void kill();

  /// Kills the process, saying why in its end's reason.
  void kill(const std::string& why);

  /// A hosted actor's link broke: its worker process is stopped and its
  /// host avoided by the next placements (kill() otherwise).
  void kill_lost();
};

/// The sink of a hosted actor's task: records its end in the slot and tells
/// the guardian (exited(code), or gone(why) when it was lost).
std::shared_ptr<result_sink> hosted_end(std::shared_ptr<actor_slot> slot,
                                        const caf::actor& guardian);

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

/// A request to an actor on another host, forwarded by its guardian under
/// an id of the guardian's: who asked, under which id, and the stages left.
struct relayed_request {
  caf::strong_actor_ptr sender;
  caf::message_id mid;
  caf::mailbox_element::forwarding_stack stages;
};

/// The requests a guardian forwarded, by the forwarding id.
struct relayed_requests {
  std::mutex mtx;
  std::map<std::uint64_t, relayed_request> of;

  /// Removes and returns the request forwarded as `id`, if there is one.
  std::optional<relayed_request> take(caf::message_id id);
};

/// Spawns a reply checker of `actor`'s answers (actor_process.cpp): a
/// stage of each request to it, which passes an answer on to the next
/// stage or to the requester, as the actor's answer, or fails the request
/// with errc::not_registered when the answer cannot cross. In an actor
/// process it is the answers' first stage. With `relayed`, it is the last
/// stage of the answers of an actor on another host, in the guardian's
/// process: it passes each answer on to the request that the guardian
/// forwarded under the answer's id (an actor's host may not reach every
/// requester; this process does).
caf::actor spawn_reply_checker(caf::actor_system& sys,
                               const caf::actor_addr& actor,
                               std::shared_ptr<relayed_requests> relayed
                               = nullptr);

/// Spawns the guardian of the actor process of `slot`.
caf::actor spawn_guardian(caf::actor_system& sys,
                          std::shared_ptr<actor_slot> slot);

/// Whether `err` is the exit reason `reason`.
bool is_exit(const caf::error& err, caf::exit_reason reason);

/// The names of the types in `msg` that cannot cross a process boundary
/// (empty: all can).
std::string unregistered(caf::actor_system& sys, const caf::message& msg);

} // namespace actors::detail
