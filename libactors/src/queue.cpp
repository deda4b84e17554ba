// The queue actor and the blocking calls on it.
//
// Protocol (sender S is a fresh blocking actor per call, monitored here):
//   (q_put, value, timeout_ns)  -> (ok) | error full/closed
//   (q_get, timeout_ns)         -> (ok, delivery, value) | error empty/closed
//   (q_ack, delivery)           the getter has the value; forget our copy
//   (q_poll, timeout_ns)        -> (ok, bool ready)
//   (q_size)                    -> (ok, size, maxsize, getters, putters)
//   (q_close) (q_done)          -> (ok) | error
//   (q_join, timeout_ns)        -> (ok) | error timeout
//   (q_attach, role, root)      the process of `root` reads or writes: when
//                               all readers or all writers are gone, close
// timeout_ns < 0 waits forever, 0 not at all. The actor enforces every
// deadline itself, so a caller that gave up never leaves a parked put that
// lands later. A value handed to a getter stays "in flight" until acked; if
// the getter dies first, it goes back to the front of the queue.

#include "actors/detail/queue_ref.hpp"
#include "actors/pipe.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "call.hpp"
#include "runtime.hpp"

namespace actors::detail {

namespace {

using q_put = caf::atom_constant<caf::atom("q_put")>;
using q_get = caf::atom_constant<caf::atom("q_get")>;
using q_ack = caf::atom_constant<caf::atom("q_ack")>;
using q_poll = caf::atom_constant<caf::atom("q_poll")>;
using q_size = caf::atom_constant<caf::atom("q_size")>;
using q_close = caf::atom_constant<caf::atom("q_close")>;
using q_done = caf::atom_constant<caf::atom("q_done")>;
using q_join = caf::atom_constant<caf::atom("q_join")>;
using q_expire = caf::atom_constant<caf::atom("q_expire")>;
using q_attach = caf::atom_constant<caf::atom("q_attach")>;
using ok_atom = caf::ok_atom;

struct waiter {
  caf::actor who;
  std::uint64_t serial;
  value item; // putters only
};

struct queue_state {
  std::size_t maxsize = 0;
  std::deque<value> items;
  std::deque<waiter> getters;
  std::deque<waiter> putters;
  std::deque<waiter> pollers;
  std::deque<waiter> joiners;
  bool closed = false;
  std::uint64_t unfinished = 0;
  std::uint64_t next_serial = 1;
  std::map<std::uint64_t, std::pair<caf::actor_addr, value>> in_flight;
  std::set<caf::actor_addr> watched;
  // Processes (by their node's root actor) holding a pipe end.
  std::set<caf::actor_addr> readers;
  std::set<caf::actor_addr> writers;
  static constexpr const char* name = "actors.queue";
};

using queue_actor_ptr = caf::stateful_actor<queue_state>*;

caf::behavior queue_actor(queue_actor_ptr self, std::size_t maxsize) {
  self->state.maxsize = maxsize;
  auto sender = [self] {
    return caf::actor_cast<caf::actor>(self->current_sender());
  };
  auto watch = [self](const caf::actor& who) {
    if (self->state.watched.insert(who.address()).second)
      self->monitor(who);
  };
  // Parks `w` in `line`, expiring it after `timeout_ns` unless negative.
  auto park = [self](std::deque<waiter>& line, waiter w, std::int64_t ns) {
    if (ns >= 0)
      self->delayed_send(self, std::chrono::nanoseconds{ns}, q_expire::value,
                         w.serial);
    line.push_back(std::move(w));
  };
  auto deliver = [self](const caf::actor& to, value item) {
    auto id = self->state.next_serial++;
    self->state.in_flight.emplace(id, std::make_pair(to.address(), item));
    self->send(to, ok_atom::value, id, std::move(item));
  };
  // Moves parked puts into free room, and items to parked gets.
  auto settle = [self, deliver] {
    auto& s = self->state;
    for (;;) {
      if (!s.items.empty() && !s.getters.empty()) {
        auto w = std::move(s.getters.front());
        s.getters.pop_front();
        auto item = std::move(s.items.front());
        s.items.pop_front();
        deliver(w.who, std::move(item));
        continue;
      }
      if (!s.putters.empty()
          && (s.maxsize == 0 || s.items.size() < s.maxsize)) {
        auto w = std::move(s.putters.front());
        s.putters.pop_front();
        s.items.push_back(std::move(w.item));
        ++s.unfinished;
        self->send(w.who, ok_atom::value);
        continue;
      }
      break;
    }
    if (!s.items.empty() || s.closed) {
      for (auto& w : s.pollers)
        self->send(w.who, ok_atom::value, true);
      s.pollers.clear();
    }
    if (s.closed) {
      for (auto& w : s.getters)
        self->send(w.who, make_error(errc::closed, "the queue was closed"));
      s.getters.clear();
      for (auto& w : s.putters)
        self->send(w.who, make_error(errc::closed, "the queue was closed"));
      s.putters.clear();
    }
  };
  self->set_down_handler([self, settle](caf::down_msg& dm) {
    auto& s = self->state;
    s.watched.erase(dm.source);
    auto gone = [&](const waiter& w) { return w.who.address() == dm.source; };
    for (auto* line : {&s.getters, &s.putters, &s.pollers, &s.joiners})
      line->erase(std::remove_if(line->begin(), line->end(), gone),
                  line->end());
    // Values handed to a caller that died before acknowledging them go back
    // to the front, in their original order.
    for (auto i = s.in_flight.rbegin(); i != s.in_flight.rend(); ++i)
      if (i->second.first == dm.source)
        s.items.push_front(std::move(i->second.second));
    for (auto i = s.in_flight.begin(); i != s.in_flight.end();)
      i = i->second.first == dm.source ? s.in_flight.erase(i) : std::next(i);
    // The last process holding one side of a pipe is gone: like a pipe whose
    // every descriptor of that side was closed.
    if ((s.readers.erase(dm.source) > 0 && s.readers.empty())
        || (s.writers.erase(dm.source) > 0 && s.writers.empty()))
      s.closed = true;
    settle();
  });
  return {
    [=](q_put, value& item, std::int64_t ns) {
      auto& s = self->state;
      auto who = sender();
      if (s.closed) {
        self->send(who, make_error(errc::closed, "put on a closed queue"));
        return;
      }
      if (s.putters.empty() && (s.maxsize == 0 || s.items.size() < s.maxsize)) {
        s.items.push_back(std::move(item));
        ++s.unfinished;
        self->send(who, ok_atom::value);
        settle();
        return;
      }
      if (ns == 0) {
        self->send(who, make_error(errc::queue_full, "the queue is full"));
        return;
      }
      watch(who);
      park(s.putters, waiter{who, s.next_serial++, std::move(item)}, ns);
    },
    [=](q_get, std::int64_t ns) {
      auto& s = self->state;
      auto who = sender();
      watch(who);
      if (!s.items.empty() && s.getters.empty()) {
        auto item = std::move(s.items.front());
        s.items.pop_front();
        deliver(who, std::move(item));
        settle();
        return;
      }
      if (s.closed) {
        self->send(who, make_error(errc::closed, "the queue is closed and "
                                                 "drained"));
        return;
      }
      if (ns == 0) {
        self->send(who, make_error(errc::queue_empty, "the queue is empty"));
        return;
      }
      park(s.getters, waiter{who, s.next_serial++, {}}, ns);
    },
    [=](q_ack, std::uint64_t id) { self->state.in_flight.erase(id); },
    [=](q_attach, std::uint8_t role, const caf::actor& root) {
      auto& s = self->state;
      auto& holders = role == static_cast<std::uint8_t>(holder_role::reader)
                        ? s.readers
                        : s.writers;
      if (holders.insert(root.address()).second)
        watch(root);
    },
    [=](q_poll, std::int64_t ns) {
      auto& s = self->state;
      auto who = sender();
      if (!s.items.empty() || s.closed || ns == 0) {
        self->send(who, ok_atom::value, !s.items.empty() || s.closed);
        return;
      }
      watch(who);
      park(s.pollers, waiter{who, s.next_serial++, {}}, ns);
    },
    [=](q_size) {
      auto& s = self->state;
      self->send(sender(), ok_atom::value,
                 static_cast<std::uint64_t>(s.items.size()),
                 static_cast<std::uint64_t>(s.maxsize),
                 static_cast<std::uint64_t>(s.getters.size()),
                 static_cast<std::uint64_t>(s.putters.size()));
    },
    [=](q_close) {
      self->state.closed = true;
      settle();
      self->send(sender(), ok_atom::value);
    },
    [=](q_done) {
      auto& s = self->state;
      if (s.unfinished == 0) {
        self->send(sender(), make_error(errc::too_many_task_done,
                                        "task_done() called more times than "
                                        "items were put"));
        return;
      }
      if (--s.unfinished == 0) {
        for (auto& w : s.joiners)
          self->send(w.who, ok_atom::value);
        s.joiners.clear();
      }
      self->send(sender(), ok_atom::value);
    },
    [=](q_join, std::int64_t ns) {
      auto& s = self->state;
      auto who = sender();
      if (s.unfinished == 0) {
        self->send(who, ok_atom::value);
        return;
      }
      if (ns == 0) {
        self->send(who, make_error(errc::timeout, "unfinished tasks remain"));
        return;
      }
      watch(who);
      park(s.joiners, waiter{who, s.next_serial++, {}}, ns);
    },
    [=](q_expire, std::uint64_t serial) {
      auto& s = self->state;
      auto expire = [&](std::deque<waiter>& line, auto reply) {
        for (auto i = line.begin(); i != line.end(); ++i)
          if (i->serial == serial) {
            reply(i->who);
            line.erase(i);
            return true;
          }
        return false;
      };
      expire(s.putters, [&](const caf::actor& who) {
        self->send(who, make_error(errc::queue_full, "the queue stayed full"));
      })
        || expire(s.getters,
                  [&](const caf::actor& who) {
                    self->send(who, make_error(errc::queue_empty,
                                               "the queue stayed empty"));
                  })
        || expire(s.pollers,
                  [&](const caf::actor& who) {
                    self->send(who, ok_atom::value, false);
                  })
        || expire(s.joiners, [&](const caf::actor& who) {
             self->send(who, make_error(errc::timeout,
                                        "unfinished tasks remain"));
           });
    },
  };
}

std::int64_t to_ns(std::optional<duration> timeout) {
  if (!timeout)
    return -1;
  if (*timeout < duration::zero())
    throw error(errc::invalid_argument, "a timeout must not be negative");
  return std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout)
    .count();
}

// Renames a queue error for pipes (closed becomes end-of-pipe or broken-pipe,
// empty becomes a timeout).
[[noreturn]] void rethrow(const error& e, errc closed_as,
                          errc empty_as = errc::queue_empty) {
  if (e.code() == errc::closed && closed_as != errc::closed)
    throw error(closed_as, e.what());
  if (e.code() == errc::queue_empty && empty_as != errc::queue_empty)
    throw error(empty_as, e.what());
  throw;
}

} // namespace

