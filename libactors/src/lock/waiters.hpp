#pragma once

// The threads waiting on a condition or a barrier (actors/sync.hpp), kept
// in slots of a lock arena (lock/arena.hpp) so that every process of the
// host sees them.
//
// A waiter takes an entry: it locks the entry's robust mutex, which it
// holds while it waits, marks the entry waiting and sleeps on the entry's
// state word. `notify` marks the oldest waiting entries notified and wakes
// exactly those threads. A waiter that died (its thread or process ended)
// is told by its mutex: a try to lock it succeeds with EOWNERDEAD instead
// of failing with EBUSY. `notify` passes such entries over, and frees them,
// so a dead waiter never swallows a notification and never fills the list
// for good.
//
// Every call except the sleep itself is made holding the guarding mutex
// (the condition's lock, the barrier's own mutex); the sleep releases it
// and takes it back.
//
//   wait_list::slots(capacity)   how many arena slots a list takes
//   wait_list::make(memory, c)   lays out a new list in those slots
//   wait_list{memory, on_dead}   the list there; on_dead(tag) is told of
//                                each dead waiter found (and freed)
//   enter(tag) -> entry          the calling thread waits from now on
//   sleep(entry, deadline)       until notified or the deadline
//   leave(entry) -> notified?    stops waiting
//   notify(n)                    wakes the n oldest living waiters
//   count(tag)                   the living waiters of a tag

#include <chrono>
#include <cstdint>
#include <functional>
#include <utility>

namespace actors::detail {

class wait_list {
public:
  /// The arena slots (lock/arena.hpp) a list of `capacity` waiters takes.
  static std::uint32_t slots(std::uint32_t capacity) {
    return 1 + capacity;
  }

  /// Lays out a new list of `capacity` waiters in `memory`: zeroed
  /// `slots(capacity)` arena slots.
  static void make(char* memory, std::uint32_t capacity);

  /// The list laid out in `memory`. `on_dead(tag)` is called, holding the
  /// guarding mutex, for each waiter found dead, with the tag it entered
  /// with; its entry is then free.
  explicit wait_list(char* memory,
                     std::function<void(std::uint32_t)> on_dead = {})
    : memory_(memory), on_dead_(std::move(on_dead)) {
    // nop
  }

  /// How many threads can wait at once.
  std::uint32_t capacity() const;

  /// Makes the calling thread a waiter, tagged `tag` (the owner's mark);
  /// its entry. Throws `errc::invalid_argument` when `capacity()` living
  /// threads wait already.
  std::uint32_t enter(std::uint32_t tag = 0);

  /// Sleeps until `entry` is notified or `deadline` passes (max(): no
  /// bound). Call it with the guarding mutex released.
  void sleep(std::uint32_t entry,
             std::chrono::steady_clock::time_point deadline);

  /// Ends the wait of `entry` (the calling thread's); whether it was
  /// notified.
  bool leave(std::uint32_t entry);

  /// Notifies the `n` oldest waiters that live and were not notified yet
  /// (all with a negative `n`); how many it notified. Frees the entries of
  /// the dead first.
  int notify(int n);

  /// How many living threads tagged `tag` wait (notified or not).
  std::uint32_t count(std::uint32_t tag);

private:
  struct head;
  struct entry;

  head& top() const;
  entry& at(std::uint32_t i) const;

  // Frees the entries of dead waiters (telling on_dead_); the entries of
  // living ones, of any state but free.
  template <class F>
  void scan(F&& living);

  char* memory_;
  std::function<void(std::uint32_t)> on_dead_;
};

} // namespace actors::detail
