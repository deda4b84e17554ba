// The queue's actor (queue_actor.hpp): wait_any's polls, and the holders
// of a pipe's ends, watched until their processes end.

#include "queue/queue_actor.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/mailbox.hpp"
#include "base/deadline.hpp"
#include "node/runtime.hpp"
#include "queue/hub_server.hpp"
#include "queue/queue_hub.hpp"

namespace actors::detail {

namespace {

using q_got = caf::atom_constant<caf::atom("q_got")>;
using q_put_done = caf::atom_constant<caf::atom("q_put_done")>;

// An actor subscribed to the queue (actors/mailbox.hpp).
struct subscriber {
  caf::actor who;
  std::size_t credit = 0; // 0 once cancelled
  std::deque<std::pair<std::uint64_t, value>> in_flight; // (seq, item)
  std::uint64_t next_seq = 1;
  std::uint64_t parked = 0; // the serial of its parked get, 0: none
  bool ended = false;       // q_end sent
};

// An actor's put that waits for room.
struct actor_put {
  caf::actor_addr who;
  std::uint64_t serial = 0;
  caf::response_promise answer;
};

struct queue_state {
  std::shared_ptr<queue_core> core;
  std::set<caf::actor_addr> watched;
  std::set<caf::actor_addr> holders;
  std::multimap<caf::actor_addr, std::uint64_t> polls; // parked, by caller
  using sub_key = std::pair<caf::actor_addr, std::uint64_t>; // (who, id)
  std::map<sub_key, subscriber> subs;
  std::map<std::uint64_t, actor_put> puts; // by their own id
  std::uint64_t next_put = 1;
  static constexpr const char* name = queue_actor_name;
};

using queue_actor_ptr = caf::stateful_actor<queue_state>*;

caf::error failure_of(const q_outcome& x) {
  return make_error(x.code, x.what);
}

// Hands subscriber `key` items while it has credit: at once while the
// queue has some (one message for all of them), then one parked get whose
// answer comes back as q_got. `got` is the outcome of that answer.
void feed(queue_actor_ptr self, const queue_state::sub_key& key,
          std::optional<q_outcome> got = std::nullopt) {
  auto& s = self->state;
  auto i = s.subs.find(key);
  if (i == s.subs.end()) {
    if (got && got->ok)
      s.core->requeue(std::move(got->item)); // its taker has gone meanwhile
    return;
  }
  auto& sub = i->second;
  auto me = caf::actor_cast<caf::actor_addr>(self);
  std::vector<value> batch;
  auto first = sub.next_seq;
  std::optional<caf::error> end;
  auto take = [&](q_outcome&& x) {
    if (!x.ok) {
      end = failure_of(x);
      return;
    }
    sub.in_flight.emplace_back(sub.next_seq++, x.item);
    batch.push_back(std::move(x.item));
  };
  if (got) {
    sub.parked = 0;
    take(std::move(*got));
  }
  while (!end && !sub.ended && sub.parked == 0
         && sub.in_flight.size() < sub.credit) {
    auto r = s.core->get(true, [me, key](q_outcome&& x) {
      auto hdl = caf::actor_cast<caf::actor>(me);
      if (!hdl)
        return false;
      // Answered by the hub's thread, the queue's actor runs there next.
      hdl->eq_impl(caf::make_message_id(), nullptr, queue_hub::thread_unit(),
                   q_got::value, key.first, key.second, x.ok, x.code,
                   std::move(x.what), std::move(x.item));
      return true;
    });
    if (auto* now = std::get_if<q_outcome>(&r))
      take(std::move(*now));
    else
      sub.parked = std::get<std::uint64_t>(r);
  }
  if (!batch.empty())
    self->send(sub.who, q_items::value, key.second, first, std::move(batch));
  // Cancelled and nothing in flight any more: the last message.
  if (!end && !sub.ended && sub.credit == 0 && sub.in_flight.empty())
    end = make_error(errc::cancelled, "the subscription was cancelled");
  if (end && !sub.ended) {
    sub.ended = true;
    self->send(sub.who, q_end::value, key.second, std::move(*end));
  }
  if (sub.ended && sub.in_flight.empty())
    s.subs.erase(i);
}

// Subscriber `key` is gone: what it had in flight goes back to the front of
// the queue, in order; its parked get is withdrawn.
void drop_subscriber(queue_actor_ptr self, queue_state::sub_key key) {
  auto& s = self->state;
  auto i = s.subs.find(key);
  if (i == s.subs.end())
    return;
  auto& sub = i->second;
  if (sub.parked != 0)
    s.core->cancel(sub.parked);
  for (auto j = sub.in_flight.rbegin(); j != sub.in_flight.rend(); ++j)
    s.core->requeue(std::move(j->second));
  s.subs.erase(i);
}

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
    for (auto i = s.puts.begin(); i != s.puts.end();) {
      if (i->second.who == who) {
        core->cancel(i->second.serial); // it put nothing
        i = s.puts.erase(i);
      } else {
        ++i;
      }
    }
    std::vector<queue_state::sub_key> gone;
    for (auto& [key, sub] : s.subs)
      if (key.first == who)
        gone.push_back(key);
    for (auto& key : gone)
      drop_subscriber(self, key);
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
      if (auto t = wire_timeout(ns); t && ns > 0)
        self->delayed_send(self, *t, q_expire::value, serial);
    },
    [=](q_expire, std::uint64_t serial) { core->expire(serial); },
    [=](q_sub, std::uint64_t id, std::uint64_t credit) {
      auto who = caf::actor_cast<caf::actor>(self->current_sender());
      if (!who)
        return;
      watch(who);
      subscriber sub;
      sub.who = who;
      sub.credit = static_cast<std::size_t>(
        std::clamp<std::uint64_t>(credit, 1, 1024));
      queue_state::sub_key key{who.address(), id};
      self->state.subs.emplace(key, std::move(sub));
      feed(self, key);
    },
    [=](q_ack, std::uint64_t id, std::uint64_t seq) {
      auto key = queue_state::sub_key{
        caf::actor_cast<caf::actor_addr>(self->current_sender()), id};
      auto i = self->state.subs.find(key);
      if (i == self->state.subs.end())
        return;
      auto& in_flight = i->second.in_flight;
      // Acknowledged in the order they were sent (one link, one sender).
      while (!in_flight.empty() && in_flight.front().first <= seq)
        in_flight.pop_front();
      feed(self, key);
    },
    [=](q_unsub, std::uint64_t id) {
      auto key = queue_state::sub_key{
        caf::actor_cast<caf::actor_addr>(self->current_sender()), id};
      auto i = self->state.subs.find(key);
      if (i == self->state.subs.end())
        return;
      i->second.credit = 0;
      if (i->second.parked != 0) {
        core->cancel(i->second.parked);
        i->second.parked = 0;
      }
      feed(self, key);
    },
    [=](q_got, const caf::actor_addr& who, std::uint64_t id, bool ok,
        errc code, std::string& what, value& item) {
      q_outcome x;
      x.ok = ok;
      x.code = code;
      x.what = std::move(what);
      x.item = std::move(item);
      feed(self, queue_state::sub_key{who, id}, std::move(x));
    },
    [=](q_put, value& item, std::int64_t ns) {
      auto who = caf::actor_cast<caf::actor_addr>(self->current_sender());
      auto answer = self->make_response_promise();
      auto id = self->state.next_put++;
      auto me = caf::actor_cast<caf::actor_addr>(self);
      auto r = core->put(std::move(item), ns != 0, [me, id](q_outcome&& x) {
        if (auto hdl = caf::actor_cast<caf::actor>(me))
          hdl->eq_impl(caf::make_message_id(), nullptr,
                       queue_hub::thread_unit(), q_put_done::value, id, x.ok,
                       x.code, std::move(x.what));
        return true;
      });
      if (auto* now = std::get_if<q_outcome>(&r)) {
        if (now->ok)
          answer.deliver(caf::unit);
        else
          answer.deliver(failure_of(*now));
        return;
      }
      auto serial = std::get<std::uint64_t>(r);
      if (auto hdl = caf::actor_cast<caf::actor>(who))
        watch(hdl);
      self->state.puts.emplace(id, actor_put{who, serial, answer});
      if (auto t = wire_timeout(ns); t && ns > 0)
        self->delayed_send(self, *t, q_expire::value, serial);
    },
    [=](q_put_done, std::uint64_t id, bool ok, errc code, std::string& what) {
      auto i = self->state.puts.find(id);
      if (i == self->state.puts.end())
        return;
      if (ok)
        i->second.answer.deliver(caf::unit);
      else
        i->second.answer.deliver(make_error(code, std::move(what)));
      self->state.puts.erase(i);
    },
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
    [=](q_lost, std::uint8_t role, std::uint64_t flight,
        const caf::actor& sender) {
      core->lost_in_flight(static_cast<holder_role>(role), sender.address(),
                           flight);
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
