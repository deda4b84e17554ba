#pragma once

// The scheduler of every actor system of libactors: CAF's work-sharing
// coordinator with a clock that wakes its thread only when a deadline earlier
// than the one it sleeps for arrives.
//
// Why: CAF 0.17.6's clock hands every timeout to its thread through a queue,
// so each timed request (`request(dest, 30s, ...)`) wakes that thread once,
// only to file a deadline 30 s away. Measured with bench_links (idle 2-vCPU
// VM): an actor round trip over a link took 4.3 context switches and 43 us
// with a timeout, 2.5 and 31 us without. Here the caller files its deadline
// itself, under a lock, and the thread sleeps on until the earliest one.
//
// Timeouts fire as CAF's do (ship() enqueues the timeout message), from the
// clock's own thread, outside its lock.

#include <condition_variable>
#include <mutex>
#include <thread>

#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/policy/work_sharing.hpp>
#include <caf/scheduler/coordinator.hpp>

namespace actors::detail {

/// An actor clock whose callers file their deadlines themselves (derives
/// from CAF's thread-safe clock only because the coordinator's clock()
/// returns that type; none of its queue is used).
class quiet_clock final : public caf::detail::thread_safe_actor_clock {
public:
  using super = caf::detail::simple_actor_clock;

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self,
                            caf::atom_value type, uint64_t id) override;
  void set_multi_timeout(time_point t, caf::abstract_actor* self,
                         caf::atom_value type, uint64_t id) override;
  void set_request_timeout(time_point t, caf::abstract_actor* self,
                           caf::message_id id) override;
  void cancel_ordinary_timeout(caf::abstract_actor* self,
                               caf::atom_value type) override;
  void cancel_request_timeout(caf::abstract_actor* self,
                              caf::message_id id) override;
  void cancel_timeouts(caf::abstract_actor* self) override;
  void schedule_message(time_point t, caf::strong_actor_ptr receiver,
                        caf::mailbox_element_ptr content) override;
  void schedule_message(time_point t, caf::group target,
                        caf::strong_actor_ptr sender,
                        caf::message content) override;
  void cancel_all() override;

  /// Ships what is due until stop(); the clock's thread.
  void run();

  /// Ends run() and drops every deadline.
  void stop();

private:
  // Files a deadline at `t` with `fn` (under the lock); wakes the thread if
  // it sleeps for a later one.
  template <class Fn>
  void file(time_point t, Fn fn);
  // Drops the deadlines `fn` names (under the lock; what it drops is
  // destroyed outside it: an event may hold an actor's last reference).
  template <class Fn>
  void drop(Fn fn);
  // Moves the deadline of `self` that `pred` picks, if any, into `out`
  // (under the lock).
  template <class Pred>
  void take(caf::abstract_actor* self, Pred pred, schedule_map& out);

  std::mutex mtx_;
  std::condition_variable cv_;
  time_point wake_at_ = time_point::min(); // what run() sleeps for
  bool stopped_ = false;
};

/// CAF's work-sharing coordinator with a quiet_clock (loaded by make_config).
class scheduler final
  : public caf::scheduler::coordinator<caf::policy::work_sharing> {
public:
  using super = caf::scheduler::coordinator<caf::policy::work_sharing>;

  explicit scheduler(caf::actor_system& sys) : super(sys) {
    // nop
  }

  static caf::actor_system::module* make(caf::actor_system& sys,
                                         caf::detail::type_list<>) {
    return new scheduler(sys);
  }

  quiet_clock& clock() noexcept override {
    return clock_;
  }

protected:
  void start() override;
  void stop() override;

private:
  quiet_clock clock_;
  std::thread thread_;
};

} // namespace actors::detail
