// The pool's task table, its supervisor actor and its two kinds of workers.
//
// One scheduler: pool_state holds the queued and running tasks, delivers
// outcomes to their sinks, and implements close/terminate/join, cancel, the
// retry and restart budgets. Two kinds of workers take tasks from it:
//
// Worker processes run worker_loop and reach the table through the
// supervisor actor; they pull, asking for a task and returning the outcome
// of the previous one in one message:
//   (w_next, id, slot, root, outcomes, last) -> ok(task, closure) | ok()
//   (w_fail, id, slot, root, what)           the initializer failed
// `last` retires the worker (maxtasksperchild); ok() tells it to stop. An
// idle worker waits parked in the supervisor, so no worker starves while
// another has a backlog. The supervisor watches every worker process (its
// root actor): when one dies, the tasks it held are retried on others (up
// to `retries` times, then they fail with errc::worker_lost naming the
// signal or exit code) and a new process takes its slot, unless deaths
// exceed the restart budget, which breaks the pool (errc::pool_broken for
// everything outstanding and later).
//
// Worker threads (thread_pool) take tasks from the table directly, under
// its mutex, and wait on a condition variable when it is empty: a message
// round trip per task would cost ~18 us where this costs well under one. A
// thread cannot die alone, be killed or be replaced, so a thread pool never
// retries, kills or respawns, and has no supervisor actor.

#include "actors/detail/pool_core.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <caf/event_based_actor.hpp>

#include "actors/process.hpp"
#include "call.hpp"
#include "runtime.hpp"

namespace actors::detail {

result_sink::~result_sink() {
  // nop
}

namespace {

using w_next = caf::atom_constant<caf::atom("w_next")>;
using w_fail = caf::atom_constant<caf::atom("w_fail")>;
using s_wake = caf::atom_constant<caf::atom("s_wake")>;
using s_timeout = caf::atom_constant<caf::atom("s_timeout")>;

// Locks `m`, trying briefly before sleeping: the sections under the pool's
// lock are a few hundred nanoseconds, much less than a sleep and wake-up.
template <class Lock>
void lock_soon(Lock& m) {
  for (int i = 0; i < 200; ++i)
    if (m.try_lock())
      return;
  m.lock();
}

outcome run_task(std::uint64_t id, const closure& call) {
  outcome result;
  result.task = id;
  try {
    result.result = call();
    result.ok = true;
  } catch (...) {
    result.code = static_cast<std::uint8_t>(errc::task_failed);
    result.what = current_exception_text();
  }
  return result;
}

void worker_loop(caf::actor supervisor, std::uint32_t slot,
                 closure initializer, int max_tasks) {
  auto& self = caller::of_this_thread();
  auto root = runtime::get().root();
  if (initializer) {
    try {
      initializer();
    } catch (...) {
      try {
        self.call(supervisor, std::nullopt, w_fail::value, slot, root,
                  current_exception_text());
      } catch (const error&) {
        // the owner is gone
      }
      return;
    }
  }
  std::vector<outcome> done;
  for (int ran = 0;;) {
    caf::message next;
    bool last = max_tasks > 0 && ran == max_tasks;
    try {
      next = self.call(supervisor, std::nullopt, w_next::value, slot, root,
                       std::move(done), last);
    } catch (const error&) {
      return; // the owner is gone
    }
    done.clear();
    if (next.empty())
      return; // asked to stop, or retired
    done.push_back(run_task(next.get_as<std::uint64_t>(0),
                            next.get_as<closure>(1)));
    ++ran;
  }
}

struct task_entry {
  std::uint64_t id = 0;
  closure call;
  std::shared_ptr<result_sink> sink;
  int attempts = 0;
};

std::string describe_exit(const std::optional<int>& code) {
  if (!code)
    return "it is still ending";
  if (*code < 0)
    return "killed by signal " + std::to_string(-*code);
  return "exit code " + std::to_string(*code);
}

using delivery = std::pair<std::shared_ptr<result_sink>, outcome>;

delivery failure(task_entry&& task, errc code, std::string what) {
  outcome o;
  o.task = task.id;
  o.code = static_cast<std::uint8_t>(code);
  o.what = std::move(what);
  return {std::move(task.sink), std::move(o)};
}

} // namespace

// Shared by the users' threads and the supervisor actor, under `mtx`.
class pool_state {
public:
  struct worker {
    std::optional<process> proc; // or:
    std::thread thread;
    std::vector<task_entry> taken; // a thread's tasks, not in `running`
    caf::actor_addr root;
    std::set<std::uint64_t> tasks;
    caf::actor parked; // the worker's caller waiting for a task
    std::uint64_t parked_id = 0;
    bool retiring = false; // its end is planned: not a death
  };

