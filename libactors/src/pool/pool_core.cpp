// actors::detail::pool_core (pool_core.hpp): the pool's options checked,
// its state (pool_state.hpp) made and its workers started; submit, cancel,
// close, terminate and join; and the pool's state as a whole: how it
// breaks, stops its workers and delivers outcomes.

#include "actors/detail/pool_core.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/detail/timeout.hpp"
#include "node/runtime.hpp"
#include "net/tls.hpp"
#include "pool/pool_state.hpp"

namespace actors::detail {

pool_state::pool_state(pool_core::options o)
  : opts(std::move(o)),
    table(task_table::policy{opts.retries, opts.max_restarts,
                             opts.restart_window,
                             opts.task_timeout.has_value()}),
    callbacks(make_callback_runner()) {
  // nop
}

pool_state::~pool_state() {
  stop_callbacks(*callbacks);
}

pool_state::worker& pool_state::add_worker() {
  auto& w = workers.emplace_back();
  w.tasks = &table.add_worker();
  return w;
}

void pool_state::start_workers() {
  auto self = shared_from_this();
  for (std::uint32_t slot = 0; slot < workers.size(); ++slot) {
    auto& w = workers[slot];
    if (opts.threads) {
      w.thread = own_thread([self, &w] { self->thread_loop(w); });
      continue;
    }
    w.wake_fd = make_wake_fd();
    w.thread = own_thread([self, &w, slot] { self->feeder_loop(w, slot); });
  }
}

namespace {

// The pool whose thread this is (pool_state::own_thread), if any.
thread_local const pool_state* this_threads_pool = nullptr;

} // namespace

std::thread pool_state::own_thread(std::function<void()> fn) {
  return std::thread{[this, fn = std::move(fn)] {
    this_threads_pool = this;
    fn();
  }};
}

bool pool_state::on_own_thread() const noexcept {
  return this_threads_pool == this;
}

unique_fd pool_state::make_wake_fd() {
  unique_fd fd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  if (!fd)
    throw error(errc::spawn_failed, std::string{"cannot create an eventfd: "}
                                      + std::strerror(errno));
  return fd;
}

void pool_state::kill(worker& w) {
  if (w.proc)
    w.proc->signal(SIGKILL);
  if (w.link >= 0)
    ::shutdown(w.link, SHUT_RDWR);
}

void pool_state::kill_workers() {
  for (auto& w : workers)
    kill(w);
  wake();
}

void pool_state::break_pool(const std::string& why,
                            std::vector<delivery>& out) {
  if (!broken.empty())
    return;
  broken = why;
  table.fail_all(errc::pool_broken, why, out);
  kill_workers();
  idle.notify_all();
}

bool pool_state::settle(worker& w, outcome&& o, std::vector<delivery>& out) {
  if (!table.settle(*w.tasks, std::move(o), out))
    return false;
  if (table.drained())
    idle.notify_all();
  return true;
}

void pool_state::stop_task(worker& w, std::uint64_t task, errc code,
                           const std::string& what,
                           std::vector<delivery>& out) {
  table.stop_task(*w.tasks, task, code, what, out);
  kill(w);
  if (table.drained())
    idle.notify_all();
}

void pool_state::on_worker_lost(worker& w, const std::string& why,
                                bool counts, std::vector<delivery>& out,
                                std::optional<last_run> ran) {
  if (!table.on_worker_lost(*w.tasks, why, counts && !ended(), out, ran))
    break_pool("workers died more than " + std::to_string(opts.max_restarts)
                 + " times within the restart window; last: " + why,
               out);
  if (table.queued() > 0)
    wake_idle(table.queued());
  if (table.drained())
    idle.notify_all();
}

pool_state::worker* pool_state::holder(std::uint64_t task) {
  auto* h = table.holder(task);
  for (auto& w : workers)
    if (w.tasks == h)
      return h ? &w : nullptr;
  return nullptr;
}

void pool_state::wake() {
  if (opts.threads) {
    work.notify_all();
    return;
  }
  for (auto& w : workers) {
    if (w.wake_fd) {
      std::uint64_t one = 1;
      [[maybe_unused]] auto r = ::write(w.wake_fd.get(), &one, sizeof(one));
    }
  }
}

void pool_state::deliver(std::vector<delivery>& xs) {
  if (xs.empty())
    return;
  auto* before = set_delivering(callbacks.get());
  for (auto& [sink, o] : xs)
    sink->deliver_from(std::move(o), sink);
  set_delivering(before);
}

namespace {

// The process pools alive (pool_core::end_all); never destroyed, as pools
// may end after the static destructors ran.
std::mutex& live_pools_mtx() {
  static auto* mtx = new std::mutex;
  return *mtx;
}

std::vector<std::weak_ptr<pool_state>>& live_pools() {
  static auto* pools = new std::vector<std::weak_ptr<pool_state>>;
  return *pools;
}

} // namespace

pool_core::pool_core(std::shared_ptr<pool_state> state) noexcept
  : state_(std::move(state)) {
  // nop
}

void pool_core::end_all() {
  std::vector<std::shared_ptr<pool_state>> live;
  {
    std::lock_guard<std::mutex> guard{live_pools_mtx()};
    for (auto& p : live_pools())
      if (auto st = p.lock())
        live.push_back(std::move(st));
    live_pools().clear();
  }
  for (auto& st : live) {
    pool_core handle{st};
    handle.terminate();
    handle.join();
  }
}

pool_core::pool_core(options opts) {
  if (opts.processes < 0)
    throw error(errc::invalid_argument, "a pool needs at least one process");
  if (opts.processes == 0)
    opts.processes = static_cast<int>(
      std::max(1u, std::thread::hardware_concurrency()));
  if (opts.threads && !opts.listen.empty())
    throw error(errc::invalid_argument,
                "a thread pool has no worker processes: only a process pool "
                "accepts worker hosts");
  if (!opts.listen.empty() && opts.key_file.empty())
    throw error(errc::invalid_argument,
                "a pool that accepts worker hosts needs a key_file: the key "
                "they must prove");
  if (opts.lost_after < std::chrono::milliseconds{100})
    throw error(errc::invalid_argument,
                "lost_after must be at least 100 ms");
  if (opts.threads && (opts.task_timeout || opts.max_tasks_per_child > 0))
    throw error(errc::invalid_argument,
                "a thread cannot be stopped: thread pools have no task "
                "timeout and no maxtasksperchild");
  if (opts.retries < 0 || opts.max_tasks_per_child < 0
      || opts.max_restarts < 0
      || opts.restart_window < std::chrono::steady_clock::duration::zero()
      || (opts.task_timeout
          && *opts.task_timeout <= std::chrono::steady_clock::duration::zero()))
    throw error(errc::invalid_argument,
                "retries, maxtasksperchild, the restart budget, its window "
                "and the task timeout must not be negative (a timeout must "
                "be positive)");
  if (!opts.threads && !runtime::initialized())
    throw error(errc::not_initialized,
                "call actors::init(argc, argv) as the first statement of main "
                "before creating a pool");
  if (!opts.threads) {
    // The actor system starts here, on the caller's thread, so that a
    // failure to start it reaches the caller (not a feeder thread).
    runtime::get();
  }
  state_ = std::make_shared<pool_state>(std::move(opts));
  auto st = state_;
  if (!st->opts.listen.empty()) {
    // Before any worker: a pool that cannot listen fails as a whole.
    auto [host, port] = split_address(st->opts.listen);
    st->key = load_or_make_secret(st->opts.key_file);
    auto& o = st->opts;
    if (!o.tls_ca.empty() || !o.tls_certificate.empty()
        || !o.tls_private_key.empty())
      use_certificates(o.tls_ca, o.tls_certificate, o.tls_private_key);
    // The listener closes (in join) before the state goes.
    auto* raw = st.get();
    st->hosts_listener = std::make_unique<listener>(
      st->key, [raw](int fd, purpose p) { raw->on_connection(fd, p); },
      std::chrono::seconds{2}, host, port);
  }
  // On failure, the workers started stop again: the pool never was.
  auto undo = [this] {
    terminate();
    join();
  };
  try {
    std::lock_guard<std::mutex> guard{st->mtx};
    for (int i = 0; i < st->opts.processes; ++i)
      st->add_worker();
    st->start_workers();
  } catch (const error&) {
    undo();
    throw;
  } catch (const std::system_error& e) {
    undo();
    throw error(errc::spawn_failed,
                "cannot start a thread of the pool: " + e.code().message());
  } catch (...) {
    undo();
    throw;
  }
  if (!st->opts.threads) {
    std::lock_guard<std::mutex> guard{live_pools_mtx()};
    auto& pools = live_pools();
    pools.erase(std::remove_if(pools.begin(), pools.end(),
                               [](auto& p) { return p.expired(); }),
                pools.end());
    pools.push_back(st);
  }
}

std::uint16_t pool_core::port() const noexcept {
  return state_->hosts_listener ? state_->hosts_listener->port() : 0;
}

bool pool_core::wait_remote(std::size_t n,
                            std::chrono::steady_clock::duration timeout) {
  std::unique_lock<std::mutex> guard{state_->mtx};
  return state_->joined.wait_for(guard, at_most_forever(timeout), [&] {
    return state_->remote_workers >= n;
  });
}

std::size_t pool_core::workers() const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  return state_->serving();
}

