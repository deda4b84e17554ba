#include "node/service_actor.hpp"

#include <unistd.h>

#include "actors/error.hpp"
#include "base/error.hpp"
#include "node/messages.hpp"
#include "node/process_role.hpp"
#include "node/runtime.hpp"

namespace actors::detail {

caf::behavior service_actor(caf::stateful_actor<service_state>* self,
                            runtime* rt) {
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& names = self->state.names;
    for (auto i = names.begin(); i != names.end();)
      i = i->second.address() == dm.source ? names.erase(i) : std::next(i);
  });
  auto& role = process_role::local();
  return {
    [=, &role](name_atom, std::string& name, caf::actor& who,
               bool replace) -> caf::result<bool> {
      if (role.parent) {
        auto rp = self->make_response_promise();
        rp.delegate(role.parent, name_atom::value, std::move(name),
                    std::move(who), replace);
        return rp;
      }
      auto& entry = self->state.names[name];
      if (entry && entry != who && !replace)
        return actors::make_error(errc::name_taken,
                                  "the name " + name
                                    + " belongs to a living actor");
      entry = std::move(who);
      self->monitor(entry);
      return true;
    },
    [=, &role](whereis_atom, std::string& name) -> caf::result<caf::actor> {
      if (role.parent) {
        auto rp = self->make_response_promise();
        rp.delegate(role.parent, whereis_atom::value, std::move(name));
        return rp;
      }
      auto i = self->state.names.find(name);
      return i == self->state.names.end() ? caf::actor{} : i->second;
    },
    [=](task_atom, std::uint64_t token, closure& target, std::string& name) {
      self->state.tasks.emplace(token,
                                std::make_pair(std::move(target),
                                               std::move(name)));
    },
    [=](hello_atom,
        std::uint64_t token) -> caf::result<closure, std::string> {
      auto i = self->state.tasks.find(token);
      if (i == self->state.tasks.end())
        return caf::make_error(caf::sec::invalid_argument,
                               "no task for this child");
      auto task = std::move(i->second);
      self->state.tasks.erase(i);
      return {std::move(task.first), std::move(task.second)};
    },
    [=](forget_atom, std::uint64_t token) { self->state.tasks.erase(token); },
    [=](started_atom, std::uint64_t token) { rt->child_started(token); },
    [=](bye_atom) {
      // The answer itself is the point: see runtime::finish().
    },
    [=](ping_atom) { return caf::make_message(pong_atom::value, getpid()); },
    [=](ended_atom, std::int32_t pid) -> caf::result<bool, caf::error> {
      // How a relative of the asker ended (runtime::how_ended): waiting for
      // the reaper takes a moment, on a thread of its own.
      caf::actor helper;
      try {
        helper = self->spawn<caf::detached + caf::hidden>(
          [rt](caf::event_based_actor* h) -> caf::behavior {
            return {[=](ended_atom, std::int32_t who) {
              h->quit();
              auto err = rt->how_ended(static_cast<pid_t>(who), false);
              bool known = static_cast<bool>(err);
              return caf::make_message(known, std::move(err));
            }};
          });
      } catch (const std::system_error&) {
        return {false, caf::error{}};
      }
      auto rp = self->make_response_promise();
      rp.delegate(helper, ended_atom::value, pid);
      return rp;
    },
  };
}

} // namespace actors::detail
