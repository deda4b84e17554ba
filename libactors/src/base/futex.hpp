#pragma once

// The two futex calls, on 32-bit words in memory shared between processes
// (so never FUTEX_PRIVATE_FLAG): the links' doorbells, the conditions and
// barriers of lock/. A waiter passes the
// value it last saw; the kernel puts it to sleep only if the word still
// holds that value, so a bump between the check and the sleep is not lost.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace actors::detail {

/// Every waiter, for futex_wake.
constexpr std::uint32_t futex_any = 0xffffffffu;

/// Sleeps while `*word == seen`, at most until `deadline` (a time_point of
/// steady_clock; max() = no bound), as one of the waiters `bits` names
/// (futex_wake wakes only waiters whose bits meet its own). Returns on a
/// wake, a changed word, a signal or the deadline: callers re-check their
/// condition.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t seen,
                std::chrono::steady_clock::time_point deadline,
                std::uint32_t bits = futex_any);

/// Wakes up to `n` threads (of any process) sleeping on `word` whose bits
/// meet `bits`; returns how many it woke.
int futex_wake(std::atomic<std::uint32_t>& word, int n,
               std::uint32_t bits = futex_any);

} // namespace actors::detail
