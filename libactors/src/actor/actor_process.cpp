// User actors in their own OS processes: starting one (its guardian is in
// actor/guardian.hpp), the child's side that runs the actor, and names.
//
// A request reaches the actor with the child's reply checker as the next
// stage of its forwarding stack: the actor's answer goes there first, in
// the child, where a type that cannot cross is found before BASP would
// drop the answer (CAF 0.17 drops, silently for the requester); the
// checker then answers the requester as the actor, or with
// errc::not_registered naming the type. (An actor on another host has a
// second checker, in its guardian's process, as the stage after it.)

#include "actors/actor_process.hpp"

#include "actor/guardian.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <unistd.h>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/detail/timeout.hpp"
#include "actors/pool.hpp"
#include "actors/process.hpp"

#include "base/exception_text.hpp"
#include "node/runtime.hpp"
#include "process/children.hpp"

namespace actors {

std::string describe(const caf::error& err) {
  if (!err)
    return "normal";
  return detail::runtime::get().system().render(err);
}

namespace detail {

struct actor_host {
  caf::actor guardian;
  std::shared_ptr<actor_slot> slot;
};

const caf::actor& guardian_of(const actor_host& host) {
  return host.guardian;
}

caf::actor actor_of(const actor_host& host) {
  // An actor on another host is reached through its guardian, here: every
  // process of the run reaches this one (not always the actor's host), and
  // the guardian ends with the reason of the actor's end (a proxy over
  // BASP would end with the link's).
  if (host.slot->hosted())
    return host.guardian;
  std::lock_guard<std::mutex> guard{host.slot->mtx};
  return host.slot->actor;
}

const std::string& name_of(const actor_host& host) {
  return host.slot->name;
}

pid_t pid_of(const actor_host& host) {
  return host.slot->pid();
}

bool join(const actor_host& host,
          std::optional<std::chrono::steady_clock::duration> timeout) {
  return host.slot->wait(timeout);
}

std::optional<int> exitcode_of(const actor_host& host) {
  return host.slot->exitcode();
}

void kill(const actor_host& host) {
  host.slot->kill();
}

namespace {

// The answers of an actor to requests, on their way back (guardian.hpp's
// spawn_reply_checker). An answer that can cross goes on as the actor's
// own (`actor` its sender); one that cannot fails the request with
// errc::not_registered.
caf::behavior reply_checker(caf::event_based_actor* self,
                            caf::actor_addr actor,
                            std::shared_ptr<relayed_requests> relayed) {
  // On to the next stage, or back to the requester, as the actor's answer
  // (what caf::response_promise::deliver does).
  auto pass_on = [=](caf::message msg) {
    auto* e = self->current_mailbox_element();
    relayed_request r;
    if (!relayed) {
      r = {std::move(e->sender), e->mid, std::move(e->stages)};
    } else if (auto x = relayed->take(e->mid)) {
      r = std::move(*x); // the request its guardian forwarded
    } else {
      return;
    }
    if (!r.stages.empty()) {
      auto next = std::move(r.stages.back());
      r.stages.pop_back();
      next->enqueue(caf::make_mailbox_element(std::move(r.sender), r.mid,
                                              std::move(r.stages),
                                              std::move(msg)),
                    self->context());
    } else if (r.sender) {
      r.sender->enqueue(
        caf::make_mailbox_element(caf::actor_cast<caf::strong_actor_ptr>(
                                    actor),
                                  r.mid.response_id(), {}, std::move(msg)),
        self->context());
    }
  };
  // An answer that is one error, down or exit message is a system message
  // to CAF: given to these handlers, not the default handler.
  self->set_error_handler(
    [=](caf::error& x) { pass_on(caf::make_message(std::move(x))); });
  self->set_down_handler(
    [=](caf::down_msg& x) { pass_on(caf::make_message(std::move(x))); });
  self->set_exit_handler(
    [=](caf::exit_msg& x) { pass_on(caf::make_message(std::move(x))); });
  self->set_default_handler(
    [=](caf::scheduled_actor*,
        caf::message_view& x) -> caf::result<caf::message> {
      auto msg = x.move_content_to_message();
      auto missing = unregistered(self->system(), msg);
      if (missing.empty()) {
        pass_on(std::move(msg));
        return caf::delegated<caf::message>{};
      }
      auto text = "the answer of actor process " + std::to_string(::getpid())
                  + " (" + current_process_name() + ") holds " + missing
                  + ", not registered: add it to actors::message_types in "
                    "actors::init";
      if (self->current_mailbox_element()->mid.is_async()) {
        std::fprintf(stderr, "libactors: dropped %s\n", text.c_str());
        return caf::message{};
      }
      return make_error(errc::not_registered, std::move(text));
    });
  // Never sent: every answer is for the handlers.
  return {[](checker_atom) {}};
}

} // namespace

caf::actor spawn_reply_checker(caf::actor_system& sys,
                               const caf::actor_addr& actor,
                               std::shared_ptr<relayed_requests> relayed) {
  // Hidden: the actor system does not wait for it at exit.
  return sys.spawn<caf::hidden>(reply_checker, actor, std::move(relayed));
}

std::shared_ptr<actor_host>
start_actor_process(const std::function<closure(const caf::actor&)>& target,
                    const actor_options& opts) {
  if (!runtime::initialized())
    throw error(errc::not_initialized,
                "call actors::init(argc, argv) as the first statement of main "
                "before spawning an actor process");
  if (opts.start_timeout <= std::chrono::steady_clock::duration::zero()
      || opts.stop_timeout <= std::chrono::steady_clock::duration::zero())
    throw error(errc::invalid_argument,
                "an actor process's start and stop timeouts must be positive");
  static std::atomic<int> counter{0};
  auto slot = std::make_shared<actor_slot>();
  slot->opts = opts;
  slot->name = opts.name.empty() ? "Actor-" + std::to_string(++counter)
                                 : opts.name;
  auto& rt = runtime::get();
  static std::once_flag hooked;
  std::call_once(hooked,
                 [&rt] { rt.on_exit_to_proxy(exit_to_guardian, has_guardian); });
  auto host = std::make_shared<actor_host>();
  host->slot = slot;
  host->guardian = spawn_guardian(rt.system(), slot);
  auto abandon = [&] {
    slot->settled = true;
    slot->kill();
    caf::anon_send_exit(host->guardian, caf::exit_reason::kill);
  };
  if (opts.hosts != nullptr) {
    // On a worker process of another host, as a task of the pool.
    const auto& pool = core_of(*opts.hosts);
    std::string where;
    std::uint64_t task = 0;
    try {
      // Sent later, by the pool's feeder: the pipe ends among its
      // arguments are handed over now, as for a task.
      auto call = target(host->guardian);
      hand_over(call);
      task = pool->host_actor(opts.host, std::move(call),
                              hosted_end(slot, host->guardian), where);
    } catch (const error& e) {
      abandon();
      throw error(errc::spawn_failed, "cannot start actor process ("
                                        + slot->name + ") on another host: "
                                        + e.what());
    }
    std::lock_guard<std::mutex> guard{slot->mtx};
    slot->hosts = pool;
    slot->task = task;
    slot->where = std::move(where);
  } else {
    std::shared_ptr<child> proc;
    try {
      // A daemon: its actor may run forever, so this program stops it at
      // exit.
      proc = children::local().spawn(target(host->guardian), slot->name, true,
                                     nullptr, child_kind::actor_process);
    } catch (...) {
      abandon();
      throw;
    }
    {
      std::lock_guard<std::mutex> guard{slot->mtx};
      slot->proc = proc;
    }
    auto weak = caf::actor_cast<caf::weak_actor_ptr>(host->guardian);
    proc->on_exit([weak](int code) {
      if (auto strong = weak.lock())
        caf::anon_send(caf::actor_cast<caf::actor>(strong),
                       exited_atom::value, code);
    });
  }
  caf::scoped_actor self{rt.system()};
  std::string failure;
  self->request(host->guardian, detail::at_most_forever(opts.start_timeout),
                ready_atom::value)
    .receive([](bool) {},
             [&](caf::error& err) {
               std::lock_guard<std::mutex> guard{slot->mtx};
               failure = !slot->failure.empty() ? slot->failure
                         : errc_of(err) == errc::spawn_failed
                           ? err.context().get_as<std::string>(0)
                           : "actor process (" + slot->name
                               + ") did not run its actor within its start "
                                 "timeout: "
                               + rt.system().render(err);
             });
  if (!failure.empty()) {
    abandon();
    throw error(errc::spawn_failed, failure);
  }
  return host;
}

caf::error on_actor_exception(caf::scheduled_actor*, std::exception_ptr& x) {
  std::string text;
  try {
    std::rethrow_exception(x);
  } catch (...) {
    text = current_exception_text();
  }
  std::fprintf(stderr, "Process %s: uncaught %s\n",
               current_process_name().c_str(), text.c_str());
  return make_error(errc::actor_failed, std::move(text));
}

void guard_exceptions(caf::scheduled_actor::exception_handler& handler) {
  using plain = caf::error (*)(caf::scheduled_actor*, std::exception_ptr&);
  auto* fn = handler.target<plain>();
  if (fn != nullptr && *fn == &caf::scheduled_actor::default_exception_handler)
    handler = on_actor_exception;
}

void serve_actor(const caf::actor& guardian,
                 const std::function<caf::actor(caf::actor_system&)>& make) {
  auto& sys = runtime::get().system();
  // On a worker process of another host (actor_options::hosts) the actor
  // is a task: its end ends the task, not the process.
  auto hosted = runtime::owner_elsewhere() != nullptr;
  caf::actor actor;
  try {
    actor = make(sys);
  } catch (...) {
    auto text = current_exception_text();
    std::fprintf(stderr, "Process %s: the actor did not start: %s\n",
                 current_process_name().c_str(), text.c_str());
    caf::anon_send(guardian, failed_atom::value, text);
    if (hosted)
      throw error(errc::actor_failed, "the actor did not start: " + text);
    std::exit(1);
  }
  auto checker = spawn_reply_checker(sys, actor.address());
  caf::scoped_actor self{sys};
  self->monitor(actor);
  caf::anon_send(guardian, ready_atom::value, actor, checker);
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = std::move(dm.reason); });
  caf::anon_send_exit(checker, caf::exit_reason::kill);
  if (!reason || is_exit(reason, caf::exit_reason::user_shutdown))
    return;
  auto text = sys.render(reason);
  if (errc_of(reason) != errc::actor_failed) // printed by the handler
    std::fprintf(stderr, "Process %s: the actor ended: %s\n",
                 current_process_name().c_str(), text.c_str());
  if (hosted) // its task fails; its worker serves on
    throw error(errc::actor_failed, "the actor ended: " + text);
  std::exit(1);
}