std::size_t pool_core::remote_workers() const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  return state_->remote_workers;
}

std::uint64_t pool_core::host_actor(const std::string& host, closure target,
                                    std::shared_ptr<result_sink> sink,
                                    std::string& where) {
  return state_->host_actor(host, std::move(target), std::move(sink), where);
}

pool_core::~pool_core() {
  bool done;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    done = state_->ended()
           || (state_->stopping && state_->table.drained());
  }
  if (!done)
    terminate();
  join();
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
    first = state_->table.submit(jobs, n);
    if (!state_->opts.threads)
      state_->wake_idle(n);
  }
  if (state_->opts.threads && n == 1)
    state_->work.notify_one();
  else if (state_->opts.threads)
    state_->work.notify_all();
  return first;
}

bool pool_core::cancel_lost(std::uint64_t task) {
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    if (auto w = state_->holder(task); w && w->remote)
      state_->note_loss(w->host);
  }
  return cancel(task);
}

bool pool_core::cancel(std::uint64_t task) {
  std::vector<delivery> out;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    if (state_->table.cancel_queued(task, errc::cancelled,
                                    "the task was cancelled before it ran",
                                    out)) {
      // removed before it ran
    } else if (auto w = state_->holder(task); w && !state_->opts.threads) {
      // A running function cannot be interrupted: replace its worker
      // process (a thread cannot be replaced: its task runs on).
      state_->stop_task(*w, task, errc::cancelled,
                        "the task was cancelled while it ran", out);
    }
  }
  state_->deliver(out);
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
    state_->table.fail_all(errc::terminated,
                     "the pool was terminated before the task finished", out);
    state_->kill_workers();
    state_->idle.notify_all();
  }
  state_->deliver(out);
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
             || state_->table.drained();
    });
    state_->stopping = true;
  }
  state_->wake();
  // Workers stop once asked, after their current task (a feeder once its
  // process ended); slots are not refilled any more, and no host joins. A
  // pool may end on one of its own threads (a result's callback, or the
  // slot of an actor it hosted, dropped the last handle): that one is let
  // go, and if another thread is joining already (runtime::shutdown's
  // end_all), that one joins it too: waiting for its lock here would wait
  // for this very thread.
  std::unique_lock<std::mutex> guard{state_->join_mtx, std::defer_lock};
  if (!state_->on_own_thread())
    guard.lock();
  else if (!guard.try_lock())
    return;
  state_->hosts_listener.reset();
  for (auto& w : state_->workers) {
    if (!w.thread.joinable())
      continue;
    if (w.thread.get_id() == std::this_thread::get_id())
      w.thread.detach();
    else
      w.thread.join();
  }
  // Every result is delivered: once their callbacks ran, so has join.
  stop_callbacks(*state_->callbacks);
}

} // namespace actors::detail
