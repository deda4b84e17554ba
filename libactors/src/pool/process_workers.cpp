// The workers of a process pool: each slot's feeder thread starts a worker
// process, feeds it tasks over a direct channel (channel.hpp) and starts
// the next one when it ends (pool_state.hpp):
//   feeder -> worker   task(id, closure)          ... up to a window
//   worker -> feeder   outcome(outcome, micros)   in the order of the tasks
//                      init_failed(what)          the initializer threw
// The window adapts to the tasks' running time (task_table::window_for:
// about 2 ms of work in flight, 1 to 128 tasks, no more than a fair share
// of the queue, 1 after a pause), so trivial tasks stream while long ones
// stay spread over the workers; the worker sends its outcomes when it has
// no complete task left to run, or 32 at a time. The feeder stops a worker
// by shutting its side of the channel (the worker reads the end and exits)
// and learns of its death when the channel ends: the table requeues or
// fails what it held (task_table::on_worker_lost), by what its progress
// page (progress_page.hpp) shows it ran.

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <poll.h>
#include <unistd.h>

#include "base/deadline.hpp"
#include "node/runtime.hpp"
#include "pool/pool_state.hpp"
#include "pool/worker.hpp"
#include "process/children.hpp"
#include "process/supervision.hpp"

namespace actors::detail {

namespace {

// What the dead worker process of `page` ran, if it could show it.
std::optional<last_run> last_run_of(const progress_page* page) {
  if (page == nullptr)
    return std::nullopt;
  auto phase = page->phase.load();
  // Died before it could map its page (no thread, no memory): it ran
  // nothing, and what it held goes back to the queue (task 0 is none).
  if (phase == not_attached)
    return last_run{0, 0};
  if (phase != serving_tasks)
    return std::nullopt;
  return last_run{page->task.load(), page->input.load()};
}

} // namespace

void pool_state::feeder_loop(worker& w, std::uint32_t slot) {
  auto name = "PoolWorker-" + std::to_string(slot + 1);
  for (;;) {
    std::vector<delivery> out;
    int fd = -1;
    std::shared_ptr<child> proc;
    auto* page = progress_of(slot);
    try {
      proc = children::local().spawn(
        closure::bind(worker_main, opts.initializer,
                      static_cast<std::int32_t>(::getpid()),
                      page ? progress.fd.get() : -1,
                      static_cast<std::uint32_t>(opts.processes), slot),
        name, true, &fd);
    } catch (const error& e) {
      {
        std::lock_guard<std::mutex> guard{mtx};
        break_pool(std::string{"cannot start a worker process: "} + e.what(),
                   out);
      }
      deliver(out);
      return;
    }
    {
      std::lock_guard<std::mutex> guard{mtx};
      w.proc = proc;
      w.tasks->retiring = false;
      if (ended())
        proc->signal(SIGKILL);
    }
    bool stopped;
    {
      channel ch{fd};
      stopped = feed(w, ch, out);
    }
    // The channel ended with the process (or the process is about to).
    if (!proc->wait(std::chrono::seconds{1})) {
      proc->signal(SIGKILL);
      proc->wait(std::nullopt);
    }
    bool again;
    {
      std::lock_guard<std::mutex> guard{mtx};
      w.proc = nullptr;
      if (!stopped || !w.tasks->taken.empty())
        on_worker_lost(w,
                       "worker process " + std::to_string(proc->pid)
                         + " died (" + describe_exit(proc->exitcode()) + ")",
                       true, out, last_run_of(page));
      again = !ended() && !(stopping && table.queued() == 0);
    }
    deliver(out);
    if (!again)
      return;
  }
}

progress_page* pool_state::progress_of(std::uint32_t slot) {
  std::call_once(progress_made, [this] {
    auto size = static_cast<std::size_t>(opts.processes) * progress_page_size;
    progress = make_shared_memory("actors-pool-progress", size);
  });
  if (!progress.memory || slot >= static_cast<std::uint32_t>(opts.processes))
    return nullptr;
  auto* page = reinterpret_cast<progress_page*>(
    static_cast<char*>(progress.memory.get()) + slot * progress_page_size);
  page->phase.store(not_attached);
  page->task.store(0);
  page->input.store(0);
  return page;
}

bool pool_state::feed(worker& w, channel& ch, std::vector<delivery>& out) {
  std::vector<std::pair<std::uint64_t, closure>> batch;
  std::vector<outcome> results; // read, not settled yet
  std::size_t window = 1;
  int sent = 0; // for maxtasksperchild
  bool shut = false;
  deadline task_deadline; // of the task in flight (a task timeout)
  auto& mine = *w.tasks;
  std::unique_lock<std::mutex> guard{mtx, std::defer_lock};
  for (;;) {
    lock_soon(guard);
    for (auto& o : results)
      settle(w, std::move(o), out);
    results.clear();
    // At most the window, and a fair share of what is queued.
    auto limit = table.limit(window, serving());
    auto retire = opts.max_tasks_per_child > 0
                  && sent >= opts.max_tasks_per_child;
    if (!w.hosted.empty() && !shut) {
      // An actor's body (host_actor): the worker takes nothing else.
      for (auto& x : w.hosted)
        batch.push_back(std::move(x));
      w.hosted.clear();
    }
    if (w.hosting && mine.taken.empty())
      w.hosting = false; // its actor ended
    while (!shut && !retire && !ended() && !w.hosting
           && mine.taken.size() < limit && table.queued() > 0) {
      auto& task = table.take(mine);
      batch.emplace_back(task.id, task.call);
      retire = opts.max_tasks_per_child > 0
               && ++sent >= opts.max_tasks_per_child;
    }
    table.publish_queued();
    auto holds = mine.taken.size(); // tasks the worker has or will have
    bool busy = holds > 0;
    if (!busy && !shut
        && (ended() || retire || (stopping && table.queued() == 0))) {
      shut = true;
      w.shutting = true;
      mine.retiring = mine.retiring || retire;
      guard.unlock();
      if (w.remote && retire && !ch.put(retire_frame))
        ch.flush(true); // its host starts a fresh process in its place
      ch.shutdown_write();
    } else if (!busy && !shut) {
      w.idle = true;
      window = 1; // the next tasks may be long: learn their time first
      guard.unlock();
      deliver(out);
      out.clear();
      if (!wait_idle(w, ch, results, window))
        return false; // died (or failed to start) while idle
      continue;
    } else {
      guard.unlock();
    }
    deliver(out);
    out.clear();
    // Send the tasks taken.
    for (auto& [id, call] : batch) {
      if (auto err = ch.put(task_frame, id, call)) {
        // Unless it was cancelled or terminated meanwhile.
        std::lock_guard<std::mutex> lock{mtx};
        settle(w,
               failed(id, errc::invalid_argument,
                      "the task cannot be sent to a worker process: "
                        + render(err)),
               out);
        --holds;
        continue;
      }
      if (opts.task_timeout)
        task_deadline = deadline{opts.task_timeout};
    }
    batch.clear();
    deliver(out);
    out.clear();
    busy = holds > 0;
    // Hand the tasks over and wait for outcomes (or the end).
    pollfd p{ch.fd(), POLLIN, 0};
    if (ch.pending()) {
      if (!ch.flush(false))
        p.events = POLLIN; // the end will show as readable
      else if (ch.pending())
        p.events |= POLLOUT;
    }
    int wait_ms = busy ? task_deadline.poll_ms() : -1;
    if (!busy && !shut && !ch.pending())
      continue; // every task failed to serialize
    auto silence = silence_left(w, ch);
    if (silence >= 0 && (wait_ms < 0 || silence < wait_ms))
      wait_ms = silence;
    auto n = ::poll(&p, 1, wait_ms);
    if (n < 0)
      continue; // EINTR
    if (n == 0 && silent(w, ch)) {
      std::lock_guard<std::mutex> lock{mtx};
      return shut || mine.retiring;
    }
    if (n == 0 && !task_deadline.passed())
      continue;
    if (n == 0) {
      // The task overran: it fails, and its worker is replaced (the only
      // way to stop a running function), without counting as a death.
      std::lock_guard<std::mutex> lock{mtx};
      if (!mine.taken.empty())
        stop_task(w, mine.taken.front().id, errc::timeout,
                  "the task ran longer than the pool's task timeout", out);
      task_deadline = deadline{};
      continue;
    }
    if (p.revents & POLLOUT)
      ch.flush(false);
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      auto open = ch.fill(false);
      while (auto f = ch.next())
        read_frame(*f, ch, results, window);
      if (!results.empty())
        task_deadline = deadline{};
      if (!open) {
        std::lock_guard<std::mutex> lock{mtx};
        for (auto& o : results)
          settle(w, std::move(o), out);
        return shut || mine.retiring;
      }
    }
  }
}

