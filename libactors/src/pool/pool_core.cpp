// The pool's task table and its two kinds of workers.
//
// One scheduler: pool_state holds the queued tasks and those each worker
// holds, delivers outcomes to their sinks, and implements close/terminate/
// join, cancel, the task timeout, and the retry and restart budgets. Two
// kinds of workers take tasks from it, under its mutex:
//
// Worker threads (thread_pool) run the tasks they take. A thread cannot
// die alone, be killed or be replaced, so a thread pool never retries,
// kills or respawns.
//
// Worker processes are each fed by a thread of this process (its feeder),
// over a direct channel (channel.hpp) made when the feeder starts the
// process:
//   feeder -> worker   task(id, closure)          ... up to a window
//   worker -> feeder   outcome(outcome, micros)   in the order of the tasks
//                      init_failed(what)          the initializer threw
// The window adapts to the tasks' running time (about 2 ms of work in
// flight, 1 to 128 tasks, no more than a fair share of the queue, 1 after
// a pause), so trivial tasks stream while long ones stay spread over the
// workers; the worker sends its outcomes when it has no
// complete task left to run, or 32 at a time. The feeder stops a worker by
// shutting its side of the channel (the worker reads the end and exits),
// and learns of its death when the channel ends: the tasks it held are
// retried on others, and a new process takes its place, unless deaths
// exceed the restart budget, which breaks the pool (errc::pool_broken for
// everything outstanding and later). A local worker shows in a page of
// memory shared with the pool which task, and which input of its chunk, it
// runs (progress_page): the death is charged to that input only (after
// `retries` charges its task fails with errc::worker_lost naming the signal
// or exit code); the other tasks it held are rerun uncharged.
//
// Callbacks of results run on one more thread per pool (callback_runner),
// before the result counts as done, so that they neither hold up a feeder
// nor run after a waiter woke.

#include "actors/detail/pool_core.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/relax.hpp"
#include "net/auth.hpp"
#include "wire/channel.hpp"
#include "net/listener.hpp"
#include "lock/lock_server.hpp"
#include "queue/queue_hub.hpp"
#include "node/runtime.hpp"
#include "process/supervision.hpp"
#include "pool/worker.hpp"

namespace actors::detail {

result_sink::~result_sink() {
  // nop
}

void result_sink::deliver_from(outcome&& x, std::shared_ptr<result_sink>&) {
  deliver(std::move(x));
}

namespace {

using clock = std::chrono::steady_clock;

// A worker holds about this much work (by the running time of its last
// task), but at least one and at most `max_window` tasks.
constexpr auto work_in_flight = std::chrono::microseconds{2000};
constexpr std::size_t max_window = 128;

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

outcome failed(std::uint64_t id, errc code, std::string what) {
  outcome result;
  result.task = id;
  result.code = static_cast<std::uint8_t>(code);
  result.what = std::move(what);
  return result;
}

std::string render(const caf::error& err) {
  return runtime::get().system().render(err);
}

// What a local worker process shows its pool, in a page of memory they
// share (one page per worker slot of a memfd of the pool's, which the
// worker maps through /proc): which task, and which input of its chunk,
// runs now. Written by the worker with plain stores, read by the pool only
// once the worker is dead, so that its death is charged to the task (and
// input) that ran, not to every task it held.
struct progress_page {
  std::atomic<std::uint32_t> phase; // see below
  std::atomic<std::uint64_t> task;  // the task running; 0 between tasks
  std::atomic<std::uint64_t> input; // the input of its chunk running
};

enum : std::uint32_t {
  not_attached = 0,  // the worker has not mapped the page (yet)
  initializing = 1,  // it runs the initializer
  serving_tasks = 2, // it serves tasks: `task` tells
};

constexpr std::size_t page_size = 4096;

// The page of the thread serving tasks in this worker process (null in
// other processes and threads).
thread_local progress_page* shown_progress = nullptr;

} // namespace

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

namespace {

// Maps page `slot` of the memfd `fd` of process `owner` (the pool's
// progress pages); null if that fails (the pool then charges a death to
// every task the worker held, as it must when it cannot know).
progress_page* attach_progress(std::int32_t owner, std::int32_t fd,
                               std::uint32_t slot) {
  if (fd < 0)
    return nullptr;
  auto path = "/proc/" + std::to_string(owner) + "/fd/" + std::to_string(fd);
  auto local = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (local < 0)
    return nullptr;
  auto* p = ::mmap(nullptr, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   local, static_cast<off_t>(slot * page_size));
  ::close(local);
  return p == MAP_FAILED ? nullptr : static_cast<progress_page*>(p);
}

// The body of a local worker process: serves the pool over its channel,
// showing its progress in page `slot` of the memfd `progress_fd` of the
// pool's process `owner`.
void worker_main(closure initializer, std::int32_t owner,
                 std::int32_t progress_fd, std::uint32_t slot) {
  auto fd = runtime::take_channel();
  if (fd < 0)
    return; // not started by a pool
  channel ch{fd};
  shown_progress = attach_progress(owner, progress_fd, slot);
  serve_tasks(ch, initializer);
}

struct task_entry {
  std::uint64_t id = 0;
  closure call;
  std::shared_ptr<result_sink> sink;
  // The worker deaths charged to it, per input of its chunk (one entry for
  // a plain task, or for a death that cannot say which input ran); made
  // with the first (a pointer keeps the entries of the task table small).
  std::unique_ptr<std::vector<std::pair<std::uint64_t, int>>> charges;

