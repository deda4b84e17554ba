// The queue actor and the blocking calls on it.
//
// Protocol (see call.hpp for the id and answer convention; S is the caller):
//   (q_put, id, value, timeout_ns)  -> ok() | fail full/closed
//   (q_get, id, timeout_ns)         -> ok(delivery, value) | fail empty/closed
//   (q_ack, id, delivery)           -> ok(): S has the value; forget our copy
//   (q_poll, id, timeout_ns)        -> ok(bool ready)
//   (q_size, id)                    -> ok(size, maxsize, getters, putters)
//   (q_close, id) (q_done, id)      -> ok() | fail
//   (q_join, id, timeout_ns)        -> ok() | fail timeout
//   (q_attach, role, root)          the process of `root` holds the end
//                                   that reads or writes this queue
//   (q_detach, role, root)          ... no longer; when the last reader or
//                                   the last writer is gone (detached or
//                                   dead), the queue closes
// timeout_ns < 0 waits forever, 0 not at all. The actor enforces every
// deadline itself, so a caller that gave up never leaves a parked put that
// lands later. A value handed to a getter stays "in flight" until acked; if
// the getter dies first, it goes back to the front of the queue. get()
// returns only once its ack is answered, so a value a get returned is never
// handed out again, even if its process dies a moment later.

#include "actors/detail/queue_ref.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/pipe.hpp"
#include "call.hpp"
#include "runtime.hpp"
#include "serializable.hpp"

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
using q_detach = caf::atom_constant<caf::atom("q_detach")>;
using ok_atom = caf::ok_atom;

