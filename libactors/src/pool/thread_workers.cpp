// The workers of a thread pool: threads of this process that take tasks
// from the pool's table and run them (pool_state.hpp).

#include <chrono>
#include <mutex>
#include <utility>
#include <vector>

#include "base/relax.hpp"
#include "base/exception_text.hpp"
#include "node/runtime.hpp"
#include "pool/pool_state.hpp"
#include "pool/worker.hpp"

namespace actors::detail {

void pool_state::thread_loop(worker& me) {
  std::vector<delivery> out;
  if (opts.initializer) {
    try {
      opts.initializer();
    } catch (...) {
      {
        std::lock_guard<std::mutex> guard{mtx};
        break_pool("the pool's initializer failed: "
                     + current_exception_text(),
                   out);
      }
      deliver(out);
      return;
    }
  }
  // One locked section per round: it settles the outcomes of the last
  // round and takes the next tasks; outcomes are delivered outside the
  // lock. Tasks that ran under 20 us each are taken 16 at a time, so that
  // trivial tasks do not queue on the lock while long ones stay spread
  // over the workers.
  std::vector<std::pair<std::uint64_t, closure>> batch;
  std::vector<outcome> results;
  std::size_t take = 1;
  auto& mine = *me.tasks; // under the lock
  std::unique_lock<std::mutex> guard{mtx, std::defer_lock};
  lock_soon(guard);
  for (;;) {
    // Unless terminate failed them meanwhile, `mine` holds the entries of
    // `results`, in order.
    if (!mine.taken.empty()) {
      table.settle_all(mine, results, out);
      if (table.drained())
        idle.notify_all();
    }
    results.clear();
    while (batch.size() < take && !ended() && table.queued() > 0) {
      auto& task = table.take(mine);
      batch.emplace_back(task.id, std::move(task.call));
    }
    table.publish_queued();
    guard.unlock();
    deliver(out);
    out.clear();
    if (batch.empty()) {
      // Before sleeping, spin briefly (at most 5 us, never yielding the
      // core): a task submitted meanwhile is taken without a wake-up
      // through the kernel. A yield here cost a whole time slice when the
      // cores were busy.
      for (auto until = clock::now() + std::chrono::microseconds{5};
           table.queued_hint() == 0 && clock::now() < until;)
        relax();
      guard.lock();
      work.wait(guard, [this] {
        return table.queued() > 0 || stopping || ended();
      });
      if (ended() || table.queued() == 0)
        return; // stopping with nothing left, or terminated, or broken
      continue;
    }
    auto start = clock::now();
    for (auto& [id, call] : batch) {
      results.push_back(run_task(id, call));
      call = closure{}; // the task's captures go with the task
    }
    auto each = (clock::now() - start) / batch.size();
    take = each < std::chrono::microseconds{20} ? 16 : 1;
    batch.clear();
    lock_soon(guard);
  }
}

} // namespace actors::detail
