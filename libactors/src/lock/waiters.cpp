// Waiters in shared memory; lock/waiters.hpp says how they work.

#include "lock/waiters.hpp"

#include "actors/error.hpp"
#include "base/futex.hpp"
#include "lock/arena.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

#include <pthread.h>

namespace actors::detail {

namespace {

enum : std::uint32_t { free_entry = 0, waiting = 1, notified = 2 };

} // namespace

struct wait_list::head {
  std::uint32_t capacity;
  std::uint64_t next_ticket; // the next waiter's place in line
};

struct wait_list::entry {
  pthread_mutex_t alive;            // held by the waiter while it waits
  std::atomic<std::uint32_t> state; // free_entry, waiting or notified
  std::uint32_t tag;                // what the owner marked it with
  std::uint64_t ticket;             // its place in line
};

void wait_list::make(char* memory, std::uint32_t capacity) {
  static_assert(sizeof(head) <= slot_size && sizeof(entry) <= slot_size);
  wait_list list{memory};
  list.top().capacity = capacity;
  for (std::uint32_t i = 0; i < capacity; ++i)
    init_robust_mutex(&list.at(i).alive, PTHREAD_MUTEX_ERRORCHECK);
}

wait_list::head& wait_list::top() const {
  return *reinterpret_cast<head*>(memory_);
}

// The entries lie one per slot, after the head's.
wait_list::entry& wait_list::at(std::uint32_t i) const {
  return *reinterpret_cast<entry*>(memory_ + (i + 1) * slot_size);
}

std::uint32_t wait_list::capacity() const {
  return top().capacity;
}

template <class F>
void wait_list::scan(F&& living) {
  for (std::uint32_t i = 0; i < capacity(); ++i) {
    auto& e = at(i);
    if (e.state.load() == free_entry)
      continue;
    // A waiter holds its entry's mutex while it waits: a try to lock it
    // fails while the waiter lives, and succeeds with EOWNERDEAD once its
    // thread has ended.
    auto rc = pthread_mutex_trylock(&e.alive);
    if (rc == EBUSY || rc == EDEADLK) { // EDEADLK: the caller's own
      living(i);
      continue;
    }
    if (rc == EOWNERDEAD)
      pthread_mutex_consistent(&e.alive);
    e.state.store(free_entry);
    if (rc == 0 || rc == EOWNERDEAD)
      pthread_mutex_unlock(&e.alive);
    if (rc == EOWNERDEAD && on_dead_)
      on_dead_(e.tag);
  }
}

std::uint32_t wait_list::enter(std::uint32_t tag) {
  for (int round = 0; round < 2; ++round) {
    for (std::uint32_t i = 0; i < capacity(); ++i) {
      auto& e = at(i);
      if (e.state.load() != free_entry)
        continue;
      auto rc = pthread_mutex_trylock(&e.alive);
      if (rc == EOWNERDEAD)
        pthread_mutex_consistent(&e.alive);
      else if (rc != 0)
        continue; // held, though free: skip it
      e.tag = tag;
      e.ticket = top().next_ticket++;
      e.state.store(waiting);
      return i;
    }
    // Full: the dead may hold entries still.
    scan([](std::uint32_t) {});
  }
  throw error(errc::invalid_argument,
              "more than " + std::to_string(capacity())
                + " threads would wait at once (the most it was made for)");
}

void wait_list::sleep(std::uint32_t i,
                      std::chrono::steady_clock::time_point deadline) {
  auto& e = at(i);
  while (e.state.load() == waiting
         && std::chrono::steady_clock::now() < deadline)
    futex_wait(e.state, waiting, deadline);
}

bool wait_list::leave(std::uint32_t i) {
  auto& e = at(i);
  bool was_notified = e.state.load() == notified;
  e.state.store(free_entry);
  pthread_mutex_unlock(&e.alive);
  return was_notified;
}

int wait_list::notify(int n) {
  std::vector<std::uint32_t> line;
  scan([&](std::uint32_t i) {
    if (at(i).state.load() == waiting)
      line.push_back(i);
  });
  std::sort(line.begin(), line.end(), [this](auto a, auto b) {
    return at(a).ticket < at(b).ticket;
  });
  if (n >= 0 && line.size() > static_cast<std::size_t>(n))
    line.resize(static_cast<std::size_t>(n));
  for (auto i : line) {
    auto& e = at(i);
    e.state.store(notified);
    futex_wake(e.state, 1);
  }
  return static_cast<int>(line.size());
}

std::uint32_t wait_list::count(std::uint32_t tag) {
  std::uint32_t result = 0;
  scan([&](std::uint32_t i) { result += at(i).tag == tag ? 1 : 0; });
  return result;
}

} // namespace actors::detail