  // Charges a death to `input`; returns how many that input has now.
  int charge(std::uint64_t input) {
    if (!charges)
      charges = std::make_unique<std::vector<std::pair<std::uint64_t, int>>>();
    for (auto& [x, n] : *charges)
      if (x == input)
        return ++n;
    charges->emplace_back(input, 1);
    return 1;
  }
};

// A double-ended queue of tasks in one ring buffer that grows and never
// shrinks: unlike std::deque, which allocates and frees a block every few
// entries, a queue that fills and drains all the time (the task table, on
// several threads) keeps its memory. Slots outside the queue hold empty
// (moved-from) entries.
class task_ring {
public:
  class iterator {
  public:
    using iterator_category = std::bidirectional_iterator_tag;
    using value_type = task_entry;
    using difference_type = std::ptrdiff_t;
    using pointer = task_entry*;
    using reference = task_entry&;

    iterator(task_ring* r, std::size_t i) : r_(r), i_(i) {
    }
    task_entry& operator*() const {
      return (*r_)[i_];
    }
    task_entry* operator->() const {
      return &(*r_)[i_];
    }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    iterator& operator--() {
      --i_;
      return *this;
    }
    bool operator==(const iterator& other) const {
      return i_ == other.i_;
    }
    bool operator!=(const iterator& other) const {
      return i_ != other.i_;
    }
    std::size_t index() const {
      return i_;
    }

  private:
    task_ring* r_;
    std::size_t i_;
  };

  bool empty() const {
    return size_ == 0;
  }
  std::size_t size() const {
    return size_;
  }
  task_entry& operator[](std::size_t i) {
    return buf_[(head_ + i) & (buf_.size() - 1)];
  }
  task_entry& front() {
    return (*this)[0];
  }
  task_entry& back() {
    return (*this)[size_ - 1];
  }
  iterator begin() {
    return {this, 0};
  }
  iterator end() {
    return {this, size_};
  }
  void push_back(task_entry&& x) {
    grow();
    (*this)[size_++] = std::move(x);
  }
  void push_front(task_entry&& x) {
    grow();
    head_ = (head_ + buf_.size() - 1) & (buf_.size() - 1);
    ++size_;
    front() = std::move(x);
  }
  void pop_front() {
    front() = task_entry{};
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
  }
  void pop_back() {
    back() = task_entry{};
    --size_;
  }
  void clear() {
    while (size_ > 0)
      pop_back();
    head_ = 0;
  }
  // Removes the entry at `pos` (at the front: at once, else by moving the
  // entries after it).
  void erase(iterator pos) {
    if (pos.index() == 0)
      return pop_front();
    for (auto i = pos.index(); i + 1 < size_; ++i)
      (*this)[i] = std::move((*this)[i + 1]);
    pop_back();
  }

private:
  // Makes room for one more entry (the capacity stays a power of 2).
  void grow() {
    if (size_ < buf_.size())
      return;
    std::vector<task_entry> bigger(std::max<std::size_t>(16, 2 * buf_.size()));
    for (std::size_t i = 0; i < size_; ++i)
      bigger[i] = std::move((*this)[i]);
    buf_ = std::move(bigger);
    head_ = 0;
  }

  std::vector<task_entry> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

// The blocks of a std::deque of tasks that drained, kept for the next ones
// (up to `max`), where it allocates them. The queue of a pool is filled on
// one thread and drained on others: without the cache, each block freed on
// another thread than made it waits on the allocator's lock, in glibc.
// Used under the pool's lock, as the queue.
struct block_cache {
  static constexpr std::size_t max = 256;
  std::vector<void*> blocks;
  block_cache() {
    blocks.reserve(max);
  }
  ~block_cache() {
    for (auto* p : blocks)
      ::operator delete(p);
  }
};

template <class T>
class recycling_allocator {
public:
  using value_type = T;

