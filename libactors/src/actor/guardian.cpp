// The guardian of an actor process: actor/guardian.hpp.

#include "actor/guardian.hpp"

#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include <caf/stateful_actor.hpp>

#include "actors/detail/timeout.hpp"
#include "base/exception_text.hpp"
#include "node/runtime.hpp"
#include "process/supervision.hpp"

namespace actors::detail {

namespace {

// The guardian of each running actor process, by its actor (a proxy).
struct guardians {
  std::mutex mtx;
  std::map<caf::actor_addr, caf::weak_actor_ptr> of;

  static guardians& get() {
    static auto* table = new guardians; // read until the process ends
    return *table;
  }
};

using lost_atom = caf::atom_constant<caf::atom("a_lost")>;
using overdue_atom = caf::atom_constant<caf::atom("a_overdue")>;

// How long a guardian waits for the exit status of a process whose link
// broke before it concludes that the process lives on without a link.
constexpr auto lost_grace = std::chrono::seconds{2};

struct guardian_state {
  caf::actor actor; // the actor, once it runs
  caf::actor checker; // the reply checker in its process
  // An actor on another host: the reply checker here that relays its
  // answers (spawn_reply_checker) and the requests not answered yet.
  caf::actor relay;
  std::shared_ptr<relayed_requests> relayed;
  std::vector<caf::response_promise> waiting; // spawners waiting for it
  caf::error failure;                         // why it never ran
  std::optional<int> exitcode;                // of the process
  bool link_lost = false;
  bool stopping = false; // an exit message was forwarded
  static constexpr const char* name = "actors.guardian";
};

caf::behavior guardian(caf::stateful_actor<guardian_state>* self,
                       std::shared_ptr<actor_slot> slot) {
  auto what = [slot] { return slot->label(); };
  // Ends with `reason`: the actor and its process are done.
  auto settle = [=](caf::error reason) {
    slot->settled = true;
    if (self->state.actor) {
      auto& table = guardians::get();
      std::lock_guard<std::mutex> guard{table.mtx};
      table.of.erase(self->state.actor.address());
    }
    if (self->state.failure) {
      // The spawner may ask only after the guardian ended.
      std::lock_guard<std::mutex> guard{slot->mtx};
      slot->failure = self->state.failure.context().get_as<std::string>(0);
    }
    for (auto& rp : self->state.waiting)
      rp.deliver(self->state.failure ? self->state.failure : reason);
    self->state.waiting.clear();
    self->quit(std::move(reason));
  };
  auto died = [=] {
    auto text = what() + " " + describe_exit(self->state.exitcode);
    if (self->state.stopping && self->state.exitcode == -SIGKILL)
      text += " (it did not stop within its stop timeout)";
    return make_error(errc::process_died, std::move(text));
  };
  // The process ends unless it stops within its stop timeout.
  auto stop = [=](caf::error reason) {
    if (!self->state.actor) {
      slot->kill();
      return settle(std::move(reason));
    }
    self->send_exit(self->state.actor, std::move(reason));
    if (!self->state.stopping) {
      self->state.stopping = true;
      self->delayed_send(self, at_most_forever(slot->opts.stop_timeout),
                         overdue_atom::value);
    }
  };
  // Killed (exit_reason::kill) or failed otherwise: the process must not
  // outlive it.
  self->attach_functor([slot](const caf::error&) {
    if (!slot->settled)
      slot->kill();
  });
  self->set_down_handler([=](caf::down_msg& dm) {
    if (dm.source != self->state.actor.address())
      return;
    // The link's end (the process died, or the link broke): the exit
    // status from the reaper decides, with this actor process's name.
    if (!is_exit(dm.reason, caf::exit_reason::remote_link_unreachable)
        && errc_of(dm.reason) != errc::process_died)
      return settle(std::move(dm.reason));
    self->state.link_lost = true;
    if (self->state.exitcode)
      return settle(died());
    if (slot->hosted() && slot->killed) {
      // Killed here: the link broke because its worker was stopped.
      self->state.exitcode = -SIGKILL;
      return settle(died());
    }
    if (slot->hosted()) {
      // No exit status comes from another host: the link decides.
      slot->kill_lost();
      return settle(make_error(errc::connection_lost,
                               "lost the connection to " + what()
                                 + " (its host or the link to it is down); "
                                   "its worker process was stopped"));
    }
    self->delayed_send(self, lost_grace, lost_atom::value);
  });
  self->set_exit_handler([=](caf::exit_msg& em) {
    if (em.reason) // a linked actor ending normally ends nothing
      stop(std::move(em.reason));
  });
  // Everything else is for the actor.
  self->set_default_handler(
    [=](caf::scheduled_actor*,
        caf::message_view& x) -> caf::result<caf::message> {
      auto msg = x.move_content_to_message();
      if (!self->state.actor)
        return make_error(errc::invalid_argument,
                          what() + " is not running");
      auto missing = unregistered(self->system(), msg);
      if (!missing.empty()) {
        auto text = "a message to " + what() + " holds " + missing
                    + ", not registered: add it to actors::message_types in "
                      "actors::init";
        if (self->current_mailbox_element()->mid.is_async())
          std::fprintf(stderr, "libactors: dropped %s\n", text.c_str());
        return make_error(errc::not_registered, std::move(text));
      }
      auto* e = self->current_mailbox_element();
      if (e->mid.is_request() && self->state.relay) {
        // Forwarded under an id of ours; the answer goes from the reply
        // checker to the relay, which passes it on to the requester.
        auto id = self->new_request_id(caf::message_priority::normal);
        {
          std::lock_guard<std::mutex> guard{self->state.relayed->mtx};
          self->state.relayed->of.emplace(
            id.integer_value(),
            relayed_request{std::move(e->sender), e->mid,
                            std::move(e->stages)});
        }
        caf::mailbox_element::forwarding_stack stages{
          caf::actor_cast<caf::strong_actor_ptr>(self->state.relay),
          caf::actor_cast<caf::strong_actor_ptr>(self->state.checker)};
        self->state.actor->enqueue(
          caf::make_mailbox_element(self->ctrl(), id, std::move(stages),
                                    std::move(msg)),
          self->context());
        return caf::delegated<caf::message>{};
      }
      if (e->mid.is_request() && self->state.checker) {
        // Delegated, with the reply checker as the answer's next stage.
        auto stages = std::move(e->stages);
        stages.emplace_back(
          caf::actor_cast<caf::strong_actor_ptr>(self->state.checker));
        self->state.actor->enqueue(
          caf::make_mailbox_element(std::move(e->sender), e->mid,
                                    std::move(stages), std::move(msg)),
          self->context());
        return caf::delegated<caf::message>{};
      }
      auto rp = self->make_response_promise();
      rp.delegate(self->state.actor, std::move(msg));
      return rp;
    });
  return {
    [=](ready_atom) -> caf::result<bool> {
      if (self->state.actor)
        return true;
      if (self->state.failure)
        return self->state.failure;
      auto rp = self->make_response_promise();
      self->state.waiting.push_back(rp);
      return rp;
    },
    [=](ready_atom, caf::actor& actor, caf::actor& checker) {
      {
        std::lock_guard<std::mutex> guard{slot->mtx};
        slot->actor = actor;
      }
      {
        auto& table = guardians::get();
        std::lock_guard<std::mutex> guard{table.mtx};
        table.of[actor.address()]
          = caf::actor_cast<caf::weak_actor_ptr>(self->ctrl());
      }
      self->state.actor = std::move(actor);
      self->state.checker = std::move(checker);
      if (slot->hosted()) {
        auto table = std::make_shared<relayed_requests>();
        self->state.relayed = table;
        self->state.relay = spawn_reply_checker(
          self->system(), self->state.actor.address(), table);
        // When the guardian ends, the requests not answered fail with its
        // reason (as those to an actor process here that died).
        self->attach_functor([=, relay = self->state.relay](
                               const caf::error& reason) {
          caf::anon_send_exit(relay, caf::exit_reason::kill);
          std::map<std::uint64_t, relayed_request> left;
          {
            std::lock_guard<std::mutex> guard{table->mtx};
            left.swap(table->of);
          }
          auto why = reason ? reason
                            : make_error(errc::process_died,
                                         slot->label()
                                           + " ended before it answered");
          for (auto& [id, r] : left)
            if (r.sender)
              r.sender->enqueue(caf::make_mailbox_element(
                                  nullptr, r.mid.response_id(), {},
                                  caf::make_message(why)),
                                nullptr);
        });
      }
      self->monitor(self->state.actor);
      for (auto& rp : self->state.waiting)
        rp.deliver(true);
      self->state.waiting.clear();
    },
    [=](failed_atom, std::string& text) {
      self->state.failure = make_error(errc::spawn_failed,
                                       what() + " could not start its actor: "
                                         + text);
      for (auto& rp : self->state.waiting)
        rp.deliver(self->state.failure);
      self->state.waiting.clear();
    },
    [=](exited_atom, int code) {
      self->state.exitcode = code;
      if (!self->state.actor) {
        if (!self->state.failure)
          self->state.failure = make_error(errc::spawn_failed,
                                           what() + " ended before its actor "
                                                    "ran: "
                                             + describe_exit(code));
        return settle(died());
      }
      if (self->state.link_lost)
        return settle(died());
      // The actor's down message is on its way: it decides, unless the
      // connection to the process is slower to notice the end than this.
      self->delayed_send(self, lost_grace, lost_atom::value);
    },
    [=](gone_atom, std::string& why) {
      // A hosted actor's worker was lost, or its pool ended.
      self->state.exitcode = -SIGKILL;
      if (!self->state.actor && !self->state.failure)
        self->state.failure = make_error(errc::spawn_failed,
                                         what() + " ended before its actor "
                                                  "ran: " + why);
      settle(make_error(errc::connection_lost, "lost " + what() + ": " + why));
    },
    [=](lost_atom) {
      if (self->state.exitcode)
        return settle(died());
      slot->kill();
      settle(make_error(errc::connection_lost,
                        "lost the connection to " + what()
                          + "; the process was killed"));
    },
    [=](overdue_atom) {
      // Still running after an exit message and its stop timeout.
      slot->kill("it did not stop within its stop timeout");
    },
  };
}

// The end of a hosted actor's task (actor_options::hosts).
class hosted_sink final : public result_sink {
public:
  hosted_sink(std::shared_ptr<actor_slot> slot, const caf::actor& guardian)
    : slot_(std::move(slot)),
      guardian_(caf::actor_cast<caf::weak_actor_ptr>(guardian)) {
    // nop
  }

