// The queue's actor (queue_actor.hpp): wait_any's polls, and the holders
// of a pipe's ends, watched until their processes end.

#include "queue/queue_actor.hpp"

#include <map>
#include <set>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "node/runtime.hpp"
#include "queue/queue_hub.hpp"

namespace actors::detail {

namespace {

struct queue_state {
  std::shared_ptr<queue_core> core;
  std::set<caf::actor_addr> watched;
  std::set<caf::actor_addr> holders;
  std::multimap<caf::actor_addr, std::uint64_t> polls; // parked, by caller
  static constexpr const char* name = "actors.queue";
};

using queue_actor_ptr = caf::stateful_actor<queue_state>*;

caf::behavior queue_actor(queue_actor_ptr self,
                          std::shared_ptr<queue_core> core) {
  self->state.core = core;
  // A process has ended (its actor `who` is down): what it waited for is
  // cancelled, and what it held it holds no more.
  auto forget = [self, core](const caf::actor_addr& who) {
    auto& s = self->state;
    s.watched.erase(who);
    auto polls = s.polls.equal_range(who);
    for (auto i = polls.first; i != polls.second; ++i)
      core->cancel(i->second);
    s.polls.erase(polls.first, polls.second);
    if (s.holders.erase(who) > 0) {
      // Its process ended; what it sent before may still be on its way
      // through the hub: read that first, like a pipe's buffer.
      queue_hub::local().when_drained(who.node(), [core, who] {
        core->holder_gone(who);
      });
    }
  };
  auto watch = [self](const caf::actor& who) {
    if (!self->state.watched.insert(who.address()).second)
      return;
    self->monitor(who);
    // CAF tells the death of a process only to those connected to it (or
    // that it tells itself as it ends): on this host, its pid tells the
    // others, as a grandchild's to its grandparent.
    auto me = caf::actor_cast<caf::actor_addr>(self);
    queue_hub::local().when_exited(who.node(), [me, who = who.address()] {
      if (auto hdl = caf::actor_cast<caf::actor>(me))
        caf::anon_send(hdl, q_gone::value, who);
    });
  };
  self->set_down_handler(
    [forget](caf::down_msg& dm) { forget(dm.source); });
  return {
    [=](q_poll, std::uint64_t id, std::int64_t ns) {
      auto who = caf::actor_cast<caf::actor>(self->current_sender());
      auto r = core->poll(ns != 0, [who, id](q_outcome&& x) {
        caf::anon_send(who, ok_atom::value, id, caf::make_message(x.flag));
        return true;
      });
      if (auto* now = std::get_if<q_outcome>(&r)) {
        self->send(who, ok_atom::value, id, caf::make_message(now->flag));
        return;
      }
      auto serial = std::get<std::uint64_t>(r);
      watch(who);
      self->state.polls.emplace(who.address(), serial);
      if (ns > 0)
        self->delayed_send(self, std::chrono::nanoseconds{ns}, q_expire::value,
                           serial);
    },
    [=](q_expire, std::uint64_t serial) { core->expire(serial); },
    [=](q_gone, const caf::actor_addr& who) { forget(who); },
    [=](q_attach, std::uint8_t role, const caf::actor& service,
        std::uint64_t flight, const caf::actor& sender) -> ok_atom {
      auto hold = [&](const caf::actor& who) {
        self->state.holders.insert(who.address());
        watch(who);
      };
      if (core->attach(static_cast<holder_role>(role), service.address(),
                       sender.address(), flight))
        hold(service);
      // Its death forgets what is noted of its flights.
      if (flight != 0 && sender)
        hold(sender);
      return ok_atom::value; // a taker waiting for its hold (take_ends)
    },
    [=](q_depart, std::uint8_t role, std::uint64_t flight,
        const caf::actor& sender) {
      core->depart(static_cast<holder_role>(role), sender.address(), flight);
      self->state.holders.insert(sender.address());
      watch(sender);
    },
    [=](q_detach, std::uint64_t id, std::uint8_t role,
        const caf::actor& service) {
      core->detach(static_cast<holder_role>(role), service.address());
      self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                 ok_atom::value, id, caf::message{});
    },
  };
}

} // namespace

caf::actor spawn_queue_actor(caf::actor_system& sys,
                             std::shared_ptr<queue_core> core) {
  return sys.spawn(queue_actor, std::move(core));
}

} // namespace actors::detail