  explicit recycling_allocator(block_cache* cache) noexcept : cache_(cache) {
    // nop
  }
  template <class U>
  recycling_allocator(const recycling_allocator<U>& other) noexcept
    : cache_(other.cache_) {
    // nop
  }

  // The deque's blocks are its only allocations of T (all of one size);
  // its map of them is recycled by nobody.
  T* allocate(std::size_t n) {
    if constexpr (std::is_same_v<T, task_entry>) {
      if (!cache_->blocks.empty()) {
        auto* p = cache_->blocks.back();
        cache_->blocks.pop_back();
        return static_cast<T*>(p);
      }
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t) noexcept {
    if constexpr (std::is_same_v<T, task_entry>) {
      if (cache_->blocks.size() < block_cache::max) {
        cache_->blocks.push_back(p); // reserved: never allocates
        return;
      }
    }
    ::operator delete(p);
  }

  template <class U>
  bool operator==(const recycling_allocator<U>& other) const noexcept {
    return cache_ == other.cache_;
  }
  template <class U>
  bool operator!=(const recycling_allocator<U>& other) const noexcept {
    return cache_ != other.cache_;
  }

  block_cache* cache_;
};

// What a dead local worker process showed it ran (its progress_page).
struct last_run {
  std::uint64_t task = 0; // 0: none (it died between tasks)
  std::uint64_t input = 0;
};

using delivery = std::pair<std::shared_ptr<result_sink>, outcome>;

delivery failure(task_entry&& task, errc code, std::string what) {
  auto id = task.id;
  return {std::move(task.sink), failed(id, code, std::move(what))};
}

} // namespace

// Runs result callbacks off the threads that deliver results (see
// pool_core.hpp), on a thread started with the first callback.
class callback_runner : public std::enable_shared_from_this<callback_runner> {
public:
  // Queues `fn`; false if it runs on the caller instead (stopped, or no
  // thread could be made).
  bool post(std::function<void()>& fn) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopped_)
      return false;
    if (!thread_.joinable()) {
      try {
        thread_ = std::thread{[self = shared_from_this()] { self->run(); }};
      } catch (const std::system_error&) {
        return false;
      }
    }
    jobs_.push_back(std::move(fn));
    if (jobs_.size() == 1)
      cv_.notify_one();
    return true;
  }

  // Runs what is queued, then ends the thread: joined, or let go if this
  // is that thread (a callback that ended the pool).
  void stop() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopped_ = true;
      cv_.notify_one();
    }
    if (!thread_.joinable())
      return;
    if (thread_.get_id() == std::this_thread::get_id())
      thread_.detach();
    else
      thread_.join();
  }

  // The runner whose thread this is (null on other threads).
  static thread_local const callback_runner* current;

private:
  void run() {
    current = this;
    std::unique_lock<std::mutex> guard{mtx_};
    for (;;) {
      cv_.wait(guard, [this] { return !jobs_.empty() || stopped_; });
      if (jobs_.empty())
        return;
      auto fn = std::move(jobs_.front());
      jobs_.pop_front();
      guard.unlock();
      fn(); // the result catches what its callbacks throw
      fn = nullptr;
      guard.lock();
    }
  }

  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopped_ = false;
  std::thread thread_;
};

thread_local const callback_runner* callback_runner::current = nullptr;

namespace {

// The runner of the pool delivering results on this thread now.
thread_local callback_runner* delivering = nullptr;

} // namespace

callback_runner* delivering_callbacks_to() noexcept {
  return delivering;
}

bool post_callback(callback_runner* runner, std::function<void()>& fn) {
  return runner->post(fn);
}

bool runs_callbacks_of(const callback_runner* runner) noexcept {
  return callback_runner::current == runner;
}

// Shared by the users' threads and the workers, under `mtx`.
class pool_state : public std::enable_shared_from_this<pool_state> {
public:
  struct worker {
    std::thread thread; // the worker thread, or the process's feeder
    task_ring taken; // tasks taken and not settled, in order
    std::shared_ptr<child> proc;  // the worker process, while it runs
    int bell = -1;         // a feeder's eventfd, rung when it should look
    bool idle = false;     // the feeder waits for its bell
    bool rung = false;     // ... which rang: it is about to look
    bool retiring = false; // the process's end is planned: not a death
    // A worker of another host: its connection while it serves, and
    // whether the slot is free for the next one that joins.
    bool remote = false;
    int link = -1;
    bool vacant = false;
  };