  void deliver(outcome&& x) override {
    // The actor's body returned (0) or threw (1, its down message says
    // why); its task was cancelled (killed); or its worker was lost.
    auto told = x.ok || x.code == errc::task_failed
                || x.code == errc::cancelled;
    auto code = x.ok ? 0 : x.code == errc::task_failed ? 1 : -SIGKILL;
    {
      std::lock_guard<std::mutex> guard{slot_->mtx};
      slot_->code = code;
    }
    slot_->ended.notify_all();
    auto strong = guardian_.lock();
    if (!strong)
      return;
    auto guardian = caf::actor_cast<caf::actor>(strong);
    if (told)
      caf::anon_send(guardian, exited_atom::value, code);
    else
      caf::anon_send(guardian, gone_atom::value, std::move(x.what));
  }

private:
  std::shared_ptr<actor_slot> slot_;
  caf::weak_actor_ptr guardian_;
};

} // namespace

std::optional<relayed_request> relayed_requests::take(caf::message_id id) {
  std::lock_guard<std::mutex> guard{mtx};
  auto i = of.find(id.integer_value());
  if (i == of.end())
    return std::nullopt;
  auto x = std::move(i->second);
  of.erase(i);
  return x;
}

std::string actor_slot::label() {
  std::lock_guard<std::mutex> guard{mtx};
  std::string at;
  if (hosts)
    at = where + " ";
  else if (proc)
    at = std::to_string(proc->pid) + " ";
  return "actor process " + at + "(" + name + ")";
}

pid_t actor_slot::pid() {
  std::lock_guard<std::mutex> guard{mtx};
  if (hosts)
    return static_cast<pid_t>(std::strtol(where.c_str(), nullptr, 10));
  return proc ? proc->pid : 0;
}

bool actor_slot::wait(
  std::optional<std::chrono::steady_clock::duration> timeout) {
  if (auto p = process())
    return p->wait(timeout);
  std::unique_lock<std::mutex> guard{mtx};
  auto done = [this] { return code.has_value(); };
  timeout = finite(timeout);
  if (!timeout) {
    ended.wait(guard, done);
    return true;
  }
  return ended.wait_for(guard, *timeout, done);
}

std::optional<int> actor_slot::exitcode() {
  if (auto p = process())
    return p->exitcode();
  std::lock_guard<std::mutex> guard{mtx};
  return code;
}

void actor_slot::kill() {
  auto [pool, id] = hosted_task();
  if (pool) {
    killed = true;
    pool->cancel(id); // its worker process is stopped
  } else if (auto p = process())
    p->signal(SIGKILL);
}

void actor_slot::kill_lost() {
  auto [pool, id] = hosted_task();
  if (pool)
    pool->cancel_lost(id);
  else
    kill();
}

void actor_slot::kill(const std::string& why) {
  if (auto p = process())
    p->kill_because(why);
  else
    kill();
}

std::shared_ptr<result_sink> hosted_end(std::shared_ptr<actor_slot> slot,
                                        const caf::actor& guardian) {
  return std::make_shared<hosted_sink>(std::move(slot), guardian);
}

bool exit_to_guardian(const caf::strong_actor_ptr& target,
                      const caf::strong_actor_ptr& sender,
                      const caf::exit_msg& x) {
  caf::strong_actor_ptr guardian;
  {
    auto& table = guardians::get();
    std::lock_guard<std::mutex> guard{table.mtx};
    auto i = table.of.find(target->address());
    if (i == table.of.end())
      return false;
    guardian = i->second.lock();
  }
  if (!guardian || guardian == sender)
    return false; // the guardian's own exit message goes to the actor
  guardian->enqueue(sender, caf::make_message_id(), caf::make_message(x),
                    nullptr);
  return true;
}

bool has_guardian(const caf::actor_addr& actor) {
  auto& table = guardians::get();
  std::lock_guard<std::mutex> guard{table.mtx};
  return table.of.count(actor) > 0;
}

bool is_exit(const caf::error& err, caf::exit_reason reason) {
  return err && err.category() == caf::atom("exit")
         && err.code() == static_cast<std::uint8_t>(reason);
}

// The names of the types in `msg` that cannot cross a process boundary.
std::string unregistered(caf::actor_system& sys, const caf::message& msg) {
  std::string missing;
  const auto& types = sys.types();
  for (size_t i = 0; i < msg.size(); ++i) {
    auto type = msg.type(i);
    if (type.first == 0 && type.second != nullptr
        && types.portable_name(type) == types.default_type_name())
      missing += (missing.empty() ? "" : ", ") + demangle(type.second->name());
  }
  return missing;
}

caf::actor spawn_guardian(caf::actor_system& sys,
                          std::shared_ptr<actor_slot> slot) {
  return sys.spawn(guardian, std::move(slot));
}

} // namespace actors::detail
