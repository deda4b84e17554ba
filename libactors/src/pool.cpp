// The pool's supervisor actor, its worker processes and the task table.
//
// Workers pull: each worker process runs worker_loop, which asks the
// supervisor for a task, runs it, and returns its outcome with the next
// request, (w_next, id, slot, root, outcomes) -> ok(task, closure) | ok() to
// stop. An idle worker waits parked in the supervisor, so no worker starves
// while another has a backlog and there is no round trip beyond one per task.
// The supervisor watches every worker process (its root actor): when one
// dies, the tasks it held are retried on others (up to `retries` times, then
// failed with errc::worker_lost naming the signal or exit code) and a new
// process takes its slot.

#include "actors/detail/pool_core.hpp"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/process.hpp"
#include "call.hpp"
#include "runtime.hpp"

namespace actors::detail {

result_sink::~result_sink() {
  // nop
}

namespace {

using w_next = caf::atom_constant<caf::atom("w_next")>;
using s_wake = caf::atom_constant<caf::atom("s_wake")>;

void worker_loop(caf::actor supervisor, std::uint32_t slot) {
  auto& self = caller::of_this_thread();
  auto root = runtime::get().root();
  std::vector<outcome> done;
  for (;;) {
    caf::message next;
    try {
      next = self.call(supervisor, std::nullopt, w_next::value, slot, root,
                       std::move(done));
    } catch (const error&) {
      return; // the owner is gone
    }
    done.clear();
    if (next.empty())
      return; // asked to stop
    outcome result;
    result.task = next.get_as<std::uint64_t>(0);
    try {
      result.result = next.get_as<closure>(1)();
      result.ok = true;
    } catch (...) {
      result.code = static_cast<std::uint8_t>(errc::task_failed);
      result.what = current_exception_text();
    }
    done.push_back(std::move(result));
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

} // namespace

// Shared by the users' threads and the supervisor actor, under `mtx`.
class pool_state {
public:
  struct worker {
    std::optional<process> proc;
    caf::actor_addr root;
    std::set<std::uint64_t> tasks;
    caf::actor parked; // the worker's caller waiting for a task
    std::uint64_t parked_id = 0;
  };

  std::mutex mtx;
  std::condition_variable idle; // signalled when no task is queued or running
  pool_core::options opts;
  std::deque<task_entry> queued;
  std::map<std::uint64_t, task_entry> running;
  std::vector<worker> workers;
  std::uint64_t next_task = 1;
  bool closed = false;
  bool terminated = false;
  bool stopping = false; // workers are told to stop once idle
  caf::actor supervisor;

  // Hands queued tasks to parked workers, or tells them to stop. Returns
  // the answers to send (outside the lock).
  template <class Send>
  void serve(Send send) {
    for (std::uint32_t slot = 0; slot < workers.size(); ++slot) {
      auto& w = workers[slot];
      if (!w.parked)
        continue;
      if (!queued.empty() && !terminated) {
        auto task = std::move(queued.front());
        queued.pop_front();
        w.tasks.insert(task.id);
        send(w.parked, w.parked_id, caf::make_message(task.id, task.call));
        running.emplace(task.id, std::move(task));
        w.parked = nullptr;
      } else if (stopping || terminated) {
        send(w.parked, w.parked_id, caf::message{});
        w.parked = nullptr;
      }
    }
  }

  void start_worker(std::uint32_t slot) {
    auto& proc = workers[slot].proc;
    proc.emplace(worker_loop, supervisor, slot);
    proc->name("PoolWorker-" + std::to_string(slot + 1));
    proc->daemon(true);
    proc->start();
  }
};

namespace {

caf::behavior supervisor_actor(caf::event_based_actor* self,
                               std::shared_ptr<pool_state> st) {
  auto send = [self](const caf::actor& who, std::uint64_t id,
                     caf::message payload) {
    self->send(who, caf::ok_atom::value, id, std::move(payload));
  };
  self->set_down_handler([=](caf::down_msg& dm) {
    std::vector<std::pair<std::shared_ptr<result_sink>, outcome>> failed;
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
        if (++task.attempts > st->opts.retries) {
          outcome o;
          o.task = task.id;
          o.code = static_cast<std::uint8_t>(errc::worker_lost);
          o.what = why + " while running the task";
          failed.emplace_back(std::move(task.sink), std::move(o));
        } else {
          st->queued.push_front(std::move(task));
        }
      }
      w.tasks.clear();
      w.parked = nullptr;
      w.root = caf::actor_addr{};
      if (!st->terminated && !(st->stopping && st->queued.empty()))
        st->start_worker(slot);
      st->serve(send);
      if (st->queued.empty() && st->running.empty())
        st->idle.notify_all();
    }
    for (auto& [sink, o] : failed)
      sink->deliver(std::move(o));
  });
  return {
    [=](w_next, std::uint64_t id, std::uint32_t slot, const caf::actor& root,
        std::vector<outcome>& done) {
      std::vector<std::pair<std::shared_ptr<result_sink>, outcome>> results;
      auto who = caf::actor_cast<caf::actor>(self->current_sender());
      {
        std::unique_lock<std::mutex> guard{st->mtx};
        auto& w = st->workers.at(slot);
        if (w.root != root.address()) {
          w.root = root.address();
          self->monitor(root);
        }
        for (auto& o : done) {
          auto entry = st->running.find(o.task);
          if (entry == st->running.end())
            continue; // failed by terminate meanwhile
          results.emplace_back(std::move(entry->second.sink), std::move(o));
          st->running.erase(entry);
          w.tasks.erase(results.back().second.task);
        }
        w.parked = who;
        w.parked_id = id;
        st->serve(send);
        if (st->queued.empty() && st->running.empty())
          st->idle.notify_all();
      }
      for (auto& [sink, o] : results)
        sink->deliver(std::move(o));
    },
    [=](s_wake) {
      std::unique_lock<std::mutex> guard{st->mtx};
      st->serve(send);
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
  if (opts.retries < 0)
    throw error(errc::invalid_argument, "retries must not be negative");
  auto st = state_;
  st->opts = opts;
  st->supervisor = runtime::get().spawn_service(
    [st](caf::actor_system& sys) { return sys.spawn(supervisor_actor, st); });
  std::lock_guard<std::mutex> guard{st->mtx};
  st->workers.resize(static_cast<std::size_t>(opts.processes));
  for (std::uint32_t slot = 0; slot < st->workers.size(); ++slot)
    st->start_worker(slot);
}

pool_core::~pool_core() {
  bool done;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    done = state_->terminated || (state_->stopping && state_->running.empty()
                                  && state_->queued.empty());
  }
  if (!done)
    terminate();
  join();
  caf::anon_send_exit(state_->supervisor, caf::exit_reason::user_shutdown);
}

int pool_core::processes() const noexcept {
  return state_->opts.processes;
}

void pool_core::submit(closure task, std::shared_ptr<result_sink> sink) {
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    if (state_->closed || state_->terminated)
      throw error(errc::pool_not_running,
                  "the pool was closed or terminated: no new tasks");
    state_->queued.push_back(
      task_entry{state_->next_task++, std::move(task), std::move(sink), 0});
  }
  caf::anon_send(state_->supervisor, s_wake::value);
}

void pool_core::close() {
  std::lock_guard<std::mutex> guard{state_->mtx};
  state_->closed = true;
}

void pool_core::terminate() {
  std::vector<std::shared_ptr<result_sink>> sinks;
  std::vector<std::uint64_t> ids;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    state_->terminated = true;
    state_->closed = true;
    for (auto& t : state_->queued) {
      ids.push_back(t.id);
      sinks.push_back(std::move(t.sink));
    }
    for (auto& [id, t] : state_->running) {
      ids.push_back(id);
      sinks.push_back(std::move(t.sink));
    }
    state_->queued.clear();
    state_->running.clear();
    for (auto& w : state_->workers)
      if (w.proc)
        w.proc->kill();
    state_->idle.notify_all();
  }
  for (size_t i = 0; i < sinks.size(); ++i) {
    outcome o;
    o.task = ids[i];
    o.code = static_cast<std::uint8_t>(errc::terminated);
    o.what = "the pool was terminated before the task finished";
    sinks[i]->deliver(std::move(o));
  }
  caf::anon_send(state_->supervisor, s_wake::value);
}

void pool_core::join() {
  std::vector<process*> procs;
  {
    std::unique_lock<std::mutex> guard{state_->mtx};
    if (!state_->closed && !state_->terminated)
      throw error(errc::pool_running,
                  "join() needs close() or terminate() first");
    state_->idle.wait(guard, [this] {
      return state_->terminated
             || (state_->queued.empty() && state_->running.empty());
    });
    state_->stopping = true;
  }
  caf::anon_send(state_->supervisor, s_wake::value);
  // Workers stop once asked; their slots are not refilled any more. A worker
  // being respawned right now is joined in its new incarnation.
  for (;;) {
    std::vector<std::pair<std::uint32_t, std::optional<pid_t>>> live;
    {
      std::lock_guard<std::mutex> guard{state_->mtx};
      for (std::uint32_t slot = 0; slot < state_->workers.size(); ++slot)
        if (state_->workers[slot].proc->is_alive())
          live.emplace_back(slot, state_->workers[slot].proc->pid());
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
