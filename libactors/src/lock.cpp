// The lock actor.
//
// Protocol (see call.hpp for ids and answers; S is the caller actor of the
// calling thread, so "the holder" is a thread of some process):
//   (l_acquire, id, timeout_ns) -> ok(bool previous_owner_died)
//                                  | fail timeout | fail would_deadlock
//   (l_release, id)             -> ok() | fail not_owner
// Waiters are served in FIFO order; the actor enforces each deadline. It
// watches holders and waiters: a holder that dies (its thread or process)
// hands the lock to the next waiter with previous_owner_died set. A
// reentrant lock (rlock) counts its holder's acquisitions; a plain one
// refuses a second acquisition by its holder instead of waiting forever.

#include "actors/lock.hpp"

#include <deque>
#include <set>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "call.hpp"
#include "runtime.hpp"

namespace actors {

namespace {

using l_acquire = caf::atom_constant<caf::atom("l_acquire")>;
using l_release = caf::atom_constant<caf::atom("l_release")>;
using l_expire = caf::atom_constant<caf::atom("l_expire")>;

struct waiter {
  caf::actor who;
  std::uint64_t id;
  std::uint64_t serial;
};

struct lock_state {
  bool reentrant = false;
  caf::actor holder;
  int depth = 0; // the holder's acquisitions not yet released
  bool owner_died = false; // the next grant reports a dead previous holder
  std::deque<waiter> waiters;
  std::set<caf::actor_addr> watched;
  std::uint64_t next_serial = 1;
  static constexpr const char* name = "actors.lock";
};

caf::behavior lock_actor(caf::stateful_actor<lock_state>* self,
                         bool reentrant) {
  self->state.reentrant = reentrant;
  auto ok = [self](const caf::actor& who, std::uint64_t id,
                   caf::message payload = caf::message{}) {
    self->send(who, caf::ok_atom::value, id, std::move(payload));
  };
  auto grant = [self, ok](const caf::actor& who, std::uint64_t id) {
    auto& s = self->state;
    s.holder = who;
    s.depth = 1;
    ok(who, id, caf::make_message(s.owner_died));
    s.owner_died = false;
  };
  auto next = [self, grant] {
    auto& s = self->state;
    if (!s.holder && !s.waiters.empty()) {
      auto w = std::move(s.waiters.front());
      s.waiters.pop_front();
      grant(w.who, w.id);
    }
  };
  auto watch = [self](const caf::actor& who) {
    if (self->state.watched.insert(who.address()).second)
      self->monitor(who);
  };
  self->set_down_handler([self, next](caf::down_msg& dm) {
    auto& s = self->state;
    s.watched.erase(dm.source);
    s.waiters.erase(std::remove_if(s.waiters.begin(), s.waiters.end(),
                                   [&](const waiter& w) {
                                     return w.who.address() == dm.source;
                                   }),
                    s.waiters.end());
    if (s.holder && s.holder.address() == dm.source) {
      s.holder = nullptr;
      s.owner_died = true;
      next();
    }
  });
  return {
    [=](l_acquire, std::uint64_t id, std::int64_t ns) {
      auto& s = self->state;
      auto who = caf::actor_cast<caf::actor>(self->current_sender());
      watch(who);
      if (!s.holder && s.waiters.empty())
        return grant(who, id);
      if (s.holder == who) {
        if (!s.reentrant)
          return self->send(who, detail::fail_atom::value, id,
                            detail::make_error(errc::would_deadlock,
                                               "this thread already holds the "
                                               "lock (an rlock may be "
                                               "acquired again)"));
        ++s.depth;
        return ok(who, id, caf::make_message(false));
      }
      if (ns == 0)
        return self->send(who, detail::fail_atom::value, id,
                          detail::make_error(errc::timeout,
                                             "the lock is held"));
      auto serial = s.next_serial++;
      if (ns > 0)
        self->delayed_send(self, std::chrono::nanoseconds{ns},
                           l_expire::value, serial);
      s.waiters.push_back(waiter{who, id, serial});
    },
    [=](l_release, std::uint64_t id) {
      auto& s = self->state;
      auto who = caf::actor_cast<caf::actor>(self->current_sender());
      if (s.holder != who)
        return self->send(who, detail::fail_atom::value, id,
                          detail::make_error(errc::not_owner,
                                             "unlock of a lock this thread "
                                             "does not hold"));
      ok(who, id);
      if (--s.depth > 0)
        return;
      s.holder = nullptr;
      next();
    },
    [=](l_expire, std::uint64_t serial) {
      auto& s = self->state;
      for (auto i = s.waiters.begin(); i != s.waiters.end(); ++i)
        if (i->serial == serial) {
          self->send(i->who, detail::fail_atom::value, i->id,
                     detail::make_error(errc::timeout,
                                        "the lock stayed held"));
          s.waiters.erase(i);
          return;
        }
    },
  };
}

std::int64_t to_ns(std::optional<detail::lock_handle::duration> timeout) {
  if (!timeout)
    return -1;
  if (*timeout < detail::lock_handle::duration::zero())
    throw error(errc::invalid_argument, "a timeout must not be negative");
  return std::chrono::duration_cast<std::chrono::nanoseconds>(*timeout)
    .count();
}

caf::actor spawn_lock(bool reentrant) {
  return detail::runtime::get().spawn_service(
    [reentrant](caf::actor_system& sys) {
      return sys.spawn(lock_actor, reentrant);
    });
}

} // namespace

namespace detail {

lock_handle::acquired lock_handle::acquire(std::optional<duration> timeout) {
  try {
    auto answer = detail::caller::of_this_thread().call(
      actor_, timeout, l_acquire::value, to_ns(timeout));
    return answer.get_as<bool>(0) ? acquired::previous_owner_died
                                  : acquired::yes;
  } catch (const error& e) {
    if (e.code() == errc::timeout && timeout)
      return acquired::no;
    throw;
  }
}

void lock_handle::release() {
  caller::of_this_thread().call(actor_, std::nullopt, l_release::value);
}

} // namespace detail

mutex make_lock() {
  mutex result;
  result.actor_ = spawn_lock(false);
  return result;
}

rlock make_rlock() {
  rlock result;
  result.actor_ = spawn_lock(true);
  return result;
}

} // namespace actors
