// The blocking calls on a queue (queue_ref), and waiting for pipe ends and
// processes together (wait_any, actors::wait).
//
// A queue's state (queue_core.hpp) lives in the process that made it.
// Threads of that process operate on it directly; threads of other
// processes through its hub (queue_hub.hpp), one connection each: local,
// or a stream to its node from a process on another host (one that has a
// connector: set_remote_hub). The queue's actor (queue_actor.hpp) is its
// identity in handles and serves what needs CAF.

#include "actors/detail/queue_ref.hpp"
#include "actors/pipe.hpp"

#include <algorithm>

#include <caf/scoped_actor.hpp>

#include "base/deadline.hpp"
#include "node/call.hpp"
#include "node/runtime.hpp"
#include "process/children.hpp"
#include "queue/queue_actor.hpp"
#include "queue/queue_core.hpp"
#include "queue/queue_hub.hpp"
#include "wire/serializable.hpp"

namespace actors::detail {

namespace {

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


queue_ref queue_ref::make(long maxsize, bool buffered) {
  if (maxsize < 0)
    throw error(errc::invalid_argument, "maxsize must not be negative");
  auto& rt = runtime::get();
  auto& hub = queue_hub::local();
  auto core = std::make_shared<queue_core>(static_cast<std::size_t>(maxsize),
                                           [&hub] { return hub.poll_once(); });
  queue_ref result;
  result.actor_ = rt.spawn_service([core](caf::actor_system& sys) {
    return spawn_queue_actor(sys, core);
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
  auto core = queue_hub::local().find(ref->id());
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
      core->put_blocking(std::move(item), timeout).check();
      return;
    }
    auto& hub = client_for(actor_, hub_, key0_, key1_);
    auto id = actor_->id();
    if (buffered_)
      hub.put_buffered(id, item);
    else
      hub.call(hub_frame::put, ns, id, ns, item).check();
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
        queue_hub::local().drain();
        result = core->get_blocking(timeout);
      }
    } else {
      auto id = actor_->id();
      auto& hub = client_for(actor_, hub_, key0_, key1_);
      result = hub.call(hub_frame::get, ns, id, ns);
    }
    result.check();
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
    queue_hub::local().drain();
    return core->poll_blocking(timeout).flag;
  }
  auto id = actor_->id();
  auto& hub = client_for(actor_, hub_, key0_, key1_);
  auto result = hub.call(hub_frame::poll, ns, id, ns);
  result.check();
  return result.flag;
}

queue_ref::stats queue_ref::snapshot() const {
  if (auto core = local_core(actor_)) {
    queue_hub::local().drain(); // count what others have put
    return core->snapshot();
  }
  auto id = actor_->id();
  auto& hub = client_for(actor_, hub_, key0_, key1_);
  hub.call(hub_frame::size, -1, id).check();
  return hub.last_stats();
}

void queue_ref::close() const {
  if (auto core = local_core(actor_)) {
    core->close();
    return;
  }
  // On this thread's connection: after every put it sent.
  auto id = actor_->id();
  client_for(actor_, hub_, key0_, key1_).call(hub_frame::close, -1, id).check();
}

void queue_ref::attach(holder_role role) const {
  // An anonymous message, ordered before anything this process sends later.
  caf::anon_send(actor_, q_attach::value, static_cast<std::uint8_t>(role),
                 runtime::get().service_actor(), std::uint64_t{0}, caf::actor{});
}

void queue_ref::detach(holder_role role) const {
  // What this thread put through the hub lands before the end can close.
  if (auto* hub = hub_client::existing(hub_))
    hub->call(hub_frame::sync, -1).check();
  if (auto* stream = actor_ ? hub_client::existing(actor_->node()) : nullptr)
    stream->call(hub_frame::sync, -1).check();
  // Answered: once close() returns, the other end sees it.
  caller::for_this_thread().call(actor_, std::nullopt, q_detach::value,
                                static_cast<std::uint8_t>(role),
                                runtime::get().service_actor());
}

void queue_ref::task_done() const {
  if (auto core = local_core(actor_)) {
    core->task_done().check();
    return;
  }
  auto id = actor_->id();
  client_for(actor_, hub_, key0_, key1_).call(hub_frame::done, -1, id).check();
}