  std::mutex mtx;
  std::mutex join_mtx; // one thread joins thread workers
  std::condition_variable idle; // no task queued or running, or terminated
  std::condition_variable work; // thread workers: a task, or time to stop
  pool_core::options opts;
  std::deque<task_entry> queued;
  std::map<std::uint64_t, task_entry> running;
  std::vector<worker> workers;
  std::deque<std::chrono::steady_clock::time_point> deaths;
  std::uint64_t next_task = 1;
  std::size_t taken = 0; // tasks held by worker threads
  std::atomic<std::size_t> queued_hint{0}; // queued.size(), read unlocked
  bool closed = false;
  bool terminated = false;
  bool stopping = false; // workers are told to stop once idle
  std::string broken;    // why the pool gave up; empty while it works
  caf::actor supervisor;

  bool ended() const {
    return terminated || !broken.empty();
  }

  // No task queued or running.
  bool drained() const {
    return queued.empty() && running.empty() && taken == 0;
  }

  // Hands queued tasks to parked workers, or tells them to stop; `send`
  // answers a worker, `assigned` learns which task went out.
  template <class Send, class Assigned>
  void serve(Send send, Assigned assigned) {
    for (auto& w : workers) {
      if (!w.parked)
        continue;
      if (!queued.empty() && !ended()) {
        auto task = std::move(queued.front());
        queued.pop_front();
        w.tasks.insert(task.id);
        send(w.parked, w.parked_id, caf::make_message(task.id, task.call));
        assigned(task.id);
        running.emplace(task.id, std::move(task));
        w.parked = nullptr;
      } else if (stopping || ended()) {
        send(w.parked, w.parked_id, caf::message{});
        w.parked = nullptr;
      }
    }
    if (ended() || drained())
      idle.notify_all();
  }

  // Fails everything outstanding with `code` (the caller delivers).
  void fail_all(errc code, const std::string& what,
                std::vector<delivery>& out) {
    for (auto& t : queued)
      out.push_back(failure(std::move(t), code, what));
    for (auto& [id, t] : running)
      out.push_back(failure(std::move(t), code, what));
    queued.clear();
    running.clear();
    for (auto& w : workers) {
      for (auto& t : w.taken)
        out.push_back(failure(std::move(t), code, what));
      w.taken.clear();
      w.tasks.clear();
    }
    taken = 0;
  }

  // Stops worker processes at once; threads finish their task first.
  void kill_workers() {
    for (auto& w : workers)
      if (w.proc && w.proc->is_alive())
        w.proc->kill();
    work.notify_all();
  }

  // Gives up (under the lock): fails everything outstanding and later with
  // errc::pool_broken and stops the workers.
  void break_pool(const std::string& why, std::vector<delivery>& out) {
    if (!broken.empty())
      return;
    broken = why;
    fail_all(errc::pool_broken, why, out);
    kill_workers();
    idle.notify_all();
  }

  void start_worker(std::uint32_t slot) {
    auto& w = workers[slot];
    w.retiring = false;
    if (opts.threads) {
      // Safe: ~pool_core joins the threads before this state can go.
      w.thread = std::thread{[this, slot] { thread_loop(slot); }};
      return;
    }
    w.proc.emplace(worker_loop, supervisor, slot, opts.initializer,
                   opts.max_tasks_per_child);
    w.proc->name("PoolWorker-" + std::to_string(slot + 1));
    w.proc->daemon(true);
    w.proc->start();
  }

