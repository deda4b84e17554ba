// Barriers (actors/sync.hpp): Python's algorithm (threading.Barrier) in
// this host's shared memory. A barrier is arena slots (lock/arena.hpp):
// its own robust mutex, its state, and a list of waiters
// (lock/waiters.hpp) used as the condition of that mutex.
//
// The state goes filling -> draining (the last party came: all leave)
// -> filling once the last one has left; resetting (reset() while parties
// wait: they leave with broken_barrier) -> filling likewise; broken (a
// timeout, abort(), a death inside a call) until reset().

#include "actors/sync.hpp"

#include "base/deadline.hpp"
#include "lock/arena.hpp"
#include "lock/waiters.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <string>
#include <utility>

namespace actors {

namespace {

enum class phase : std::int32_t { filling, draining, resetting, broken };

// Who waits in the list: a party that has arrived (its arrival counted),
// or one waiting for the previous round to drain before it arrives.
enum : std::uint32_t { not_arrived = 0, arrived = 1 };

struct state {
  std::uint32_t parties;
  phase now;
  std::uint32_t count;        // parties in the round, arrived or leaving
  std::uint32_t dead;         // of those, the dead found while filling
  std::int64_t timeout_ns;    // wait()'s default bound; -1: none
};

constexpr std::size_t max_parties = 4096;

std::uint32_t capacity_for(std::uint32_t parties) {
  // Those that arrived, and as many waiting for their round to drain.
  return 2 * parties + 8;
}

constexpr std::uint32_t head_slots = 2; // the mutex, the state

// The parts of a barrier's memory; every use holds `mtx`.
class parts {
public:
  explicit parts(char* memory)
    : mtx_(reinterpret_cast<pthread_mutex_t*>(memory)),
      st_(reinterpret_cast<state*>(memory + detail::slot_size)),
      list_(memory + head_slots * detail::slot_size,
            [this](std::uint32_t who) { left_dead(who); }) {
    take();
  }

  ~parts() {
    pthread_mutex_unlock(mtx_);
  }

  parts(const parts&) = delete;
  parts& operator=(const parts&) = delete;

  state& st() {
    return *st_;
  }

  // Python's Condition.wait on the barrier's mutex, as a party that has
  // (`arrived`) or has not yet arrived; true when notified.
  bool wait(std::uint32_t who, std::chrono::steady_clock::time_point until) {
    auto entry = list_.enter(who);
    pthread_mutex_unlock(mtx_);
    list_.sleep(entry, until);
    take();
    return list_.leave(entry);
  }

  void notify_all() {
    list_.notify(-1);
    leave_check();
  }

  // A party's end of wait() (Python's `_exit`): the last one out of a
  // drained or reset round opens the next.
  void leave_check() {
    if (st_->count == 0
        && (st_->now == phase::resetting || st_->now == phase::draining)) {
      set(phase::filling);
      list_.notify(-1);
    }
  }

  // Frees the entries of the dead (an arrived one leaves its round), and
  // opens the next round if that was the last one out.
  void reap() {
    list_.notify(0);
    leave_check();
  }

  void break_it() {
    set(phase::broken);
    notify_all();
  }

  // Every change of phase: the dead of a round that stops filling leave.
  void set(phase p) {
    if (st_->now == phase::filling && p != phase::filling) {
      st_->count -= std::min(st_->dead, st_->count);
      st_->dead = 0;
    }
    st_->now = p;
  }

private:
  void take() {
    if (detail::take_native(mtx_, false, nullptr) == EOWNERDEAD) {
      // A process died inside a call: what it was changing is unknown.
      // Its round is broken; the count is that of the parties alive.
      st_->dead = 0;
      st_->count = list_.count(arrived);
      break_it();
    }
  }

  // A waiter that died. One that had arrived still counts while the round
  // fills, and leaves it when the round ends (set); one of a round that
  // ended leaves it now.
  void left_dead(std::uint32_t who) {
    if (who != arrived)
      return;
    if (st_->now == phase::filling)
      ++st_->dead;
    else if (st_->count > 0)
      --st_->count;
  }

