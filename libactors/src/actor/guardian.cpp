// The guardian of an actor process: actor/guardian.hpp.

#include "actor/guardian.hpp"

#include <csignal>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include <caf/stateful_actor.hpp>

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
  std::vector<caf::response_promise> waiting; // spawners waiting for it
  caf::error failure;                         // why it never ran
  std::optional<int> exitcode;                // of the process
  bool link_lost = false;
  bool stopping = false; // an exit message was forwarded
  static constexpr const char* name = "actors.guardian";
};

caf::behavior guardian(caf::stateful_actor<guardian_state>* self,
                       std::shared_ptr<actor_slot> slot) {
  auto what = [slot] {
    std::string pid;
    if (auto p = slot->process())
      pid = std::to_string(p->pid) + " ";
    return "actor process " + pid + "(" + slot->name + ")";
  };
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
      self->delayed_send(self, slot->opts.stop_timeout, overdue_atom::value);
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

} // namespace

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