  // A worker thread: takes queued tasks until the pool stops or ends.
  void thread_loop(std::uint32_t slot) {
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
    auto& mine = workers[slot].taken; // under the lock
    std::unique_lock<std::mutex> guard{mtx, std::defer_lock};
    lock_soon(guard);
    for (;;) {
      // Unless terminate failed them meanwhile, `mine` holds the entries of
      // `results`, in order.
      if (!mine.empty()) {
        for (std::size_t i = 0; i < mine.size(); ++i)
          out.emplace_back(std::move(mine[i].sink), std::move(results[i]));
        taken -= mine.size();
        mine.clear();
        if (drained())
          idle.notify_all();
      }
      results.clear();
      while (batch.size() < take && !ended() && !queued.empty()) {
        auto task = std::move(queued.front());
        queued.pop_front();
        batch.emplace_back(task.id, std::move(task.call));
        mine.push_back(std::move(task));
        ++taken;
      }
      queued_hint.store(queued.size(), std::memory_order_relaxed);
      guard.unlock();
      deliver(out);
      out.clear();
      if (batch.empty()) {
        // Before sleeping, yield a little: a task submitted meanwhile is then
        // taken without a wake-up through the kernel (~5 us or more each).
        for (int i = 0; i < 64 && queued_hint.load(std::memory_order_relaxed) == 0;
             ++i)
          std::this_thread::yield();
        guard.lock();
        work.wait(guard, [this] {
          return !queued.empty() || stopping || ended();
        });
        if (ended() || queued.empty())
          return; // stopping with nothing left, or terminated, or broken
        continue;
      }
      auto start = std::chrono::steady_clock::now();
      for (auto& [id, call] : batch) {
        results.push_back(run_task(id, call));
        call = closure{}; // the task's captures go with the task
      }
      auto each = (std::chrono::steady_clock::now() - start) / batch.size();
      take = each < std::chrono::microseconds{20} ? 16 : 1;
      batch.clear();
      lock_soon(guard);
    }
  }

  // Tells the workers that there is work, or that it is time to stop.
  void wake() {
    if (opts.threads)
      work.notify_all();
    else
      caf::anon_send(supervisor, s_wake::value);
  }