struct waiter {
  caf::actor who;
  std::uint64_t id;     // the caller's request id
  std::uint64_t serial; // ours, for expiry
  value item;           // putters only
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
  auto ok = [self](const caf::actor& who, std::uint64_t id,
                   caf::message payload = caf::message{}) {
    self->send(who, ok_atom::value, id, std::move(payload));
  };
  auto fail = [self](const caf::actor& who, std::uint64_t id, errc code,
                     const char* what) {
    self->send(who, fail_atom::value, id, make_error(code, what));
  };
  auto watch = [self](const caf::actor& who) {
    if (self->state.watched.insert(who.address()).second)
      self->monitor(who);
  };
  // Parks a caller in `line`, expiring it after `ns` unless negative.
  auto park = [self](std::deque<waiter>& line, const caf::actor& who,
                     std::uint64_t id, std::int64_t ns, value item = {}) {
    auto serial = self->state.next_serial++;
    if (ns >= 0)
      self->delayed_send(self, std::chrono::nanoseconds{ns}, q_expire::value,
                         serial);
    line.push_back(waiter{who, id, serial, std::move(item)});
  };
  auto deliver = [self, ok](const caf::actor& to, std::uint64_t id,
                            value item) {
    auto delivery = self->state.next_serial++;
    self->state.in_flight.emplace(delivery, std::make_pair(to.address(), item));
    ok(to, id, caf::make_message(delivery, std::move(item)));
  };
  // Moves parked puts into free room and items to parked gets; answers
  // pollers and, once closed, everyone still waiting.
  auto settle = [self, ok, fail, deliver] {
    auto& s = self->state;
    for (;;) {
      if (!s.items.empty() && !s.getters.empty()) {
        auto w = std::move(s.getters.front());
        s.getters.pop_front();
        auto item = std::move(s.items.front());
        s.items.pop_front();
        deliver(w.who, w.id, std::move(item));
      } else if (!s.putters.empty()
                 && (s.maxsize == 0 || s.items.size() < s.maxsize)) {
        auto w = std::move(s.putters.front());
        s.putters.pop_front();
        s.items.push_back(std::move(w.item));
        ++s.unfinished;
        ok(w.who, w.id);
      } else {
        break;
      }
    }
    if (!s.items.empty() || s.closed) {
      for (auto& w : s.pollers)
        ok(w.who, w.id, caf::make_message(true));
      s.pollers.clear();
    }
    if (s.closed) {
      for (auto* line : {&s.getters, &s.putters})
        for (auto& w : *line)
          fail(w.who, w.id, errc::closed, "the queue was closed");
      s.getters.clear();
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
    [=](q_put, std::uint64_t id, value& item, std::int64_t ns) {
      auto& s = self->state;
      auto who = sender();
      if (s.closed)
        return fail(who, id, errc::closed, "put on a closed queue");
      if (s.putters.empty()
          && (s.maxsize == 0 || s.items.size() < s.maxsize)) {
        s.items.push_back(std::move(item));
        ++s.unfinished;
        ok(who, id);
        return settle();
      }
      if (ns == 0)
        return fail(who, id, errc::queue_full, "the queue is full");
      watch(who);
      park(s.putters, who, id, ns, std::move(item));
    },
    [=](q_get, std::uint64_t id, std::int64_t ns) {
      auto& s = self->state;
      auto who = sender();
      watch(who);
      if (!s.items.empty() && s.getters.empty()) {
        auto item = std::move(s.items.front());
        s.items.pop_front();
        deliver(who, id, std::move(item));
        return settle();
      }
      if (s.closed)
        return fail(who, id, errc::closed, "the queue is closed and drained");
      if (ns == 0)
        return fail(who, id, errc::queue_empty, "the queue is empty");
      park(s.getters, who, id, ns);
    },
    [=](q_ack, std::uint64_t id, std::uint64_t delivery) {
      self->state.in_flight.erase(delivery);
      ok(sender(), id);
    },
    [=](q_attach, std::uint8_t role, const caf::actor& root) {
      auto& s = self->state;
      auto& holders = role == static_cast<std::uint8_t>(holder_role::reader)
                        ? s.readers
                        : s.writers;
      if (holders.insert(root.address()).second)
        watch(root);
    },
    [=](q_detach, std::uint8_t role, const caf::actor& root) {
      auto& s = self->state;
      auto& holders = role == static_cast<std::uint8_t>(holder_role::reader)
                        ? s.readers
                        : s.writers;
      if (holders.erase(root.address()) > 0 && holders.empty()) {
        s.closed = true;
        settle();
      }
    },
    [=](q_poll, std::uint64_t id, std::int64_t ns) {
      auto& s = self->state;
      auto who = sender();
      if (!s.items.empty() || s.closed || ns == 0)
        return ok(who, id, caf::make_message(!s.items.empty() || s.closed));
      watch(who);
      park(s.pollers, who, id, ns);
    },
    [=](q_size, std::uint64_t id) {
      auto& s = self->state;
      ok(sender(), id,
         caf::make_message(static_cast<std::uint64_t>(s.items.size()),
                           static_cast<std::uint64_t>(s.maxsize),
                           static_cast<std::uint64_t>(s.getters.size()),
                           static_cast<std::uint64_t>(s.putters.size())));
    },
    [=](q_close, std::uint64_t id) {
      self->state.closed = true;
      settle();
      ok(sender(), id);
    },
    [=](q_done, std::uint64_t id) {
      auto& s = self->state;
      if (s.unfinished == 0)
        return fail(sender(), id, errc::too_many_task_done,
                    "task_done() called more times than items were put");
      if (--s.unfinished == 0) {
        for (auto& w : s.joiners)
          ok(w.who, w.id);
        s.joiners.clear();
      }
      ok(sender(), id);
    },
    [=](q_join, std::uint64_t id, std::int64_t ns) {
      auto& s = self->state;
      auto who = sender();
      if (s.unfinished == 0)
        return ok(who, id);
      if (ns == 0)
        return fail(who, id, errc::timeout, "unfinished tasks remain");
      watch(who);
      park(s.joiners, who, id, ns);
    },
    [=](q_expire, std::uint64_t serial) {
      auto& s = self->state;
      // Answers and removes the parked caller with this serial, if any.
      auto expire = [&](std::deque<waiter>& line, auto answer) {
        auto i = std::find_if(line.begin(), line.end(), [&](const waiter& w) {
          return w.serial == serial;
        });
        if (i == line.end())
          return false;
        answer(*i);
        line.erase(i);
        return true;
      };
      expire(s.putters,
             [&](waiter& w) {
               fail(w.who, w.id, errc::queue_full, "the queue stayed full");
             })
        || expire(s.getters,
                  [&](waiter& w) {
                    fail(w.who, w.id, errc::queue_empty,
                         "the queue stayed empty");
                  })
        || expire(s.pollers,
                  [&](waiter& w) {
                    ok(w.who, w.id, caf::make_message(false));
                  })
        || expire(s.joiners, [&](waiter& w) {
             fail(w.who, w.id, errc::timeout, "unfinished tasks remain");
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
  // Whoever takes it may be another process: an item that could not get
  // there fails here, not as a message BASP drops.
  if (auto err = serializable(item))
    throw error(errc::invalid_argument,
                "the item cannot be serialized: "
                  + runtime::get().system().render(err));
  try {
    caller::of_this_thread().call(actor_, timeout, q_put::value,
                                  std::move(item), ns);
  } catch (const error& e) {
    rethrow(e, names.when_closed_on_put);
  }
}

value queue_ref::get(std::optional<duration> timeout, error_names names) const {
  auto ns = to_ns(timeout);
  caf::message answer;
  try {
    answer = caller::of_this_thread().call(actor_, timeout, q_get::value, ns);
  } catch (const error& e) {
    rethrow(e, names.when_closed_on_get, names.when_empty);
  }
  // The value is ours once the queue has the ack: before that, were this
  // process to die, it would go back to the queue, and so must not be
  // returned. (If the queue's process died meanwhile, the value is ours.)
  try {
    caller::of_this_thread().call(actor_, std::nullopt, q_ack::value,
                                  answer.get_as<std::uint64_t>(0));
  } catch (const error& e) {
    if (e.code() != errc::owner_unreachable)
      throw;
  }
  return answer.get_as<value>(1);
}

bool queue_ref::poll(std::optional<duration> timeout) const {
  auto answer = caller::of_this_thread().call(actor_, timeout, q_poll::value,
                                              to_ns(timeout));
  return answer.get_as<bool>(0);
}

queue_ref::stats queue_ref::snapshot() const {
  auto answer = caller::of_this_thread().call(actor_, std::nullopt,
                                              q_size::value);
  return {answer.get_as<std::uint64_t>(0), answer.get_as<std::uint64_t>(1),
          answer.get_as<std::uint64_t>(2), answer.get_as<std::uint64_t>(3)};
}

void queue_ref::close() const {
  caller::of_this_thread().call(actor_, std::nullopt, q_close::value);
}

void queue_ref::attach(holder_role role) const {
  // Also called while CAF deserializes a handle, on the middleman's thread:
  // an anonymous message, ordered before anything this process sends later.
  caf::anon_send(actor_, q_attach::value, static_cast<std::uint8_t>(role),
                 runtime::get().root());
}

void queue_ref::detach(holder_role role) const {
  caf::anon_send(actor_, q_detach::value, static_cast<std::uint8_t>(role),
                 runtime::get().root());
}

void queue_ref::task_done() const {
  caller::of_this_thread().call(actor_, std::nullopt, q_done::value);
}

std::vector<std::size_t> wait_any(const std::vector<queue_ref>& inboxes,
                                  std::optional<duration> timeout) {
  // One poll after another would wait for each in turn; instead ask all at
  // once from a dedicated actor and take the first that is ready.
  auto ns = to_ns(timeout);
  caf::scoped_actor self{runtime::get().system()};
  for (std::size_t i = 0; i < inboxes.size(); ++i) {
    self->monitor(inboxes[i].actor());
    self->send(inboxes[i].actor(), q_poll::value, std::uint64_t{i}, ns);
  }
  std::vector<std::size_t> ready;
  std::size_t answers = 0;
  bool down = false;
  bool silent = false;
  while (ready.empty() && answers < inboxes.size() && !down && !silent) {
    auto on_ok = [&](caf::ok_atom, std::uint64_t i, caf::message& m) {
      ++answers;
      if (m.get_as<bool>(0))
        ready.push_back(static_cast<std::size_t>(i));
    };
    auto on_down = [&](caf::down_msg&) { down = true; };
    if (timeout)
      self->receive(on_ok, on_down,
                    caf::after(*timeout + call_grace) >> [&] { silent = true; });
    else
      self->receive(on_ok, on_down);
  }
  if (down && ready.empty())
    throw error(errc::owner_unreachable,
                "the process that owns a pipe end is gone");
  // One end is ready: report every other one that is ready now as well.
  for (std::size_t i = 0; !ready.empty() && i < inboxes.size(); ++i)
    if (i != ready.front() && inboxes[i].poll(duration::zero()))
      ready.push_back(i);
  std::sort(ready.begin(), ready.end());
  return ready;
}

bool queue_ref::join(std::optional<duration> timeout) const {
  try {
    caller::of_this_thread().call(actor_, timeout, q_join::value,
                                  to_ns(timeout));
    return true;
  } catch (const error& e) {
    if (e.code() == errc::timeout)
      return false;
    throw;
  }
}

} // namespace actors::detail