std::vector<std::size_t>
wait_any(const std::vector<queue_ref>& inboxes,
         const std::vector<std::shared_ptr<child>>& ended,
         std::optional<duration> timeout) {
  // One poll after another would wait for each in turn; instead ask all at
  // once from a dedicated actor and take the first that is ready. A process
  // tells its end through a watch on its child, undone when this returns.
  auto ns = timeout_ns(timeout);
  caf::scoped_actor self{runtime::get().system()};
  for (std::size_t i = 0; i < inboxes.size(); ++i) {
    self->monitor(inboxes[i].actor());
    self->send(inboxes[i].actor(), q_poll::value, std::uint64_t{i}, ns);
  }
  std::vector<std::pair<child*, std::uint64_t>> watches;
  for (std::size_t i = 0; i < ended.size(); ++i) {
    if (!ended[i])
      continue; // an empty sentinel: never ready
    auto me = caf::actor_cast<caf::actor>(self);
    auto index = static_cast<std::uint64_t>(inboxes.size() + i);
    auto id = ended[i]->watch([me, index](int) {
      caf::anon_send(me, caf::ok_atom::value, index, caf::make_message(true));
    });
    watches.emplace_back(ended[i].get(), id);
  }
  std::vector<std::size_t> ready;
  std::size_t answers = 0;
  bool down = false;
  bool silent = false;
  deadline until{timeout};
  // Each inbox answers (ready, or not at the timeout); a process's watch
  // only once the process has ended.
  while (ready.empty() && !down && !silent
         && (answers < inboxes.size() || !watches.empty())) {
    auto on_ok = [&](caf::ok_atom, std::uint64_t i, caf::message& m) {
      if (i < inboxes.size())
        ++answers;
      if (m.get_as<bool>(0))
        ready.push_back(static_cast<std::size_t>(i));
    };
    auto on_down = [&](caf::down_msg&) { down = true; };
    if (timeout) {
      // The inboxes' answers are due by the deadline, plus their way here.
      auto left = *until.left() + (answers < inboxes.size() ? call_grace
                                                            : duration::zero());
      self->receive(on_ok, on_down, caf::after(left) >> [&] { silent = true; });
    } else {
      self->receive(on_ok, on_down);
    }
  }
  for (auto& [c, id] : watches)
    c->unwatch(id);
  if (down && ready.empty())
    throw error(errc::owner_unreachable,
                "the process that owns a pipe end is gone");
  // One is ready: report every other one that is ready now as well.
  for (std::size_t i = 0; !ready.empty() && i < inboxes.size(); ++i)
    if (i != ready.front() && inboxes[i].poll(duration::zero()))
      ready.push_back(i);
  for (std::size_t i = 0; !ready.empty() && i < ended.size(); ++i)
    if (inboxes.size() + i != ready.front() && ended[i]
        && ended[i]->exitcode())
      ready.push_back(inboxes.size() + i);
  std::sort(ready.begin(), ready.end());
  ready.erase(std::unique(ready.begin(), ready.end()), ready.end());
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
  result.check();
  return true;
}

} // namespace actors::detail

namespace actors {

std::vector<waitable>
wait(const std::vector<waitable>& objects,
     std::optional<std::chrono::steady_clock::duration> timeout) {
  std::vector<detail::queue_ref> inboxes;
  std::vector<std::shared_ptr<detail::child>> ended;
  std::vector<std::size_t> inbox_at, ended_at; // their places in objects
  for (std::size_t i = 0; i < objects.size(); ++i) {
    if (objects[i].end_) {
      inboxes.push_back(objects[i].inbox_);
      inbox_at.push_back(i);
    } else {
      ended.push_back(objects[i].sentinel_.child());
      ended_at.push_back(i);
    }
  }
  std::vector<std::size_t> places;
  for (auto j : detail::wait_any(inboxes, ended, timeout))
    places.push_back(j < inboxes.size() ? inbox_at[j]
                                        : ended_at[j - inboxes.size()]);
  std::sort(places.begin(), places.end());
  std::vector<waitable> ready;
  for (auto i : places)
    ready.push_back(objects[i]);
  return ready;
}

} // namespace actors