  static void deliver(std::vector<delivery>& xs) {
    for (auto& [sink, o] : xs)
      sink->deliver(std::move(o));
  }
};

namespace {

caf::behavior supervisor_actor(caf::event_based_actor* self,
                               std::shared_ptr<pool_state> st) {
  auto send = [self](const caf::actor& who, std::uint64_t id,
                     caf::message payload) {
    self->send(who, caf::ok_atom::value, id, std::move(payload));
  };
  auto assigned = [self, st](std::uint64_t task) {
    if (st->opts.task_timeout)
      self->delayed_send(self, *st->opts.task_timeout, s_timeout::value, task);
  };
  self->set_down_handler([=](caf::down_msg& dm) {
    std::vector<delivery> out;
    {
      std::unique_lock<std::mutex> guard{st->mtx};
      std::uint32_t slot = 0;
      while (slot < st->workers.size() && st->workers[slot].root != dm.source)
        ++slot;
      if (slot == st->workers.size())
        return;
      auto& w = st->workers[slot];
      // The reaper collects the status as the process ends: wait briefly.
      w.proc->join(std::chrono::seconds{1});
      auto why = "worker process " + std::to_string(*w.proc->pid()) + " died ("
                 + describe_exit(w.proc->exitcode()) + ")";
      // Retry its tasks first, in their order, or fail them.
      for (auto i = w.tasks.rbegin(); i != w.tasks.rend(); ++i) {
        auto entry = st->running.find(*i);
        if (entry == st->running.end())
          continue;
        auto task = std::move(entry->second);
        st->running.erase(entry);
        if (++task.attempts > st->opts.retries)
          out.push_back(failure(std::move(task), errc::worker_lost,
                                why + " while running the task"));
        else
          st->queued.push_front(std::move(task));
      }
      w.tasks.clear();
      w.parked = nullptr;
      w.root = caf::actor_addr{};
      if (!w.retiring && !st->ended()) {
        auto now = std::chrono::steady_clock::now();
        st->deaths.push_back(now);
        while (st->deaths.front() < now - st->opts.restart_window)
          st->deaths.pop_front();
        if (st->deaths.size() > static_cast<size_t>(st->opts.max_restarts))
          st->break_pool("workers died more than "
                       + std::to_string(st->opts.max_restarts)
                       + " times within the restart window; last: " + why,
                     out);
      }
      if (!st->ended() && !(st->stopping && st->queued.empty()))
        st->start_worker(slot);
      st->serve(send, assigned);
    }
    pool_state::deliver(out);
  });
  return {
    [=](w_next, std::uint64_t id, std::uint32_t slot, const caf::actor& root,
        std::vector<outcome>& done, bool last) {
      std::vector<delivery> out;
      auto who = caf::actor_cast<caf::actor>(self->current_sender());
      {
        std::unique_lock<std::mutex> guard{st->mtx};
        auto& w = st->workers.at(slot);
        if (root && w.root != root.address()) {
          w.root = root.address();
          self->monitor(root);
        }
        for (auto& o : done) {
          auto entry = st->running.find(o.task);
          if (entry == st->running.end())
            continue; // failed meanwhile (terminate, timeout, broken)
          out.emplace_back(std::move(entry->second.sink), std::move(o));
          st->running.erase(entry);
          w.tasks.erase(out.back().second.task);
        }
        if (last) {
          w.retiring = true;
          send(who, id, caf::message{});
        } else {
          w.parked = who;
          w.parked_id = id;
        }
        st->serve(send, assigned);
      }
      pool_state::deliver(out);
    },
    [=](w_fail, std::uint64_t id, std::uint32_t, const caf::actor&,
        const std::string& what) {
      std::vector<delivery> out;
      {
        std::unique_lock<std::mutex> guard{st->mtx};
        st->break_pool("the pool's initializer failed: " + what, out);
      }
      send(caf::actor_cast<caf::actor>(self->current_sender()), id,
           caf::message{});
      pool_state::deliver(out);
    },
    [=](s_timeout, std::uint64_t task) {
      std::vector<delivery> out;
      {
        std::unique_lock<std::mutex> guard{st->mtx};
        auto entry = st->running.find(task);
        if (entry == st->running.end())
          return;
        // The task overran: it fails, and its worker is replaced (the only
        // way to stop a running function), without counting as a death.
        for (auto& w : st->workers) {
          if (w.tasks.erase(task) > 0 && w.proc) {
            w.retiring = true;
            w.proc->kill();
          }
        }
        out.push_back(failure(std::move(entry->second), errc::timeout,
                              "the task ran longer than the pool's task "
                              "timeout"));
        st->running.erase(entry);
        st->serve(send, assigned);
      }
      pool_state::deliver(out);
    },
    [=](s_wake) {
      std::unique_lock<std::mutex> guard{st->mtx};
      st->serve(send, assigned);
    },
  };
}

} // namespace

pool_core::pool_core(options opts) : state_(std::make_shared<pool_state>()) {
  if (opts.processes < 0)
    throw error(errc::invalid_argument, "a pool needs at least one process");
  if (opts.processes == 0)
    opts.processes = static_cast<int>(
      std::max(1u, std::thread::hardware_concurrency()));
  if (opts.threads && (opts.task_timeout || opts.max_tasks_per_child > 0))
    throw error(errc::invalid_argument,
                "a thread cannot be stopped: thread pools have no task "
                "timeout and no maxtasksperchild");
  if (opts.retries < 0 || opts.max_tasks_per_child < 0
      || opts.max_restarts < 0
      || (opts.task_timeout
          && *opts.task_timeout <= std::chrono::steady_clock::duration::zero()))
    throw error(errc::invalid_argument,
                "retries, maxtasksperchild, the restart budget and the task "
                "timeout must not be negative (a timeout must be positive)");
  auto st = state_;
  st->opts = std::move(opts);
  if (!st->opts.threads)
    st->supervisor = runtime::get().spawn_service(
      [st](caf::actor_system& sys) { return sys.spawn(supervisor_actor, st); });
  std::lock_guard<std::mutex> guard{st->mtx};
  st->workers.resize(static_cast<std::size_t>(st->opts.processes));
  for (std::uint32_t slot = 0; slot < st->workers.size(); ++slot)
    st->start_worker(slot);
}

pool_core::~pool_core() {
  bool done;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    done = state_->ended()
           || (state_->stopping && state_->drained());
  }
  if (!done)
    terminate();
  join();
  if (state_->supervisor)
    caf::anon_send_exit(state_->supervisor, caf::exit_reason::user_shutdown);
}

int pool_core::processes() const noexcept {
  return state_->opts.processes;
}

