// The actor's side of actors/mailbox.hpp: its subscriptions and posts,
// run by the default handler it installs. The queue's side is
// queue/queue_actor.cpp.

#include "actors/mailbox.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <caf/scheduled_actor.hpp>

namespace actors::detail {

namespace {

using q_run = caf::atom_constant<caf::atom("q_run")>;

// What one actor subscribed to and was posted: read by its default handler
// (the actor's thread), posts added from any thread.
struct mailbox_state {
  struct sub {
    caf::actor queue;
    caf::actor watcher; // tells the owner's death as the end
    subscriber_fns fns;
  };
  std::map<std::uint64_t, sub> subs; // by id; the actor's thread only
  std::mutex mtx;                    // guards posts
  std::map<std::uint64_t, std::function<void()>> posts;
  std::uint64_t next_post = 1;
};

std::mutex registry_mtx;
std::unordered_map<caf::actor_id, std::shared_ptr<mailbox_state>> registry;

std::shared_ptr<mailbox_state> find(caf::actor_id id) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  auto i = registry.find(id);
  return i == registry.end() ? nullptr : i->second;
}

error end_error(const caf::error& err, const error_names& names) {
  auto code = errc_of(err).value_or(errc::owner_unreachable);
  if (code == errc::closed)
    code = names.when_closed_on_get;
  return error(code, describe(err));
}

// The message `xs` for state `st` of `self`: true if it was one.
bool dispatch(caf::event_based_actor* self, mailbox_state& st,
              caf::type_erased_tuple& xs) {
  if (xs.match_elements<q_items, std::uint64_t, std::uint64_t,
                        std::vector<value>>()) {
    auto id = xs.get_as<std::uint64_t>(1);
    auto i = st.subs.find(id);
    if (i == st.subs.end())
      return true; // none: a subscription ends with q_end, its last message
    auto queue = i->second.queue;
    auto on_item = i->second.fns.on_item; // a callback may cancel the sub
    auto seq = xs.get_as<std::uint64_t>(2);
    for (auto item : xs.get_as<std::vector<value>>(3)) { // copies share
      // An item is taken once the actor runs on: one after the callback
      // that made it quit goes back to the queue with the actor's end.
      // (CAF 0.17's quit() sets is_shutting_down_flag.)
      if (self->getf(caf::abstract_actor::is_shutting_down_flag
                     | caf::abstract_actor::is_terminated_flag))
        break;
      // Taken: the queue learns it before the callback runs, so an item is
      // never handed out again once a callback saw it.
      self->send(queue, q_ack::value, id, seq++);
      on_item(item);
    }
    return true;
  }
  if (xs.match_elements<q_end, std::uint64_t, caf::error>()) {
    auto i = st.subs.find(xs.get_as<std::uint64_t>(1));
    if (i == st.subs.end())
      return true;
    auto sub = std::move(i->second);
    st.subs.erase(i);
    caf::anon_send_exit(sub.watcher, caf::exit_reason::user_shutdown);
    sub.fns.on_end(end_error(xs.get_as<caf::error>(2), sub.fns.names));
    return true;
  }
  if (xs.match_elements<q_run, std::uint64_t>()) {
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> guard{st.mtx};
      auto i = st.posts.find(xs.get_as<std::uint64_t>(1));
      if (i == st.posts.end())
        return true;
      fn = std::move(i->second);
      st.posts.erase(i);
    }
    fn();
    return true;
  }
  return false;
}

// The state of `self`, made with its default handler on first use.
std::shared_ptr<mailbox_state> state_of(caf::event_based_actor* self) {
  if (auto st = find(self->id()))
    return st;
  auto st = std::make_shared<mailbox_state>();
  {
    std::lock_guard<std::mutex> guard{registry_mtx};
    registry.emplace(self->id(), st);
  }
  auto id = self->id();
  self->attach_functor([id] {
    std::lock_guard<std::mutex> guard{registry_mtx};
    registry.erase(id);
  });
  self->set_default_handler(
    [self, st](caf::scheduled_actor* s,
               caf::message_view& xs) -> caf::result<caf::message> {
      if (dispatch(self, *st, xs.content()))
        return caf::message{};
      return caf::print_and_drop(s, xs);
    });
  return st;
}

std::atomic<std::uint64_t> next_subscription{1};

} // namespace

std::uint64_t subscribe(caf::event_based_actor* self,
                        const caf::actor& queue_actor, std::size_t credit,
                        subscriber_fns fns) {
  if (!queue_actor)
    throw error(errc::invalid_argument,
                "subscribe: the handle refers to no queue");
  if (credit < 1 || credit > 1024)
    throw error(errc::invalid_argument,
                "subscribe: credit must be 1 to 1024, not "
                  + std::to_string(credit));
  auto st = state_of(self);
  auto id = next_subscription.fetch_add(1, std::memory_order_relaxed);
  // The owner's death ends the subscription: the queue can no longer tell.
  auto me = caf::actor_cast<caf::actor_addr>(self);
  auto watcher = self->home_system().spawn(
    [queue_actor, me, id](caf::event_based_actor* w) -> caf::behavior {
      auto subscriber = caf::actor_cast<caf::actor>(me);
      if (!subscriber) { // it has ended already
        w->quit();
        return {};
      }
      w->monitor(subscriber);
      w->monitor(queue_actor);
      w->set_down_handler([w, queue_actor, me, id](caf::down_msg& dm) {
        auto subscriber = caf::actor_cast<caf::actor>(me);
        if (dm.source == queue_actor.address() && subscriber)
          caf::anon_send(subscriber, q_end::value, id,
                         make_error(errc::owner_unreachable,
                                    "the queue's owner has ended ("
                                      + describe(dm.reason) + ")"));
        w->quit();
      });
      return {[](caf::unit_t) {}};
    });
  st->subs.emplace(id, mailbox_state::sub{queue_actor, watcher,
                                          std::move(fns)});
  self->send(queue_actor, q_sub::value, id,
             static_cast<std::uint64_t>(credit));
  return id;
}

void unsubscribe(caf::event_based_actor* self, const caf::actor& queue_actor,
                 std::uint64_t id) {
  auto st = find(self->id());
  if (st == nullptr)
    return;
  if (st->subs.count(id) == 0)
    return;
  // Items already in flight still arrive and are taken as before; the
  // queue ends the subscription after them (q_end, errc::cancelled).
  self->send(queue_actor, q_unsub::value, id);
}

bool post(const caf::actor_addr& self, std::function<void()> fn) {
  auto hdl = caf::actor_cast<caf::actor>(self);
  if (!hdl)
    return false;
  auto st = find(self.id());
  if (st == nullptr)
    return false;
  std::uint64_t token = 0;
  {
    std::lock_guard<std::mutex> guard{st->mtx};
    token = st->next_post++;
    st->posts.emplace(token, std::move(fn));
  }
  caf::anon_send(hdl, q_run::value, token);
  return true;
}

void enable_posts(caf::event_based_actor* self) {
  state_of(self);
}

} // namespace actors::detail
