#pragma once

// The task table of a pool, as a plain class: no threads, no sockets, no
// actor system; its owner (pool_state) calls it under its own lock.
//
// It holds the queued tasks and, per worker, the tasks that worker took
// and has not settled; it settles outcomes into deliveries (sink, outcome)
// that the owner hands to their sinks outside its lock, and it implements
// the policies: a worker's death charges only the task it ran (and the
// input of its chunk), its other tasks are requeued uncharged, a task
// charged more than `retries` times fails with errc::worker_lost, deaths
// beyond the restart budget break the pool, and the window of tasks a
// worker process holds follows their running time.
//
// API: submit, take, settle / settle_all, cancel_queued, stop_task,
// on_worker_lost, fail_all; window_for (from a task's running time) and
// limit (the window, bounded by a fair share of the queue).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "actors/detail/closure.hpp"
#include "actors/detail/pool_core.hpp"
#include "process/supervision.hpp"

namespace actors::detail {

/// A task, queued or held by a worker.
struct task_entry {
  std::uint64_t id = 0;
  closure call;
  std::shared_ptr<result_sink> sink;
  /// The worker deaths charged to it, per input of its chunk (one entry for
  /// a plain task, or for a death that cannot say which input ran); made
  /// with the first (a pointer keeps the entries of the table small).
  std::unique_ptr<std::vector<std::pair<std::uint64_t, int>>> charges;
  /// Given to one worker (submit_to): never requeued, never rerun.
  bool pinned = false;

  /// Charges a death to `input`; returns how many that input has now.
  int charge(std::uint64_t input);
};

/// A double-ended queue of tasks in one ring buffer that grows and never
/// shrinks: unlike std::deque, which allocates and frees a block every few
/// entries, a queue that fills and drains all the time (on several
/// threads) keeps its memory. Slots outside the queue hold empty
/// (moved-from) entries.
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
  /// Removes the entry at `pos` (at the front: at once, else by moving the
  /// entries after it).
  void erase(iterator pos);

private:
  // Makes room for one more entry (the capacity stays a power of 2).
  void grow();

  std::vector<task_entry> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

/// The blocks of a std::deque of tasks that drained, kept for the next ones
/// (up to `max`), where it allocates them. The queue of a pool is filled on
/// one thread and drained on others: without the cache, each block freed on
/// another thread than made it waits on the allocator's lock, in glibc.
/// Used under the owner's lock, as the queue.
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

/// What a dead local worker process showed it ran (its progress page).
struct last_run {
  std::uint64_t task = 0; ///< 0: none (it died between tasks)
  std::uint64_t input = 0;
};

/// An outcome and the sink it goes to.
using delivery = std::pair<std::shared_ptr<result_sink>, outcome>;

/// A failed outcome of task `id`.
outcome failed(std::uint64_t id, errc code, std::string what);

/// The failure of `task`, for its sink.
delivery failure(task_entry&& task, errc code, std::string what);

class task_table {
public:
  using clock = std::chrono::steady_clock;

  /// A worker holds about this much work (by the running time of its last
  /// task), but at least one and at most `max_window` tasks.
  static constexpr auto work_in_flight = std::chrono::microseconds{2000};
  static constexpr std::size_t max_window = 128;

  struct policy {
    int retries = 1;    ///< how often a task lost with its worker is rerun
    int max_restarts = 10; ///< more deaths than this within ...
    clock::duration restart_window = std::chrono::seconds{10}; ///< ... this
    bool one_at_a_time = false; ///< a worker holds one task (task timeout)
  };

  /// The tasks one worker took and has not settled, in order.
  struct holding {
    task_ring taken;
    bool retiring = false; ///< the worker's end is planned: not a death
  };

  explicit task_table(policy p);

  task_table(const task_table&) = delete;
  task_table& operator=(const task_table&) = delete;

  /// Queues `n` tasks in order; returns the id of the first.
  std::uint64_t submit(pool_core::job* jobs, std::size_t n);

  /// Gives a task to worker `w` directly, after what it holds: it is not
  /// queued, and if `w` is lost it fails instead of being rerun (an actor's
  /// body, which its supervisor restarts). Returns its id.
  std::uint64_t submit_to(holding& w, pool_core::job job);

  /// Adds a worker's holding (stays valid as long as the table).
  holding& add_worker();

  /// Moves the first queued task to `w`; returns it (the caller copies or
  /// takes its call). Needs a queued task.
  task_entry& take(holding& w);

  /// Settles the outcome of a task `w` took; false if the task is not its
  /// any more (terminated, cancelled, timed out).
  bool settle(holding& w, outcome&& o, std::vector<delivery>& out);

  /// Settles every task `w` holds with `results`, in order (a worker
  /// thread's round).
  void settle_all(holding& w, std::vector<outcome>& results,
                  std::vector<delivery>& out);

  /// Fails everything queued or held with `code`.
  void fail_all(errc code, const std::string& what,
                std::vector<delivery>& out);

  /// Removes a queued task, failing it with `code`; false if not queued.
  bool cancel_queued(std::uint64_t task, errc code, const std::string& what,
                     std::vector<delivery>& out);

  /// The holding that has `task`, or null.
  holding* holder(std::uint64_t task);

  /// Fails `task`, which `w` holds, and marks `w` retiring: the owner
  /// replaces the worker (the only way to stop a running function).
  void stop_task(holding& w, std::uint64_t task, errc code,
                 const std::string& what, std::vector<delivery>& out);

  /// The worker of `w` ended unplanned, or with tasks: they are requeued
  /// first, in their order, or fail. Only the task that ran (`ran`, when
  /// the worker could show it) is charged, on the input of its chunk that
  /// ran; the others are requeued uncharged. Without `ran` every task it
  /// held is charged. Unless planned (retiring), the death counts against
  /// the restart budget if `counts`; returns false if that budget is spent
  /// (the owner breaks the pool).
  bool on_worker_lost(holding& w, const std::string& why, bool counts,
                      std::vector<delivery>& out,
                      std::optional<last_run> ran = std::nullopt);

  /// The window after a task that ran `micros` microseconds.
  static std::size_t window_for(std::uint32_t micros);

  /// How many tasks a worker may hold now: at most `window`, and a fair
  /// share of the tasks among `serving` workers; 1 with a task timeout.
  std::size_t limit(std::size_t window, std::size_t serving) const;

  /// Stores queued() where queued_hint() reads it (after takes).
  void publish_queued() {
    queued_hint_.store(queued_.size(), std::memory_order_relaxed);
  }

  /// queued(), as of the last change; may be read without the lock.
  std::size_t queued_hint() const {
    return queued_hint_.load(std::memory_order_relaxed);
  }

  std::size_t queued() const {
    return queued_.size();
  }
  std::size_t taken() const {
    return taken_;
  }
  /// No task queued or held.
  bool drained() const {
    return queued_.empty() && taken_ == 0;
  }
  const policy& settings() const {
    return policy_;
  }

private:
  policy policy_;
  restart_intensity deaths_;
  block_cache blocks_; // before queued_: it outlives it
  std::deque<task_entry, recycling_allocator<task_entry>> queued_{
    recycling_allocator<task_entry>{&blocks_}};
  std::deque<holding> holdings_;
  std::uint64_t next_task_ = 1;
  std::size_t taken_ = 0;
  std::atomic<std::size_t> queued_hint_{0};
};

} // namespace actors::detail