std::uint64_t pool_core::submit(closure task,
                                 std::shared_ptr<result_sink> sink) {
  job one{std::move(task), std::move(sink)};
  return enqueue(&one, 1);
}

std::uint64_t pool_core::submit(std::vector<job> jobs) {
  return enqueue(jobs.data(), jobs.size());
}

std::uint64_t pool_core::enqueue(job* jobs, std::size_t n) {
  std::uint64_t first;
  {
    std::unique_lock<std::mutex> guard{state_->mtx, std::defer_lock};
    lock_soon(guard);
    if (!state_->broken.empty())
      throw error(errc::pool_broken, state_->broken);
    if (state_->closed || state_->terminated)
      throw error(errc::pool_not_running,
                  "the pool was closed or terminated: no new tasks");
    first = state_->next_task;
    for (std::size_t i = 0; i < n; ++i)
      state_->queued.push_back(task_entry{state_->next_task++,
                                          std::move(jobs[i].first),
                                          std::move(jobs[i].second), 0});
    state_->queued_hint.store(state_->queued.size(), std::memory_order_relaxed);
  }
  if (state_->opts.threads && n == 1)
    state_->work.notify_one();
  else
    state_->wake();
  return first;
}

bool pool_core::cancel(std::uint64_t task) {
  std::vector<delivery> out;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    auto& q = state_->queued;
    auto i = std::find_if(q.begin(), q.end(),
                          [&](const task_entry& t) { return t.id == task; });
    if (i != q.end()) {
      out.push_back(failure(std::move(*i), errc::cancelled,
                            "the task was cancelled before it ran"));
      q.erase(i);
    } else if (auto j = state_->running.find(task);
               j != state_->running.end() && !state_->opts.threads) {
      // A running function cannot be interrupted: replace its worker
      // process (a thread cannot be replaced: its task runs on).
      for (auto& w : state_->workers)
        if (w.tasks.erase(task) > 0) {
          w.retiring = true;
          w.proc->kill();
        }
      out.push_back(failure(std::move(j->second), errc::cancelled,
                            "the task was cancelled while it ran"));
      state_->running.erase(j);
      if (state_->drained())
        state_->idle.notify_all();
    }
  }
  pool_state::deliver(out);
  return !out.empty();
}

void pool_core::close() {
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->closed = true;
}

void pool_core::terminate() {
  std::vector<delivery> out;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    state_->terminated = true;
    state_->closed = true;
    state_->fail_all(errc::terminated,
                     "the pool was terminated before the task finished", out);
    state_->kill_workers();
    state_->idle.notify_all();
  }
  pool_state::deliver(out);
  state_->wake();
}

void pool_core::join() {
  {
    std::unique_lock<std::mutex> guard{state_->mtx};
    if (!state_->closed && !state_->ended())
      throw error(errc::pool_running,
                  "join() needs close() or terminate() first");
    state_->idle.wait(guard, [this] {
      return state_->ended()
             || state_->drained();
    });
    state_->stopping = true;
  }
  state_->wake();
  if (state_->opts.threads) {
    // Threads stop once asked, after their current task; they are never
    // replaced.
    std::lock_guard<std::mutex> guard{state_->join_mtx};
    for (auto& w : state_->workers)
      if (w.thread.joinable())
        w.thread.join();
    return;
  }
  // Workers stop once asked, and their slots are not refilled any more; a
  // worker being replaced right now is joined in its new incarnation.
  for (;;) {
    std::vector<std::pair<std::uint32_t, std::optional<pid_t>>> live;
    {
      std::lock_guard<std::mutex> guard{state_->mtx};
      for (std::uint32_t slot = 0; slot < state_->workers.size(); ++slot) {
        auto& proc = state_->workers[slot].proc;
        if (proc && proc->is_alive())
          live.emplace_back(slot, proc->pid());
      }
    }
    if (live.empty())
      return;
    for (auto& [slot, pid] : live) {
      std::unique_lock<std::mutex> guard{state_->mtx};
      auto& proc = *state_->workers[slot].proc;
      if (proc.pid() != pid)
        continue;
      guard.unlock();
      // Safe without the lock: a slot's process is only replaced after its
      // death is handled, and this one is alive or just ended.
      proc.join(std::chrono::milliseconds{100});
    }
  }
}

} // namespace actors::detail
