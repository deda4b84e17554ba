#pragma once

// What every supervisor of processes shares: the pool replacing its worker
// processes (pool/process_workers.cpp) and actors::supervisor restarting
// actor processes (actor/supervisor.cpp) both describe a death the same
// way and both give up when deaths come faster than their restart
// intensity allows.

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>

namespace actors::detail {

/// "killed by signal 11 (SIGSEGV)", "exit code 3", or, for a process whose
/// status is not collected yet, "it is still ending".
std::string describe_exit(const std::optional<int>& code);

/// Erlang's restart intensity: more than `max_restarts` restarts within
/// `period` means the failure is not transient, and the supervisor gives up.
class restart_intensity {
public:
  using clock = std::chrono::steady_clock;

  restart_intensity(int max_restarts, clock::duration period)
    : max_(max_restarts), period_(period) {
    // nop
  }

  /// Records a restart now; false when it is one too many.
  bool allow(clock::time_point now = clock::now()) {
    restarts_.push_back(now);
    while (!restarts_.empty() && restarts_.front() < now - period_)
      restarts_.pop_front();
    return restarts_.size() <= static_cast<std::size_t>(max_);
  }

private:
  int max_;
  clock::duration period_;
  std::deque<clock::time_point> restarts_;
};

} // namespace actors::detail
