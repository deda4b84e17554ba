#include "node/scheduler.hpp"

#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/detail/set_thread_name.hpp>

namespace actors::detail {

// -- quiet_clock --------------------------------------------------------------

template <class Fn>
void quiet_clock::file(time_point t, Fn fn) {
  bool wake;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    fn();
    wake = t < wake_at_;
    if (wake)
      wake_at_ = t; // one notify for it
  }
  if (wake)
    cv_.notify_one();
}

template <class Fn>
void quiet_clock::drop(Fn fn) {
  schedule_map dropped;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    fn(dropped);
  }
}

template <class Pred>
void quiet_clock::take(caf::abstract_actor* self, Pred pred,
                       schedule_map& out) {
  auto i = lookup(self->id(), [&](const actor_lookup_map::value_type& x) {
    return pred(*x.second->second);
  });
  if (i != actor_lookup_.end()) {
    out.emplace(i->second->first, std::move(i->second->second));
    schedule_.erase(i->second);
    actor_lookup_.erase(i);
  }
}

namespace {

// The actor's ordinary timeout of `type`.
auto ordinary_of(caf::atom_value type) {
  return [type](const caf::detail::simple_actor_clock::delayed_event& x) {
    using ordinary = caf::detail::simple_actor_clock::ordinary_timeout;
    return x.subtype == caf::detail::simple_actor_clock::ordinary_timeout_type
           && static_cast<const ordinary&>(x).type == type;
  };
}

// The actor's timeout of request `id`.
auto request_of(caf::message_id id) {
  return [id](const caf::detail::simple_actor_clock::delayed_event& x) {
    using request = caf::detail::simple_actor_clock::request_timeout;
    return x.subtype == caf::detail::simple_actor_clock::request_timeout_type
           && static_cast<const request&>(x).id == id;
  };
}

} // namespace

void quiet_clock::set_ordinary_timeout(time_point t, caf::abstract_actor* self,
                                       caf::atom_value type, uint64_t id) {
  // Replaces the actor's earlier timeout of this type, which is destroyed
  // outside the lock.
  schedule_map dropped;
  file(t, [&] {
    take(self, ordinary_of(type), dropped);
    super::set_ordinary_timeout(t, self, type, id);
  });
}

void quiet_clock::set_multi_timeout(time_point t, caf::abstract_actor* self,
                                    caf::atom_value type, uint64_t id) {
  file(t, [&] { super::set_multi_timeout(t, self, type, id); });
}

void quiet_clock::set_request_timeout(time_point t, caf::abstract_actor* self,
                                      caf::message_id id) {
  file(t, [&] { super::set_request_timeout(t, self, id); });
}

void quiet_clock::schedule_message(time_point t,
                                   caf::strong_actor_ptr receiver,
                                   caf::mailbox_element_ptr content) {
  file(t, [&] {
    super::schedule_message(t, std::move(receiver), std::move(content));
  });
}

void quiet_clock::schedule_message(time_point t, caf::group target,
                                   caf::strong_actor_ptr sender,
                                   caf::message content) {
  file(t, [&] {
    super::schedule_message(t, std::move(target), std::move(sender),
                            std::move(content));
  });
}

// A cancelled deadline that run() sleeps for wakes it in vain once: no
// notify for cancellations.

void quiet_clock::cancel_ordinary_timeout(caf::abstract_actor* self,
                                          caf::atom_value type) {
  drop([&](schedule_map& dropped) { take(self, ordinary_of(type), dropped); });
}

void quiet_clock::cancel_request_timeout(caf::abstract_actor* self,
                                         caf::message_id id) {
  drop([&](schedule_map& dropped) { take(self, request_of(id), dropped); });
}

void quiet_clock::cancel_timeouts(caf::abstract_actor* self) {
  drop([&](schedule_map& dropped) {
    auto range = actor_lookup_.equal_range(self->id());
    for (auto i = range.first; i != range.second; ++i) {
      dropped.emplace(i->second->first, std::move(i->second->second));
      schedule_.erase(i->second);
    }
    actor_lookup_.erase(range.first, range.second);
  });
}

void quiet_clock::cancel_all() {
  drop([&](schedule_map& dropped) {
    dropped.swap(schedule_);
    actor_lookup_.clear();
  });
}

void quiet_clock::run() {
  std::vector<unique_delayed_event_ptr> due;
  std::unique_lock<std::mutex> guard{mtx_};
  while (!stopped_) {
    auto t = now();
    auto i = schedule_.begin();
    for (; i != schedule_.end() && i->first <= t; i = schedule_.erase(i)) {
      if (i->second->backlink != actor_lookup_.end())
        actor_lookup_.erase(i->second->backlink);
      due.push_back(std::move(i->second));
    }
    if (!due.empty()) {
      // Shipped outside the lock: an enqueue may run code that sets or
      // cancels timeouts.
      wake_at_ = time_point::min();
      guard.unlock();
      for (auto& x : due)
        ship(*x);
      due.clear();
      guard.lock();
      continue;
    }
    if (schedule_.empty()) {
      wake_at_ = time_point::max();
      cv_.wait(guard);
    } else {
      wake_at_ = schedule_.begin()->first;
      cv_.wait_until(guard, wake_at_);
    }
    wake_at_ = time_point::min();
  }
}

void quiet_clock::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopped_ = true;
  }
  cv_.notify_all();
  cancel_all();
}

// -- scheduler ----------------------------------------------------------------

void scheduler::start() {
  thread_ = std::thread{[this] {
    caf::detail::set_thread_name("actors.clock");
    system().thread_started();
    clock_.run();
    system().thread_terminates();
  }};
  try {
    super::start();
  } catch (...) {
    // No thread for a worker (ulimit -v or -u): the system is not made,
    // and a joinable thread must not be destroyed (std::terminate).
    clock_.stop();
    thread_.join();
    throw;
  }
}

void scheduler::stop() {
  super::stop();
  clock_.stop();
  if (thread_.joinable())
    thread_.join();
}

} // namespace actors::detail