  ~pool_state() {
    for (auto& w : workers)
      if (w.bell >= 0)
        ::close(w.bell);
    callbacks->stop();
    if (progress_map != nullptr)
      ::munmap(progress_map, progress_size);
    if (progress_fd >= 0)
      ::close(progress_fd);
  }

  std::mutex mtx;
  std::mutex join_mtx; // one thread joins the workers
  std::condition_variable idle; // no task queued or taken, or ended
  std::condition_variable work; // thread workers: a task, or time to stop
  pool_core::options opts;
  block_cache queue_blocks; // before queued: it outlives it
  std::deque<task_entry, recycling_allocator<task_entry>> queued{
    recycling_allocator<task_entry>{&queue_blocks}};
  std::deque<worker> workers; // grows as hosts join: references stay valid
  std::size_t remote_workers = 0; // serving now
  std::condition_variable joined; // remote_workers grew
  secret key;                     // what worker hosts prove
  std::unique_ptr<listener> door; // where they join (pool_core::open)
  restart_intensity deaths{0, {}}; // set from opts when the pool starts
  std::uint64_t next_task = 1;
  std::size_t taken = 0; // tasks held by workers
  std::atomic<std::size_t> queued_hint{0}; // queued.size(), read unlocked
  bool closed = false;
  bool terminated = false;
  bool stopping = false; // workers are told to stop once idle
  std::string broken;    // why the pool gave up; empty while it works
  // Where results run their callbacks.
  std::shared_ptr<callback_runner> callbacks
    = std::make_shared<callback_runner>();
  // The progress pages of the local worker processes (a memfd, one page
  // per slot, made with the first worker; none if that failed).
  std::once_flag progress_made;
  int progress_fd = -1;
  char* progress_map = nullptr;
  std::size_t progress_size = 0;

  bool ended() const {
    return terminated || !broken.empty();
  }

  // No task queued or held by a worker.
  bool drained() const {
    return queued.empty() && taken == 0;
  }

  // Fails everything outstanding with `code` (the caller delivers).
  void fail_all(errc code, const std::string& what,
                std::vector<delivery>& out) {
    for (auto& t : queued)
      out.push_back(failure(std::move(t), code, what));
    queued.clear();
    for (auto& w : workers) {
      for (auto& t : w.taken)
        out.push_back(failure(std::move(t), code, what));
      w.taken.clear();
    }
    taken = 0;
  }

  // Stops a worker process at once: kills a local one, and drops the
  // connection of a remote one (which ends when it sees that).
  static void kill(worker& w) {
    if (w.proc)
      w.proc->signal(SIGKILL);
    if (w.link >= 0)
      ::shutdown(w.link, SHUT_RDWR);
  }