queue_ref queue_ref::make(long maxsize) {
  if (maxsize < 0)
    throw error(errc::invalid_argument, "maxsize must not be negative");
  queue_ref result;
  result.actor_ = runtime::get().spawn_service(
    [maxsize](caf::actor_system& sys) {
      return sys.spawn(queue_actor, static_cast<std::size_t>(maxsize));
    });
  return result;
}

void queue_ref::put(value item, std::optional<duration> timeout,
                    error_names names) const {
  auto ns = to_ns(timeout);
  try {
    call(actor_, caf::make_message(q_put::value, std::move(item), ns), timeout,
         [](ok_atom) {});
  } catch (const error& e) {
    rethrow(e, names.when_closed_on_put);
  }
}

value queue_ref::get(std::optional<duration> timeout, error_names names) const {
  auto ns = to_ns(timeout);
  value result;
  try {
    call(actor_, caf::make_message(q_get::value, ns), timeout,
         [&](ok_atom, std::uint64_t id, value& item) {
           // Acknowledge first: once the queue has the ack, the value is ours
           // even if this process dies a moment later.
           caf::anon_send(actor_, q_ack::value, id);
           result = std::move(item);
         });
  } catch (const error& e) {
    rethrow(e, names.when_closed_on_get, names.when_empty);
  }
  return result;
}

