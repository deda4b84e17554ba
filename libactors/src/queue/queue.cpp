// The blocking calls on a queue, and the queue's actor.
//
// A queue's state (queue_core.hpp) lives in the process that made it.
// Threads of that process operate on it directly; threads of other
// processes through its hub (queue_hub.hpp), one connection each: local,
// or a stream to its node from a process on another host (one that has a
// connector: set_remote_hub). The
// queue's actor is its identity in handles and serves what needs CAF:
//   (q_poll, id, timeout_ns)  -> ok(bool ready)   for wait_any
//   (q_attach, role, root, flight, sender)
//                             the process of `root` holds the end that
//                             reads or writes this queue; with a flight
//                             (not 0), it received it from `sender`
//   (q_depart, role, flight, sender)
//                             the process of `sender` handed the end over:
//                             it holds it until the receiver's attach
//   (q_detach, id, role, root) ... no longer (-> ok()); when the last reader or the
//                             last writer is gone (detached, or dead and
//                             everything it sent read) and none is on its
//                             way, the queue closes
// Attach, depart and detach go through the actor so that they stay in the
// order they were sent in, from each process. A receiver's attach may
// overtake its sender's depart (they come from two processes): the core
// matches them in either order.

#include "actors/detail/queue_ref.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <set>

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/pipe.hpp"
#include "base/deadline.hpp"
#include "node/call.hpp"
#include "queue/queue_core.hpp"
#include "queue/queue_hub.hpp"
#include "node/runtime.hpp"
#include "wire/serializable.hpp"