  // Stops worker processes at once; threads finish their task first.
  void kill_workers() {
    for (auto& w : workers)
      kill(w);
    wake();
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

  // Settles the outcome of a task that worker `w` took (under the lock);
  // false if the task is not its any more (terminated, cancelled, timed
  // out).
  bool settle(worker& w, outcome&& o, std::vector<delivery>& out) {
    auto i = w.taken.begin();
    while (i != w.taken.end() && i->id != o.task)
      ++i;
    if (i == w.taken.end())
      return false;
    out.emplace_back(std::move(i->sink), std::move(o));
    w.taken.erase(i);
    if (--taken == 0 && queued.empty())
      idle.notify_all();
    return true;
  }

  // Finds the worker holding `task` (under the lock).
  worker* holder(std::uint64_t task) {
    for (auto& w : workers)
      for (auto& t : w.taken)
        if (t.id == task)
          return &w;
    return nullptr;
  }

  // Fails a task a worker process holds and replaces the process (the only
  // way to stop a running function); under the lock.
  void stop_task(worker& w, std::uint64_t task, errc code,
                 const std::string& what, std::vector<delivery>& out) {
    auto i = std::find_if(w.taken.begin(), w.taken.end(),
                          [&](const task_entry& t) { return t.id == task; });
    out.push_back(failure(std::move(*i), code, what));
    w.taken.erase(i);
    --taken;
    w.retiring = true;
    kill(w);
    if (drained())
      idle.notify_all();
  }

  void start_workers() {
    auto self = shared_from_this();
    for (std::uint32_t slot = 0; slot < workers.size(); ++slot) {
      auto& w = workers[slot];
      if (opts.threads) {
        w.thread = std::thread{[self, &w] { self->thread_loop(w); }};
        continue;
      }
      w.bell = make_bell();
      w.thread = std::thread{[self, &w, slot] { self->feeder_loop(w, slot); }};
    }
  }

  static int make_bell() {
    auto bell = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (bell < 0)
      throw error(errc::spawn_failed, std::string{"cannot create an eventfd: "}
                                        + std::strerror(errno));
    return bell;
  }

  // A worker thread: takes queued tasks until the pool stops or ends.
  void thread_loop(worker& me) {
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
    auto& mine = me.taken; // under the lock
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
        // Before sleeping, spin briefly (at most 5 us, never yielding the
        // core): a task submitted meanwhile is taken without a wake-up
        // through the kernel. A yield here cost a whole time slice when the
        // cores were busy.
        for (auto until = clock::now() + std::chrono::microseconds{5};
             queued_hint.load(std::memory_order_relaxed) == 0
             && clock::now() < until;)
          relax();
        guard.lock();
        work.wait(guard, [this] {
          return !queued.empty() || stopping || ended();
        });
        if (ended() || queued.empty())
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

  // A worker process's feeder: starts the process of its slot, feeds it,
  // and starts the next one when it ends, until the pool stops or ends.
  void feeder_loop(worker& w, std::uint32_t slot) {
    auto name = "PoolWorker-" + std::to_string(slot + 1);
    for (;;) {
      std::vector<delivery> out;
      int fd = -1;
      std::shared_ptr<child> proc;
      auto* page = progress_of(slot);
      try {
        proc = runtime::get().spawn(
          closure::bind(worker_main, opts.initializer,
                        static_cast<std::int32_t>(::getpid()),
                        page ? progress_fd : -1, slot),
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
        w.retiring = false;
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
        if (!stopped || !w.taken.empty())
          buried(w,
                 "worker process " + std::to_string(proc->pid) + " died ("
                   + describe_exit(proc->exitcode()) + ")",
                 true, out, last_run_of(page));
        again = !ended() && !(stopping && queued.empty());
      }
      deliver(out);
      if (!again)
        return;
    }
  }

  // The progress page of local worker slot `slot`, cleared for a new
  // process; null if the pages cannot be made (deaths are then charged to
  // every task a worker held).
  progress_page* progress_of(std::uint32_t slot) {
    std::call_once(progress_made, [this] {
      auto size = static_cast<std::size_t>(opts.processes) * page_size;
      auto fd = ::memfd_create("actors-pool-progress", MFD_CLOEXEC);
      if (fd < 0)
        return;
      void* p = MAP_FAILED;
      if (::ftruncate(fd, static_cast<off_t>(size)) == 0)
        p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        return;
      }
      progress_fd = fd;
      progress_map = static_cast<char*>(p);
      progress_size = size;
    });
    if (progress_map == nullptr
        || slot >= static_cast<std::uint32_t>(opts.processes))
      return nullptr;
    auto* page = reinterpret_cast<progress_page*>(progress_map
                                                  + slot * page_size);
    page->phase.store(not_attached);
    page->task.store(0);
    page->input.store(0);
    return page;
  }

  // What the dead worker process of `page` ran, if it could show it.
  static std::optional<last_run> last_run_of(const progress_page* page) {
    if (page == nullptr || page->phase.load() != serving_tasks)
      return std::nullopt;
    return last_run{page->task.load(), page->input.load()};
  }

  // Feeds the worker process of `w` over `ch` until the channel ends; true
  // if the feeder ended it (the pool stops, or the worker retires).
  bool feed(worker& w, channel& ch, std::vector<delivery>& out) {
    std::vector<std::pair<std::uint64_t, closure>> batch;
    std::vector<outcome> arrived;
    std::size_t window = 1;
    int sent = 0; // for maxtasksperchild
    bool shut = false;
    auto no_deadline = clock::time_point::max();
    auto deadline = no_deadline; // of the task in flight (a task timeout)
    std::unique_lock<std::mutex> guard{mtx, std::defer_lock};
    for (;;) {
      lock_soon(guard);
      for (auto& o : arrived)
        settle(w, std::move(o), out);
      arrived.clear();
      // At most the window, and a fair share of what is queued.
      auto limit = opts.task_timeout
                     ? 1
                     : std::min(window, std::max<std::size_t>(
                                          1, (queued.size() + taken)
                                               / serving()));
      auto retire = opts.max_tasks_per_child > 0
                    && sent >= opts.max_tasks_per_child;
      while (!shut && !retire && !ended() && w.taken.size() < limit
             && !queued.empty()) {
        auto& task = queued.front();
        batch.emplace_back(task.id, task.call);
        w.taken.push_back(std::move(task));
        queued.pop_front();
        ++taken;
        retire = opts.max_tasks_per_child > 0
                 && ++sent >= opts.max_tasks_per_child;
      }
      queued_hint.store(queued.size(), std::memory_order_relaxed);
      auto holds = w.taken.size(); // tasks the worker has or will have
      bool busy = holds > 0;
      if (!busy && !shut && (ended() || retire || (stopping && queued.empty()))) {
        shut = true;
        w.retiring = w.retiring || retire;
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
        if (!wait_idle(w, ch, arrived, window))
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
          settle(w, failed(id, errc::invalid_argument,
                           "the task cannot be sent to a worker process: "
                             + render(err)),
                 out);
          --holds;
          continue;
        }
        if (opts.task_timeout)
          deadline = clock::now() + *opts.task_timeout;
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
      int wait_ms = -1;
      if (deadline != no_deadline && busy) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - clock::now() + std::chrono::microseconds{999});
        wait_ms = static_cast<int>(std::max<std::int64_t>(0, left.count()));
      }
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
        return shut || w.retiring;
      }
      if (n == 0 && clock::now() < deadline)
        continue;
      if (n == 0) {
        // The task overran: it fails, and its worker is replaced (the only
        // way to stop a running function), without counting as a death.
        std::lock_guard<std::mutex> lock{mtx};
        if (!w.taken.empty())
          stop_task(w, w.taken.front().id, errc::timeout,
                    "the task ran longer than the pool's task timeout", out);
        deadline = no_deadline;
        continue;
      }
      if (p.revents & POLLOUT)
        ch.flush(false);
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        auto open = ch.fill(false);
        while (auto f = ch.next())
          read_frame(*f, ch, arrived, window);
        if (!arrived.empty())
          deadline = no_deadline;
        if (!open) {
          std::lock_guard<std::mutex> lock{mtx};
          for (auto& o : arrived)
            settle(w, std::move(o), out);
          return shut || w.retiring;
        }
      }
    }
  }

  // Reads one frame from a worker process.
  void read_frame(const channel::frame& f, channel& ch,
                  std::vector<outcome>& arrived, std::size_t& window) {
    if (f.kind == outcome_frame) {
      outcome o;
      std::uint32_t micros = 0;
      if (auto err = ch.get(f, o, micros))
        o = failed(o.task, errc::function_not_found,
                   "cannot read the task's result: " + render(err));
      arrived.push_back(std::move(o));
      window = std::clamp<std::size_t>(
        static_cast<std::size_t>(work_in_flight.count())
          / std::max<std::uint32_t>(micros, 1),
        1, max_window);
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

  // An idle feeder waits for its bell or for its worker to say something
  // (its initializer failed) or end; false when the channel ended.
  bool wait_idle(worker& w, channel& ch, std::vector<outcome>& arrived,
                 std::size_t& window) {
    pollfd p[2] = {{w.bell, POLLIN, 0}, {ch.fd(), POLLIN, 0}};
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
    std::uint64_t rung;
    [[maybe_unused]] auto n = ::read(w.bell, &rung, sizeof(rung));
    {
      std::lock_guard<std::mutex> guard{mtx};
      w.idle = false;
      w.rung = false;
    }
    if (lost)
      return false;
    if (p[1].revents == 0)
      return true;
    auto open = ch.fill(false);
    while (auto f = ch.next())
      read_frame(*f, ch, arrived, window);
    return open;
  }

  // Milliseconds until the remote worker of `w` counts as lost if nothing
  // arrives from it (it sends alive frames, worker.hpp); -1 for a local
  // one, whose death the end of its channel tells at once.
  int silence_left(const worker& w, const channel& ch) const {
    if (!w.remote)
      return -1;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(
      ch.heard() + opts.lost_after - clock::now());
    return static_cast<int>(
      std::clamp<std::int64_t>(left.count(), 0, INT_MAX));
  }

  // Whether the remote worker of `w` said nothing for lost_after: its host
  // is stopped or hung, or the link is cut, even if its kernel answers
  // TCP's keepalives. Then it is told to retire (a fresh process takes its
  // place should the host resume) and its connection is dropped, as a
  // cut one (ETIMEDOUT).
  bool silent(const worker& w, channel& ch) {
    if (!w.remote || clock::now() < ch.heard() + opts.lost_after)
      return false;
    if (!ch.put(retire_frame))
      ch.flush(false);
    ch.abandon(ETIMEDOUT);
    return true;
  }

  // Workers serving now: the local ones and the remote ones joined.
  std::size_t serving() const {
    return static_cast<std::size_t>(opts.processes) + remote_workers;
  }

  // The worker process of `w` ended unplanned, or with tasks (under the
  // lock): they are retried first, in their order, or fail; the death
  // counts against the restart budget if `counts` (a local process that
  // the pool replaces) unless it was planned.
  // Only the task that ran (`ran`, when the worker could show it) spends a
  // retry, on the input of its chunk that ran; the others it held, done or
  // not started, are rerun uncharged. Without `ran` (a worker of another
  // host) every task it held is charged.
  void buried(worker& w, const std::string& why, bool counts,
              std::vector<delivery>& out,
              std::optional<last_run> ran = std::nullopt) {
    while (!w.taken.empty()) {
      auto task = std::move(w.taken.back());
      w.taken.pop_back();
      --taken;
      auto charged = !w.retiring && (!ran || ran->task == task.id);
      if (charged && task.charge(ran ? ran->input : 0) > opts.retries)
        out.push_back(failure(std::move(task), errc::worker_lost,
                              why + " while running the task"));
      else
        queued.push_front(std::move(task));
    }
    queued_hint.store(queued.size(), std::memory_order_relaxed);
    if (counts && !w.retiring && !ended()) {
      if (!deaths.allow())
        break_pool("workers died more than "
                     + std::to_string(opts.max_restarts)
                     + " times within the restart window; last: " + why,
                   out);
    }
    if (!queued.empty())
      ring(queued.size());
    if (drained())
      idle.notify_all();
  }

  // A connection authenticated at the pool's listener (on its thread).
  void arrived(int fd, purpose p) {
    watch_link(fd, opts.lost_after);
    if (p == purpose::node) {
      runtime::get().accept_node(fd); // BASP, for actor handles in tasks
      return;
    }
    if (p == purpose::hub) {
      runtime::get().hub().serve_stream(fd); // queues and pipes
      return;
    }
    if (p == purpose::lock) {
      serve_lock_stream(fd); // a thread of another host using our locks
      return;
    }
    std::lock_guard<std::mutex> guard{mtx};
    auto w = std::find_if(workers.begin(), workers.end(),
                          [](const worker& x) { return x.vacant; });
    if (w == workers.end()) {
      w = workers.emplace(workers.end());
      w->remote = true;
      w->bell = make_bell();
    } else if (w->thread.joinable()) {
      w->thread.join(); // its last worker has left (vacant is its last act)
    }
    w->vacant = false;
    w->retiring = false;
    w->idle = false;
    w->rung = false;
    auto self = shared_from_this();
    w->thread = std::thread{[self, &w = *w, fd] { self->remote_loop(w, fd); }};
  }

  // Serves the remote worker on `fd` in slot `w` until it leaves or is
  // lost; then its tasks are retried on the others.
  void remote_loop(worker& w, int fd) {
    std::vector<delivery> out;
    {
      channel ch{fd};
      std::string who;
      auto why = greet(ch, who);
      bool closing = false;
      {
        std::lock_guard<std::mutex> guard{mtx};
        closing = why.empty() && (ended() || stopping);
        if (why.empty() && !closing) {
          w.link = fd;
          ++remote_workers;
          joined.notify_all();
        }
      }
      if (closing) {
        ch.put(closed_frame);
        ch.flush(true);
      } else if (!why.empty()) {
        if (!ch.put(refused_frame, why))
          ch.flush(true);
      } else if (welcome(ch)) {
        auto stopped = feed(w, ch, out);
        auto reason = lost(ch.failure());
        std::lock_guard<std::mutex> guard{mtx};
        w.link = -1;
        --remote_workers;
        if (!stopped || !w.taken.empty())
          buried(w, "worker " + who + " " + reason, false, out);
      } else {
        std::lock_guard<std::mutex> guard{mtx};
        w.link = -1;
        --remote_workers;
      }
    }
    deliver(out);
    std::lock_guard<std::mutex> guard{mtx};
    w.vacant = true;
  }

  // Reads a joining worker's hello (within lost_after); returns why it may
  // not join (empty if it may) and sets `who` to "PID on HOST".
  std::string greet(channel& ch, std::string& who) {
    auto deadline = clock::now() + opts.lost_after;
    for (;;) {
      if (auto f = ch.next()) {
        std::string id;
        std::string host;
        std::uint32_t pid = 0;
        if (f->kind != hello_frame || ch.get(*f, id, host, pid))
          return "it did not greet as a worker";
        who = std::to_string(pid) + " on " + host;
        if (id != program_id())
          return "it runs another program (build " + id
                 + ") than the pool (build " + program_id()
                 + "): tasks are code of the pool's program";
        return {};
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - clock::now());
      pollfd p{ch.fd(), POLLIN, 0};
      if (left.count() <= 0
          || ::poll(&p, 1, static_cast<int>(left.count()) + 1) == 0)
        return "it did not greet within "
               + std::to_string(opts.lost_after.count()) + " ms";
      if (!ch.fill(false))
        return "it left before greeting";
    }
  }

  // Sends the welcome; false if the worker is gone already.
  bool welcome(channel& ch) {
    auto ms = static_cast<std::uint32_t>(opts.lost_after.count());
    if (auto err = ch.put(welcome_frame, opts.initializer, ms)) {
      auto why = "the pool's initializer cannot be sent: " + render(err);
      ch.put(refused_frame, why);
      ch.flush(true);
      return false;
    }
    return ch.flush(true);
  }

  // Why a remote worker's connection ended, from its error (errno).
  std::string lost(int err) const {
    if (err == ETIMEDOUT)
      return "was lost: no answer from its host for "
             + std::to_string(opts.lost_after.count())
             + " ms (the host is down, stopped or hung, or the link is cut)";
    if (err != 0)
      return std::string{"was lost: "} + std::strerror(err);
    return "disconnected (its process or host ended)";
  }

  // Rings the bells of up to `n` idle feeders (under the lock).
  void ring(std::size_t n) {
    for (auto& w : workers) {
      if (n == 0)
        return;
      // A feeder rung already takes one task: ring another for the next.
      if (w.idle && !w.rung && w.bell >= 0) {
        w.rung = true;
        std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(w.bell, &one, sizeof(one));
        --n;
      }
    }
  }

  // Tells every worker that there is work, or that it is time to stop.
  void wake() {
    if (opts.threads) {
      work.notify_all();
      return;
    }
    for (auto& w : workers) {
      if (w.bell >= 0) {
        std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(w.bell, &one, sizeof(one));
      }
    }
  }

  // Delivers outcomes (outside the lock); the callbacks of their results
  // go to this pool's callback thread.
  void deliver(std::vector<delivery>& xs) {
    if (xs.empty())
      return;
    auto* before = delivering;
    delivering = callbacks.get();
    for (auto& [sink, o] : xs)
      sink->deliver_from(std::move(o), sink);
    delivering = before;
  }
};

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

pool_core::pool_core(options opts) : state_(std::make_shared<pool_state>()) {
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
  auto st = state_;
  st->opts = std::move(opts);
  st->deaths = restart_intensity{st->opts.max_restarts, st->opts.restart_window};
  if (!st->opts.listen.empty()) {
    // Before any worker: a pool that cannot listen fails as a whole.
    auto [host, port] = split_address(st->opts.listen);
    st->key = load_or_make_secret(st->opts.key_file);
    auto* raw = st.get(); // the door closes (in join) before the state goes
    st->door = std::make_unique<listener>(
      st->key, [raw](int fd, purpose p) { raw->arrived(fd, p); },
      std::chrono::seconds{2}, host, port);
  }
  // On failure, the workers started stop again: the pool never was.
  auto undo = [this] {
    terminate();
    join();
  };
  try {
    std::lock_guard<std::mutex> guard{st->mtx};
    st->workers.resize(static_cast<std::size_t>(st->opts.processes));
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
  return state_->door ? state_->door->port() : 0;
}

bool pool_core::wait_remote(std::size_t n,
                            std::chrono::steady_clock::duration timeout) {
  std::unique_lock<std::mutex> guard{state_->mtx};
  return state_->joined.wait_for(guard, timeout, [&] {
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
                                          std::move(jobs[i].second), {}});
    state_->queued_hint.store(state_->queued.size(), std::memory_order_relaxed);
    if (!state_->opts.threads)
      state_->ring(n);
  }
  if (state_->opts.threads && n == 1)
    state_->work.notify_one();
  else if (state_->opts.threads)
    state_->work.notify_all();
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
    state_->fail_all(errc::terminated,
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
             || state_->drained();
    });
    state_->stopping = true;
  }
  state_->wake();
  // Workers stop once asked, after their current task (a feeder once its
  // process ended); slots are not refilled any more, and no host joins. A
  // pool may end on one of its own threads (a result's callback dropped
  // it): that one is let go.
  std::lock_guard<std::mutex> guard{state_->join_mtx};
  state_->door.reset();
  for (auto& w : state_->workers) {
    if (!w.thread.joinable())
      continue;
    if (w.thread.get_id() == std::this_thread::get_id())
      w.thread.detach();
    else
      w.thread.join();
  }
  // Every result is delivered: once their callbacks ran, so has join.
  state_->callbacks->stop();
}

} // namespace actors::detail