// Reads one frame from a worker process.
void pool_state::read_frame(const channel::frame& f, channel& ch,
                            std::vector<outcome>& results,
                            std::size_t& window) {
  if (f.kind == outcome_frame) {
    outcome o;
    std::uint32_t micros = 0;
    if (auto err = ch.get(f, o, micros))
      o = failed(o.task, errc::function_not_found,
                 "cannot read the task's result: " + render(err));
    results.push_back(std::move(o));
    window = task_table::window_for(micros);
  } else if (f.kind == init_failed_frame) {
    std::string what;
    ch.get(f, what);
    std::vector<delivery> out;
    {
      std::lock_guard<std::mutex> guard{mtx};
      break_pool("the pool's initializer failed: " + what, out);
    }
    deliver(out);
  }
}

// An idle feeder waits for its wake_fd or for its worker to say something
// (its initializer failed) or end; false when the channel ended.
bool pool_state::wait_idle(worker& w, channel& ch,
                           std::vector<outcome>& results,
                           std::size_t& window) {
  pollfd p[2] = {{w.wake_fd.get(), POLLIN, 0}, {ch.fd(), POLLIN, 0}};
  bool lost = false;
  for (;;) {
    auto n = ::poll(p, 2, silence_left(w, ch));
    if (n > 0)
      break;
    if (n == 0 && silent(w, ch)) {
      lost = true;
      break;
    }
  }
  std::uint64_t count;
  [[maybe_unused]] auto n = ::read(w.wake_fd.get(), &count, sizeof(count));
  {
    std::lock_guard<std::mutex> guard{mtx};
    w.idle = false;
    w.woken = false;
  }
  if (lost)
    return false;
  if (p[1].revents == 0)
    return true;
  auto open = ch.fill(false);
  while (auto f = ch.next())
    read_frame(*f, ch, results, window);
  return open;
}

bool pool_state::wake_feeder(worker& w) {
  // A feeder woken already takes one task: wake another for the next.
  if (!w.idle || w.woken || !w.wake_fd)
    return false;
  w.woken = true;
  std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(w.wake_fd.get(), &one, sizeof(one));
  return true;
}

void pool_state::wake_idle(std::size_t n) {
  for (auto& w : workers) {
    if (n == 0)
      return;
    if (!w.hosting && wake_feeder(w))
      --n;
  }
}

} // namespace actors::detail
