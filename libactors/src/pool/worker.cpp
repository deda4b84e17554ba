// The worker side of a pool (worker.hpp): a worker process serves the
// tasks its channel brings, showing in its progress page (progress_page.hpp)
// which one runs.

#include "pool/worker.hpp"

#include <algorithm>
#include <climits>
#include <string>

#include <unistd.h>

#include "base/fd.hpp"
#include "base/exception_text.hpp"
#include "node/runtime.hpp"
#include "pool/progress_page.hpp"
#include "pool/task_table.hpp"
#include "shm/shared_memory.hpp"

namespace actors::detail {

namespace {

using clock = std::chrono::steady_clock;

// The page of the thread serving tasks in this worker process (null in
// other processes and threads).
thread_local progress_page* shown_progress = nullptr;

// Maps page `slot` of the `pages` progress pages process `owner` shares as
// its descriptor `fd` (for the life of this process); null if that fails
// (the pool then charges a death to every task the worker held, as it
// must when it cannot know).
progress_page* attach_progress(std::int32_t owner, std::int32_t fd,
                               std::uint32_t pages, std::uint32_t slot) {
  if (fd < 0 || slot >= pages)
    return nullptr;
  std::string why;
  auto area = map_peer_memory(owner, fd, pages * progress_page_size, why);
  if (!area)
    return nullptr;
  return reinterpret_cast<progress_page*>(static_cast<char*>(area.release())
                                          + slot * progress_page_size);
}

} // namespace

outcome run_task(std::uint64_t id, const closure& call) {
  outcome result;
  result.task = id;
  try {
    result.result = call();
  } catch (...) {
    static_cast<status&>(result) =
      status::failure(errc::task_failed, current_exception_text());
  }
  return result;
}

std::string render(const caf::error& err) {
  return runtime::get().system().render(err);
}

std::atomic<std::uint64_t>* running_input() noexcept {
  return shown_progress ? &shown_progress->input : nullptr;
}

worker_end serve_tasks(channel& ch, const closure& initializer,
                       std::atomic<bool>* running,
                       const std::atomic<bool>* dropped) {
  auto* page = shown_progress;
  if (page)
    page->phase.store(initializing, std::memory_order_relaxed);
  if (initializer) {
    try {
      initializer();
    } catch (...) {
      auto what = current_exception_text();
      if (!ch.put(init_failed_frame, what))
        ch.flush(true);
      return worker_end::init_failed;
    }
  }
  if (page)
    page->phase.store(serving_tasks, std::memory_order_relaxed);
  for (int unsent = 0;;) {
    auto f = ch.next();
    if (f && f->kind == retire_frame) {
      ch.flush(true);
      return worker_end::retired;
    }
    if (f) {
      std::uint64_t id = 0;
      if (page) {
        // From reading the task to dropping its result, a death is its.
        ch.get(*f, id);
        page->input.store(0, std::memory_order_relaxed);
        page->task.store(id, std::memory_order_relaxed);
      }
      closure call;
      outcome o;
      std::uint32_t micros = 0;
      caf::error err;
      try {
        err = ch.get(*f, id, call);
        if (!err)
          take_ends(call); // its pipe ends are this process's now
      } catch (const error& e) {
        // Reading actor handles needs this node joined to the pool's (a
        // worker of another host joins then), which failed.
        o = failed(id, static_cast<errc>(e.code().value()),
                   std::string{"the worker process cannot read the task: "}
                     + e.what());
        call = closure{};
      }
      if (err) {
        o = failed(id, errc::function_not_found,
                   "the worker process cannot read the task: " + render(err));
      } else if (call) {
        auto start = clock::now();
        if (running)
          running->store(true);
        // Both seq_cst: either this sees `dropped`, or the thread that
        // sets it sees `running` (and ends the process).
        if (dropped != nullptr && dropped->load()) {
          if (running)
            running->store(false);
          continue; // the pool dropped us: its tasks are others' now
        }
        o = run_task(id, call);
        if (running)
          running->store(false);
        call = closure{}; // the task's arguments go with the task
        micros = static_cast<std::uint32_t>(std::min<std::int64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(clock::now()
                                                                - start)
            .count(),
          UINT32_MAX));
      }
      if (auto err = ch.put(outcome_frame, o, micros)) {
        o = failed(id, errc::task_failed,
                   "the task's result cannot be sent back: " + render(err));
        ch.put(outcome_frame, o, micros);
      }
      if (page) {
        o = outcome{}; // the result's destructor is the task's too
        page->task.store(0, std::memory_order_relaxed);
      }
      if (++unsent < 32)
        continue;
    }
    unsent = 0;
    if (!ch.flush(true))
      return worker_end::released; // the pool is gone
    if (!f && !ch.fill(true))
      return worker_end::released; // asked to stop, or the pool is gone
  }
}

void worker_main(closure initializer, std::int32_t owner,
                 std::int32_t progress_fd, std::uint32_t pages,
                 std::uint32_t slot) {
  auto fd = runtime::take_channel();
  if (fd < 0)
    return; // not started by a pool
  channel ch{fd};
  shown_progress = attach_progress(owner, progress_fd, pages, slot);
  serve_tasks(ch, initializer);
}

} // namespace actors::detail
