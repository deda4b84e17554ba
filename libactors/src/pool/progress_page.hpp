#pragma once

// What a local worker process shows its pool, in a page of memory they
// share (one page per worker slot of a memfd of the pool's, which the
// worker maps through /proc): which task, and which input of its chunk,
// runs now. Written by the worker with plain stores (worker.cpp), read by
// the pool only once the worker is dead (process_workers.cpp), so that its
// death is charged to the task (and input) that ran, not to every task it
// held.

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace actors::detail {

struct progress_page {
  std::atomic<std::uint32_t> phase; ///< see below
  std::atomic<std::uint64_t> task;  ///< the task running; 0 between tasks
  std::atomic<std::uint64_t> input; ///< the input of its chunk running
};

enum : std::uint32_t {
  not_attached = 0,  ///< the worker has not mapped the page (yet)
  initializing = 1,  ///< it runs the initializer
  serving_tasks = 2, ///< it serves tasks: `task` tells
};

constexpr std::size_t progress_page_size = 4096;

} // namespace actors::detail