bool queue_ref::poll(std::optional<duration> timeout) const {
  bool ready = false;
  call(actor_, caf::make_message(q_poll::value, to_ns(timeout)), timeout,
       [&](ok_atom, bool x) { ready = x; });
  return ready;
}

queue_ref::stats queue_ref::size() const {
  stats result;
  call(actor_, caf::make_message(q_size::value), std::nullopt,
       [&](ok_atom, std::uint64_t n, std::uint64_t max, std::uint64_t getters,
           std::uint64_t putters) { result = {n, max, getters, putters}; });
  return result;
}

void queue_ref::close() const {
  call(actor_, caf::make_message(q_close::value), std::nullopt,
       [](ok_atom) {});
}

void queue_ref::attach(holder_role role) const {
  caf::anon_send(actor_, q_attach::value, static_cast<std::uint8_t>(role),
                 runtime::get().root());
}

void queue_ref::task_done() const {
  call(actor_, caf::make_message(q_done::value), std::nullopt,
       [](ok_atom) {});
}

std::vector<std::size_t> wait_any(const std::vector<queue_ref>& inboxes,
                                  std::optional<duration> timeout) {
  auto ns = to_ns(timeout);
  caf::scoped_actor self{runtime::get().system()};
  for (auto& q : inboxes) {
    self->monitor(q.actor());
    self->send(q.actor(), q_poll::value, ns);
  }
  std::vector<std::size_t> ready;
  std::size_t answers = 0;
  bool down = false;
  while (ready.empty() && answers < inboxes.size() && !down) {
    auto on_reply = [&](ok_atom, bool x) {
      ++answers;
      if (!x)
        return;
      for (std::size_t i = 0; i < inboxes.size(); ++i)
        if (inboxes[i].actor().address() == self->current_sender())
          ready.push_back(i);
    };
    auto on_down = [&](caf::down_msg&) { down = true; };
    if (timeout)
      self->receive(on_reply, on_down,
                    caf::after(*timeout + call_grace) >> [&] {
                      answers = inboxes.size();
                    });
    else
      self->receive(on_reply, on_down);
  }
  if (down)
    throw error(errc::owner_unreachable,
                "the process that owns a pipe end is gone");
  // One end is ready: report every other one that is ready now as well.
  if (!ready.empty())
    for (std::size_t i = 0; i < inboxes.size(); ++i)
      if (i != ready.front() && inboxes[i].poll(duration::zero()))
        ready.push_back(i);
  std::sort(ready.begin(), ready.end());
  return ready;
}

bool queue_ref::join(std::optional<duration> timeout) const {
  try {
    call(actor_, caf::make_message(q_join::value, to_ns(timeout)), timeout,
         [](ok_atom) {});
    return true;
  } catch (const error& e) {
    if (e.code() == errc::timeout)
      return false;
    throw;
  }
}

} // namespace actors::detail