namespace actors::detail {

namespace {

using q_poll = caf::atom_constant<caf::atom("q_poll")>;
using q_expire = caf::atom_constant<caf::atom("q_expire")>;
using q_attach = caf::atom_constant<caf::atom("q_attach")>;
using q_depart = caf::atom_constant<caf::atom("q_depart")>;
using q_detach = caf::atom_constant<caf::atom("q_detach")>;
using q_gone = caf::atom_constant<caf::atom("q_gone")>;
using ok_atom = caf::ok_atom;

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
      runtime::get().hub().when_drained(who.node(), [core, who] {
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
    runtime::get().hub().when_exited(who.node(), [me, who = who.address()] {
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
    [=](q_attach, std::uint8_t role, const caf::actor& root,
        std::uint64_t flight, const caf::actor& sender) {
      auto hold = [&](const caf::actor& who) {
        self->state.holders.insert(who.address());
        watch(who);
      };
      if (core->attach(static_cast<holder_role>(role), root.address(),
                       sender.address(), flight))
        hold(root);
      // Its death forgets what is noted of its flights.
      if (flight != 0 && sender)
        hold(sender);
    },
    [=](q_depart, std::uint8_t role, std::uint64_t flight,
        const caf::actor& sender) {
      core->depart(static_cast<holder_role>(role), sender.address(), flight);
      self->state.holders.insert(sender.address());
      watch(sender);
    },
    [=](q_detach, std::uint64_t id, std::uint8_t role,
        const caf::actor& root) {
      core->detach(static_cast<holder_role>(role), root.address());
      self->send(caf::actor_cast<caf::actor>(self->current_sender()),
                 ok_atom::value, id, caf::message{});
    },
  };
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

// -- pipe ends on their way ---------------------------------------------------

namespace {

thread_local end_pass this_pass = end_pass::hand_over;
thread_local std::uint64_t ends_seen = 0;

// Calls `fn(queue, role)` for each side of an end that this handle uses.
template <class F>
void each_side(const queue_ref& inbox, const queue_ref& outbox, bool readable,
               bool writable, F fn) {
  if (readable && inbox.actor())
    fn(inbox, holder_role::reader);
  if (writable && outbox.actor())
    fn(outbox, holder_role::writer);
}

// This process holds the end now (attaches to the queues of its sides);
// its flight, if any, ends.
void take_hold(const queue_ref& inbox, const queue_ref& outbox, bool readable,
            bool writable, end_flight& flight) {
  auto& root = runtime::get().root();
  each_side(inbox, outbox, readable, writable,
            [&](const queue_ref& q, holder_role role) {
              caf::anon_send(q.actor(), q_attach::value,
                             static_cast<std::uint8_t>(role), root,
                             flight.id, flight.sender);
            });
  flight = end_flight{};
}

} // namespace

end_pass_scope::end_pass_scope(end_pass pass)
  : prev_(this_pass), seen_(ends_seen) {
  this_pass = pass;
}

end_pass_scope::~end_pass_scope() {
  this_pass = prev_;
}

bool end_pass_scope::saw_ends() const noexcept {
  return ends_seen != seen_;
}

void end_saved(const queue_ref& inbox, const queue_ref& outbox, bool readable,
               bool writable, bool closed, end_flight& flight) {
  if (closed || (!readable && !writable))
    return;
  ++ends_seen;
  if (this_pass == end_pass::take) {
    take_hold(inbox, outbox, readable, writable, flight);
    return;
  }
  if (flight.id != 0)
    return; // handed over already: this is the same hand-over
  // Sent first, so before anything this process sends later (its close).
  static std::atomic<std::uint64_t> next_flight{1};
  flight.id = next_flight.fetch_add(1, std::memory_order_relaxed);
  flight.sender = runtime::get().root();
  each_side(inbox, outbox, readable, writable,
            [&](const queue_ref& q, holder_role role) {
              caf::anon_send(q.actor(), q_depart::value,
                             static_cast<std::uint8_t>(role), flight.id,
                             flight.sender);
            });
}

void end_loaded(const queue_ref& inbox, const queue_ref& outbox,
                bool readable, bool writable, bool closed,
                end_flight& flight) {
  if (closed || (!readable && !writable))
    return;
  ++ends_seen;
  // Also on the middleman's thread while CAF deserializes a message: an
  // anonymous message, ordered before anything this process sends later.
  if (this_pass != end_pass::carry)
    take_hold(inbox, outbox, readable, writable, flight);
}

void hand_over(closure& x) {
  end_pass_scope scope{end_pass::hand_over};
  serializable(x); // walks the arguments: each end departs (end_saved)
}

void take_ends(value& item) {
  if (!item.carries_ends())
    return;
  item.carries_ends(false);
  end_pass_scope scope{end_pass::take};
  serializable(item); // walks the item: this process holds each end (end_saved)
}

queue_ref queue_ref::make(long maxsize, bool buffered) {
  if (maxsize < 0)
    throw error(errc::invalid_argument, "maxsize must not be negative");
  auto& rt = runtime::get();
  auto& hub = rt.hub();
  auto core = std::make_shared<queue_core>(static_cast<std::size_t>(maxsize),
                                           [&hub] { return hub.poll_once(); });
  queue_ref result;
  result.actor_ = rt.spawn_service([core](caf::actor_system& sys) {
    return sys.spawn(queue_actor, core);
  });
  hub.add(result.actor_->id(), core);
  result.hub_ = hub.address();
  result.key0_ = hub.key0();
  result.key1_ = hub.key1();
  result.buffered_ = buffered && maxsize == 0;
  return result;
}

namespace {

// This thread's connection to the hub of a queue this process does not
// own: a stream to the owner's node once this process has a connector for
// remote hubs (unless it says the node is on this host), else the local
// socket and ring.
hub_client& client_for(const caf::actor& ref, const std::string& hub,
                      std::uint64_t key0, std::uint64_t key1) {
  if (remote_hub_set())
    if (auto* stream = hub_client::over_stream(ref->node()))
      return *stream;
  return hub_client::local(hub, key0, key1);
}

// The state of the queue `ref` names if this process owns it, else null
// (then go through its owner's hub).
std::shared_ptr<queue_core> local_core(const caf::actor& ref) {
  if (!ref)
    throw error(errc::invalid_argument, "the handle is empty");
  auto& rt = runtime::get();
  if (ref->node() != rt.system().node())
    return nullptr;
  auto core = rt.hub().find(ref->id());
  if (!core)
    throw error(errc::invalid_argument, "no such queue in this process");
  return core;
}

} // namespace

void queue_ref::put(value item, std::optional<duration> timeout,
                    error_names names) const {
  auto ns = timeout_ns(timeout);
  try {
    if (auto core = local_core(actor_)) {
      // Whoever takes it may be another process: an item that could not get
      // there fails here, not there. (Sent to another process, it is
      // serialized anyway, and fails the same way.)
      // Walking it also hands over the pipe ends it holds (end_saved).
      end_pass_scope scope{end_pass::hand_over};
      if (auto err = serializable(item))
        throw error(errc::invalid_argument,
                    "the item cannot be serialized: "
                      + runtime::get().system().render(err));
      item.carries_ends(scope.saw_ends());
      check(core->put_blocking(std::move(item), timeout));
      return;
    }
    auto& hub = client_for(actor_, hub_, key0_, key1_);
    auto id = actor_->id();
    if (buffered_)
      hub.put_buffered(id, item);
    else
      check(hub.call(hub_frame::put, ns, id, ns, item));
  } catch (const error& e) {
    rethrow(e, names.when_closed_on_put);
  }
}

value queue_ref::get(std::optional<duration> timeout, error_names names) const {
  auto ns = timeout_ns(timeout);
  try {
    q_outcome result;
    if (auto core = local_core(actor_)) {
      result = core->get_blocking(timeout);
      if (ns == 0 && !result.ok && result.code == errc::queue_empty) {
        // What other processes have put may still be in the hub's sockets.
        runtime::get().hub().drain();
        result = core->get_blocking(timeout);
      }
    } else {
      auto id = actor_->id();
      auto& hub = client_for(actor_, hub_, key0_, key1_);
      result = hub.call(hub_frame::get, ns, id, ns);
    }
    check(result);
    take_ends(result.item);
    return std::move(result.item);
  } catch (const error& e) {
    rethrow(e, names.when_closed_on_get, names.when_empty);
  }
}

bool queue_ref::poll(std::optional<duration> timeout) const {
  auto ns = timeout_ns(timeout);
  if (auto core = local_core(actor_)) {
    if (core->poll_blocking(timeout).flag)
      return true;
    if (ns != 0)
      return false;
    runtime::get().hub().drain();
    return core->poll_blocking(timeout).flag;
  }
  auto id = actor_->id();
  auto& hub = client_for(actor_, hub_, key0_, key1_);
  auto result = hub.call(hub_frame::poll, ns, id, ns);
  check(result);
  return result.flag;
}

queue_ref::stats queue_ref::snapshot() const {
  if (auto core = local_core(actor_)) {
    runtime::get().hub().drain(); // count what others have put
    return core->snapshot();
  }
  auto id = actor_->id();
  auto& hub = client_for(actor_, hub_, key0_, key1_);
  check(hub.call(hub_frame::size, -1, id));
  return hub.last_stats();
}

void queue_ref::close() const {
  if (auto core = local_core(actor_)) {
    core->close();
    return;
  }
  // On this thread's connection: after every put it sent.
  auto id = actor_->id();
  check(client_for(actor_, hub_, key0_, key1_).call(hub_frame::close, -1, id));
}

void queue_ref::attach(holder_role role) const {
  // An anonymous message, ordered before anything this process sends later.
  caf::anon_send(actor_, q_attach::value, static_cast<std::uint8_t>(role),
                 runtime::get().root(), std::uint64_t{0}, caf::actor{});
}

void queue_ref::detach(holder_role role) const {
  // What this thread put through the hub lands before the end can close.
  if (auto* hub = hub_client::existing(hub_))
    check(hub->call(hub_frame::sync, -1));
  if (auto* stream = actor_ ? hub_client::existing(actor_->node()) : nullptr)
    check(stream->call(hub_frame::sync, -1));
  // Answered: once close() returns, the other end sees it.
  caller::of_this_thread().call(actor_, std::nullopt, q_detach::value,
                                static_cast<std::uint8_t>(role),
                                runtime::get().root());
}

void queue_ref::task_done() const {
  if (auto core = local_core(actor_)) {
    check(core->task_done());
    return;
  }
  auto id = actor_->id();
  check(client_for(actor_, hub_, key0_, key1_).call(hub_frame::done, -1, id));
}

std::vector<std::size_t> wait_any(const std::vector<queue_ref>& inboxes,
                                  std::optional<duration> timeout) {
  // One poll after another would wait for each in turn; instead ask all at
  // once from a dedicated actor and take the first that is ready.
  auto ns = timeout_ns(timeout);
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
                    caf::after(std::max(*timeout, duration::zero())
                               + call_grace)
                      >> [&] { silent = true; });
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
  auto ns = timeout_ns(timeout);
  q_outcome result;
  if (auto core = local_core(actor_)) {
    result = core->join_blocking(timeout);
  } else {
    auto id = actor_->id();
    auto& hub = client_for(actor_, hub_, key0_, key1_);
    result = hub.call(hub_frame::join, ns, id, ns);
  }
  if (!result.ok && result.code == errc::timeout)
    return false;
  check(result);
  return true;
}

} // namespace actors::detail
