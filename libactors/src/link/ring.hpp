#pragma once

// A single-producer single-consumer byte ring in shared memory: a sealed
// memfd that its producer creates and hands to the consumer's process over
// SCM_RIGHTS. Bytes, not frames: a frame larger than the ring streams
// through it (the producer writes what fits, the consumer copies out what
// is there, and so on), so no size limit comes from the ring.
//
// Doorbells are futex words in the ring's header, bumped only when someone
// sleeps on them (no system call while both sides are busy):
//   data_bell  consumer threads sleep on it: the reader (`sleepers`) and
//              a spare (`spare_sleepers`, a second receiver thread that
//              reads while the reader runs an actor). After a write the
//              producer wakes the reader if it sleeps, else the spare if
//              the consumer said it is `busy` running an actor, else
//              nobody (an awake reader finds the bytes before it sleeps):
//              futex bitsets pick the thread. Woken in the futex's FIFO
//              turn instead, two threads made an ask round trip with the
//              cores busy take 108 us instead of 41 (median of 36 runs),
//              and waking the spare whenever the reader was awake put a
//              third thread, on the other core, into every other trip;
//   room_bell  producer threads waiting for room sleep on it; the consumer
//              rings it after a read if `room_waiters` is not zero;
//   slots      the addressed doorbell: a thread of the consumer's process
//              that waits for a frame addressed to one actor claims a slot
//              with that actor's id and sleeps on the slot's bell; the
//              producer, after a frame for that actor, rings that bell
//              instead of the data bell.
//
// Spinning. A thread that expects an answer may spin (relax, no yield) for
// a bounded time before it sleeps, so the answer meets it awake: no
// doorbell, no wake-up through the kernel. Only such a thread spins (the
// link says which, link::spin_time), and it stops spinning where that does
// not pay (adaptive_spin). Measured with bench_links on this 2-vCPU VM
// (2026-12-07), 20 us against none: actor to actor 4.7-7.1 against 29.9
// us idle (CPU 9.5-14 against 32.9), 22-41 against 111-154 us with two
// burners, 52-59 against 68-69 us with four; a blocking call 10 against
// 27 us idle, no better with burners (49-64 against 35-51 us). An earlier
// run of a raw ring spinning 50 us on a loaded machine (147-205 against
// 35-37 us) is why nothing spun before: the woken peer landed on the
// spinner's core. A spinner that keeps missing no longer spins, which
// bounds that case.
//
// The peer's process can write anything into the header: head and tail are
// checked on every use (a ring that claims more than its capacity is
// broken), and bytes are copied out before anyone parses them.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "base/relax.hpp"

namespace actors::detail::links {

/// The header at the start of a ring's memory (one page).
struct ring_header {
  static constexpr std::uint64_t magic_value = 0x31474e4952544341; // ACTRING1
  static constexpr int slot_count = 16;

  struct slot {
    std::atomic<std::uint64_t> actor; // 0 = free
    std::atomic<std::uint32_t> bell;
    std::uint32_t unused;
  };

  std::uint64_t magic;
  std::uint64_t capacity; // bytes of data, a power of two
  /// Bytes the producer has written, ever.
  alignas(64) std::atomic<std::uint64_t> head;
  /// Bytes the consumer has read, ever.
  alignas(64) std::atomic<std::uint64_t> tail;
  alignas(64) std::atomic<std::uint32_t> data_bell;
  std::atomic<std::uint32_t> sleepers;
  std::atomic<std::uint32_t> spare_sleepers;
  /// Set by the consumer while one of its threads runs an actor.
  std::atomic<std::uint32_t> busy;
  std::atomic<std::uint32_t> room_bell;
  std::atomic<std::uint32_t> room_waiters;
  /// Set by the producer's side when it holds bytes it could not write: the
  /// consumer then rings the data bell of the ring going back (see link).
  std::atomic<std::uint32_t> nudge;
  /// Slots in use (a hint: zero means none to look at).
  alignas(64) std::atomic<std::uint32_t> callers;
  slot slots[slot_count];
};

static_assert(sizeof(ring_header) <= 4096);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

/// One mapping of a ring: the producer's (made by create) or the
/// consumer's (made by attach). Movable, not copyable; unmaps and closes on
/// destruction.
class ring {
public:
  using time_point = std::chrono::steady_clock::time_point;

  static constexpr std::size_t header_size = 4096;

  ring() = default;
  ring(ring&& other) noexcept;
  ring& operator=(ring&& other) noexcept;
  ring(const ring&) = delete;
  ring& operator=(const ring&) = delete;
  ~ring();