void register_name(const std::string& name, const caf::actor& who,
                   bool replace) {
  if (name.empty() || !who)
    throw error(errc::invalid_argument,
                "register_name needs a name and a valid actor handle");
  auto& rt = runtime::get();
  caf::scoped_actor self{rt.system()};
  caf::error failure;
  self
    ->request(rt.service_actor(), std::chrono::seconds{5}, name_atom::value, name, who,
              replace)
    .receive([](bool) {}, [&](caf::error& err) { failure = std::move(err); });
  if (!failure)
    return;
  if (errc_of(failure) == errc::name_taken)
    throw error(errc::name_taken, "cannot register " + name
                                    + ": a living actor holds the name");
  throw error(errc::timeout, "cannot register " + name + ": "
                               + rt.system().render(failure));
}

} // namespace detail

void register_name(const std::string& name, const caf::actor& who) {
  detail::register_name(name, who, false);
}

caf::actor whereis(const std::string& name) {
  auto& rt = detail::runtime::get();
  caf::scoped_actor self{rt.system()};
  caf::actor result;
  caf::error failure;
  self
    ->request(rt.service_actor(), std::chrono::seconds{5}, detail::whereis_atom::value,
              name)
    .receive([&](caf::actor& found) { result = std::move(found); },
             [&](caf::error& err) { failure = std::move(err); });
  if (failure)
    throw error(errc::timeout, "cannot look up " + name + ": "
                                 + rt.system().render(failure));
  return result;
}

} // namespace actors