  pthread_mutex_t* mtx_;
  state* st_;
  detail::wait_list list_;
};

[[noreturn]] void throw_broken() {
  throw error(errc::broken_barrier,
              "the barrier is broken (a wait timed out, or abort or reset "
              "was called, or a party died inside a call)");
}

} // namespace

char* barrier::memory() const {
  if (auto* p = __atomic_load_n(&mapped_, __ATOMIC_ACQUIRE))
    return p;
  if (ref_.slot == 0)
    throw error(errc::invalid_argument, "the barrier handle is empty");
  auto* head = detail::map_slots(ref_, head_slots);
  auto parties =
    reinterpret_cast<state*>(head + detail::slot_size)->parties;
  if (parties == 0 || parties > max_parties)
    throw error(errc::invalid_argument, "the handle names no barrier");
  auto* p = detail::map_slots(
    ref_, head_slots + detail::wait_list::slots(capacity_for(parties)));
  __atomic_store_n(&mapped_, p, __ATOMIC_RELEASE);
  return p;
}

std::size_t barrier::wait(std::optional<duration> timeout) const {
  parts b{memory()};
  auto& st = b.st();
  if (!timeout && st.timeout_ns >= 0)
    timeout = std::chrono::nanoseconds{st.timeout_ns};
  auto until = detail::deadline{timeout}.when(); // none: time_point::max()
  auto timed_out = [&] { return std::chrono::steady_clock::now() >= until; };
  // The previous round drains first (Python's `_enter`). A party of it
  // that died before it left would hold it up for good: look for the dead
  // each time, and every 50 ms while waiting (the drain takes microseconds
  // unless someone died).
  auto draining = [&] {
    auto previous = [&] {
      return st.now == phase::draining || st.now == phase::resetting;
    };
    if (!previous())
      return false;
    b.reap();
    return previous();
  };
  while (draining()) {
    if (timed_out()) {
      b.break_it();
      throw_broken();
    }
    b.wait(not_arrived, std::min(until, std::chrono::steady_clock::now()
                                          + std::chrono::milliseconds{50}));
  }
  if (st.now == phase::broken)
    throw_broken();
  auto index = st.count++;
  if (index + 1 == st.parties) {
    // Python's `_release`: the action runs before anyone leaves; if it
    // throws, the round breaks and this party throws what it threw.
    std::exception_ptr failed;
    if (action_.offset != 0) {
      try {
        auto* fn = detail::from_code_ref(action_);
        if (fn == nullptr)
          throw error(errc::function_not_found,
                      "the barrier's action is not in this program");
        reinterpret_cast<void (*)()>(const_cast<void*>(fn))();
      } catch (...) {
        failed = std::current_exception();
      }
    }
    if (failed) {
      b.break_it();
      --st.count;
      b.leave_check();
      std::rethrow_exception(failed);
    }
    b.set(phase::draining);
    b.notify_all();
  } else {
    // Python's `_wait`: until the round is released, broken or reset.
    try {
      while (st.now == phase::filling) {
        if (timed_out()) {
          b.break_it();
          break;
        }
        b.wait(arrived, until);
      }
    } catch (...) { // no room to wait: this party leaves
      --st.count;
      b.leave_check();
      throw;
    }
  }
  bool failed = st.now == phase::broken || st.now == phase::resetting;
  --st.count;
  b.leave_check();
  if (failed)
    throw_broken();
  return index;
}

void barrier::reset() const {
  parts b{memory()};
  auto& st = b.st();
  if (st.count > 0) {
    if (st.now == phase::filling || st.now == phase::broken)
      b.set(phase::resetting);
  } else {
    b.set(phase::filling);
  }
  b.notify_all();
}

void barrier::abort() const {
  parts b{memory()};
  b.break_it();
}

std::size_t barrier::parties() const {
  parts b{memory()};
  return b.st().parties;
}

std::size_t barrier::n_waiting() const {
  parts b{memory()};
  return b.st().now == phase::filling ? b.st().count : 0;
}

bool barrier::broken() const {
  parts b{memory()};
  return b.st().now == phase::broken;
}

barrier make_barrier(std::size_t parties,
                     std::optional<barrier::duration> timeout) {
  return make_barrier(parties, nullptr, timeout);
}

barrier make_barrier(std::size_t parties, void (*action)(),
                     std::optional<barrier::duration> timeout) {
  if (parties == 0 || parties > max_parties)
    throw error(errc::invalid_argument,
                "a barrier's parties must be 1 to "
                  + std::to_string(max_parties) + ", not "
                  + std::to_string(parties));
  detail::code_ref action_ref;
  if (action != nullptr)
    action_ref = detail::to_code_ref(reinterpret_cast<const void*>(action));
  auto n = static_cast<std::uint32_t>(parties);
  auto [ref, memory] = detail::make_slots(
    head_slots + detail::wait_list::slots(capacity_for(n)));
  detail::init_robust_mutex(reinterpret_cast<pthread_mutex_t*>(memory),
                            PTHREAD_MUTEX_ERRORCHECK);
  auto* st = new (memory + detail::slot_size) state{};
  st->parties = n;
  st->now = phase::filling;
  st->count = 0;
  st->timeout_ns =
    timeout ? std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::max(*timeout, barrier::duration::zero()))
                .count()
            : -1;
  detail::wait_list::make(memory + head_slots * detail::slot_size,
                          capacity_for(n));
  barrier result;
  result.ref_ = ref;
  result.mapped_ = memory;
  result.action_ = std::move(action_ref);
  return result;
}

} // namespace actors