  /// A new ring of `capacity` bytes (rounded up to a power of two, at
  /// least 4 KiB) in a sealed memfd. Throws actors::error on failure.
  static ring create(std::size_t capacity);

  /// Maps a ring another process made, given its memfd (this takes
  /// ownership of `fd`). Returns an empty ring unless `fd` is a memfd sealed
  /// against shrinking and growing, of a ring's size, with a valid header:
  /// a peer that could shrink it later could make us fault.
  static ring attach(int fd);

  explicit operator bool() const noexcept {
    return hdr_ != nullptr;
  }

  int fd() const noexcept {
    return fd_;
  }

  std::size_t capacity() const noexcept {
    return capacity_;
  }

  ring_header& header() const noexcept {
    return *hdr_;
  }

  // -- producer side
  // -----------------------------------------------------------

  /// Copies as much of [data, data + size) as fits and publishes it;
  /// returns the bytes written, or -1 if the consumer broke the ring.
  std::ptrdiff_t write_some(const char* data, std::size_t size);

  /// Bytes that fit now (0 if the consumer broke the ring).
  std::size_t room() const noexcept;

  /// Rings the data bell if a consumer sleeps, or the bell of the slot
  /// claimed for `actor` (when not 0) if there is one; true if it rang that
  /// slot (then the data bell stays quiet).
  bool notify_data(std::uint64_t actor);

  /// Sleeps until the consumer has read something or `deadline` passed,
  /// unless there is room for `want` bytes already.
  void wait_room(std::size_t want, time_point deadline);

  // -- consumer side
  // -----------------------------------------------------------

  /// Bytes available to read; -1 if the producer broke the ring.
  std::int64_t readable() const noexcept;

  /// Copies up to `max` bytes into `out` and frees them in the ring;
  /// returns the count, or -1 if the producer broke the ring.
  std::ptrdiff_t read_some(char* out, std::size_t max);

  /// After a read: wakes producers waiting for room; true if the producer
  /// asked for a nudge (see ring_header::nudge).
  bool notify_room();

  /// Sleeps on the data bell until something is readable or `deadline`
  /// passed (`stop()` true also ends the wait: it is checked after
  /// announcing the sleep, so a waker that sets it and rings is not lost).
  /// The consumer's spare receiver thread passes `spare` (see data_bell).
  /// Spins for `spin` first (see "Spinning" above); true if the spin
  /// found the bytes (or `stop()`), false after a sleep.
  template <class Stop>
  bool wait_data(time_point deadline, Stop stop, bool spare = false,
                 std::chrono::nanoseconds spin = {});

  /// Rings the data bell: wakes a consumer thread if one is needed (see
  /// data_bell; the consumer's own threads call it too).
  void ring_data();

  /// Consumer: one of this side's threads starts (true) or stops running
  /// an actor; the spare is woken at once for bytes already there.
  void set_busy(bool busy);

  /// Claims a slot for `actor`; -1 if all are taken.
  int claim_slot(std::uint64_t actor);

  /// Releases a slot claim_slot returned.
  void release_slot(int index);

  /// Rings a slot's bell (the consumer's process does it too, when one of
  /// its threads delivered the frame a caller waits for).
  void ring_slot(int index);

  std::atomic<std::uint32_t>& slot_bell(int index) noexcept {
    return hdr_->slots[index].bell;
  }

private:
  static constexpr std::uint32_t reader_bit = 1;
  static constexpr std::uint32_t spare_bit = 2;

  void wait_data_impl(std::uint32_t seen, time_point deadline, bool spare);
  // Bumps the data bell and wakes one sleeper of `bits`.
  void wake_data(std::uint32_t bits);

  ring_header* hdr_ = nullptr;
  char* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t map_size_ = 0;
  int fd_ = -1;
};

template <class Stop>
bool ring::wait_data(time_point deadline, Stop stop, bool spare,
                     std::chrono::nanoseconds spin) {
  auto& h = *hdr_;
  if (spin_until_ready([&] { return readable() != 0 || stop(); }, spin))
    return true;
  auto& count = spare ? h.spare_sleepers : h.sleepers;
  auto seen = h.data_bell.load(std::memory_order_seq_cst);
  count.fetch_add(1, std::memory_order_seq_cst);
  // Announced: a producer that writes from now on rings.
  if (readable() == 0 && !stop())
    wait_data_impl(seen, deadline, spare);
  count.fetch_sub(1, std::memory_order_seq_cst);
  return false;
}

} // namespace actors::detail::links
