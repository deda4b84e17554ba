// Conditions (actors/sync.hpp): the user's lock, and a list of waiters
// (lock/waiters.hpp) in this host's shared memory.

#include "actors/sync.hpp"

#include "base/deadline.hpp"
#include "lock/arena.hpp"
#include "lock/waiters.hpp"

#include <cerrno>
#include <limits>

#include <unistd.h>

namespace actors {

namespace {

// Throws unless the calling thread holds `m`; `what` names the call.
void require_holder(pthread_mutex_t* m, const char* what) {
  // glibc records the holder's thread id (as take_native relies on).
  if (m->__data.__owner != ::gettid())
    throw error(errc::not_owner,
                std::string{what}
                  + " on a condition whose lock this thread does not hold");
}

// A bound of decades is none (and the clock's sum cannot overflow).
std::chrono::steady_clock::time_point
deadline_of(std::optional<std::chrono::steady_clock::duration> timeout) {
  if (!timeout || *timeout >= std::chrono::hours{24 * 365 * 30})
    return std::chrono::steady_clock::time_point::max();
  return detail::deadline{timeout}.when();
}

} // namespace

char* condition::waiters() const {
  if (auto* p = __atomic_load_n(&waiters_mapped_, __ATOMIC_ACQUIRE))
    return p;
  if (waiters_.slot == 0)
    throw error(errc::invalid_argument, "the condition handle is empty");
  auto* head = detail::map_slots(waiters_, 1);
  auto capacity = detail::wait_list{head}.capacity();
  auto* p = detail::map_slots(waiters_, detail::wait_list::slots(capacity));
  __atomic_store_n(&waiters_mapped_, p, __ATOMIC_RELEASE);
  return p;
}

bool condition::wait(std::optional<duration> timeout) {
  auto until = deadline_of(timeout);
  auto* list_memory = waiters();
  auto* m = native();
  require_holder(m, "wait");
  detail::wait_list list{list_memory};
  auto entry = list.enter();
  // An rlock is released as often as it was taken, and taken back so.
  auto depth = recursive_ ? m->__data.__count : 1u;
  for (unsigned i = 0; i < depth; ++i)
    pthread_mutex_unlock(m);
  list.sleep(entry, until);
  bool owner_died = false;
  for (unsigned i = 0; i < depth; ++i)
    owner_died |= detail::take_native(m, false, nullptr) == EOWNERDEAD;
  remember(owner_died ? acquired::previous_owner_died : acquired::yes);
  return list.leave(entry);
}

void condition::notify(int n) {
  if (n <= 0)
    return;
  auto* list_memory = waiters();
  require_holder(native(), "notify");
  detail::wait_list{list_memory}.notify(n);
}

void condition::notify_all() {
  auto* list_memory = waiters();
  require_holder(native(), "notify_all");
  detail::wait_list{list_memory}.notify(-1);
}

condition make_condition(const detail::lock_handle& lock, bool recursive,
                         std::uint32_t max_waiters) {
  if (max_waiters == 0)
    throw error(errc::invalid_argument,
                "a condition needs room for at least one waiter");
  condition result;
  static_cast<detail::lock_handle&>(result) = lock;
  result.recursive_ = recursive;
  auto [ref, memory] =
    detail::make_slots(detail::wait_list::slots(max_waiters));
  detail::wait_list::make(memory, max_waiters);
  result.waiters_ = ref;
  result.waiters_mapped_ = memory;
  return result;
}

condition make_condition(std::uint32_t max_waiters) {
  return make_condition(make_rlock(), true, max_waiters);
}

condition make_condition(const lock& l, std::uint32_t max_waiters) {
  return make_condition(l, false, max_waiters);
}

condition make_condition(const rlock& l, std::uint32_t max_waiters) {
  return make_condition(l, true, max_waiters);
}

} // namespace actors
