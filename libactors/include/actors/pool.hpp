#pragma once

// actors::pool, a pool of worker processes (Python's multiprocessing.Pool):
// its options, its results (async_result, result_stream) and range. The
// machinery under them is in detail/ (pool_core, result_slot,
// result_stream, pool_tasks).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "actors/detail/closure.hpp"
#include "actors/detail/function_ref.hpp"
#include "actors/detail/pool_core.hpp"
#include "actors/detail/pool_tasks.hpp"
#include "actors/detail/result_slot.hpp"
#include "actors/detail/result_stream.hpp"
#include "actors/error.hpp"

namespace actors {

/// The result of a task that may still be running: Python's `AsyncResult`.
/// `get` returns the value or throws the task's error (`errc::task_failed`
/// with the exception's type and message, `errc::worker_lost`,
/// `errc::terminated`); with a timeout it throws `errc::timeout` while the
/// task runs. Every result is resolved, with a value or an error, at the
/// latest when its pool is terminated or destroyed. Copies share the result.
template <class T>
class async_result {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// A result to come from `slot` (made by the pool).
  explicit async_result(std::shared_ptr<detail::result_slot<T>> slot)
    : slot_(std::move(slot)) {
    // nop
  }

  /// Waits for the result and returns it (a copy: `get` may be called
  /// again; a move-only result is moved out, and a second `get` is
  /// `errc::invalid_argument`).
  T get(std::optional<duration> timeout = std::nullopt) const {
    if constexpr (std::is_void_v<T>)
      slot_->get(timeout);
    else
      return slot_->get(timeout);
  }

  /// Waits until the result is ready; false if `timeout` ran out first.
  bool wait(std::optional<duration> timeout = std::nullopt) const {
    return slot_->wait(timeout);
  }

  /// Whether the result (a value or an error) is there.
  bool ready() const {
    return slot_->ready();
  }

  /// Whether the task succeeded; `errc::invalid_argument` if not ready.
  bool successful() const {
    return slot_->successful();
  }

  /// Calls `on_value(result)` or `on_error(code, message)` once the result
  /// is there (Python's `callback` / `error_callback`). For `void` results
  /// `on_value` takes a `std::monostate`. One pair per result: a later
  /// `then` before the result arrives replaces the earlier one.
  ///
  /// **Order.** As in Python, a callback attached before the result arrives
  /// runs before the result counts as ready: once `wait()` or `get()`
  /// returned, or `ready()` said true, its callback has run (an error's
  /// too). Attached after the result arrived, it runs at once, on this
  /// thread, and `wait()` makes no promise about it.
  ///
  /// **Thread.** Callbacks run on a thread of the pool kept for them (one
  /// per pool, started with the first callback), one at a time in the order
  /// the results arrived; never on the threads that feed workers or run
  /// tasks, so a slow callback delays only the callbacks after it, and a
  /// callback may wait for (`get`) another result of the same pool: that
  /// result is there for it as soon as its value arrived, even though that
  /// result's own callback runs after this one. `join()` returns once every
  /// callback ran. A callback that throws is reported on stderr and harms
  /// nothing else.
  template <class OnValue, class OnError>
  void then(OnValue on_value, OnError on_error) const {
    slot_->then(std::move(on_value), std::move(on_error));
  }

  /// Cancels the task: a queued one never runs, a running one is stopped by
  /// replacing its worker; the result fails with `errc::cancelled`. False if
  /// the result was already there (or, for map results, always).
  bool cancel() const {
    return slot_->cancel();
  }

private:
  std::shared_ptr<detail::result_slot<T>> slot_;
};

/// The results of `imap` / `imap_unordered` as they arrive: an input range
/// (usable in a range-for) and `next(timeout)`. Input is taken lazily, a
/// bounded window of chunks ahead, so an endless input runs in bounded memory.
/// A task's error is thrown at its position; iteration may continue after it.
///
/// **An input that throws** (its iterator's `*`, `++` or comparison, on the
/// thread calling `next`): as Python's `imap`, the stream first yields the
/// results of every chunk read before, then throws that exception itself,
/// as thrown, and ends (the next `next` returns nothing). The chunk being
/// filled when it happened is dropped, its inputs never run (chunks of 2,
/// the 8th input throws: six results, then the error). Unordered streams
/// too end with the error after every earlier result. (`map` and
/// `map_async` read their whole input at the call, so its error is thrown
/// there and nothing runs.)
/// A stream does not keep its pool alive: once the pool is destroyed, the
/// results in flight fail with `errc::terminated` and reading further
/// inputs with `errc::pool_not_running`.
template <class R>
class result_stream {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;
  /// What the stream and its chunks in flight share.
  using state = detail::stream_state<R>;

  /// A stream over a pool (made by `imap` and `imap_unordered`).
  result_stream(std::shared_ptr<detail::pool_core> pool,
                typename state::pull_fn pull, std::size_t window,
                bool ordered)
    : st_(std::make_shared<state>(window, ordered)) {
    st_->pool = std::move(pool);
    st_->pull = std::move(pull);
  }

  /// The next result, or nothing at the end; throws the task's error, the
  /// input's (once, then the stream ends), or `errc::timeout` when none
  /// arrived within `timeout`.
  std::optional<R> next(std::optional<duration> timeout = std::nullopt) {
    auto& s = *st_;
    for (;;) {
      if (s.pos < s.current.size())
        return std::move(s.current[s.pos++]);
      auto* got = s.take();
      if (got == nullptr) {
        top_up();
        if (s.in_flight == 0 && s.exhausted) {
          // Every result before the input's error is out: now the error,
          // once.
          if (auto err = std::exchange(s.input_error, nullptr))
            std::rethrow_exception(err);
          return std::nullopt;
        }
        s.collect();
        got = s.take();
      }
      if (got == nullptr) {
        wait_for_results(timeout);
        continue;
      }
      s.current.clear();
      s.pos = 0;
      if (got->single) {
        // In the memory `current` kept: a chunk of one allocates nothing.
        s.current.push_back(std::move(*got->single));
        state::release(got);
        continue;
      }
      auto results = std::move(got->results);
      state::release(got); // here, on this thread: the chunk came from it
      if (auto* err = std::get_if<std::pair<errc, std::string>>(&results))
        throw error(err->first, err->second);
      s.current = std::move(std::get<std::vector<R>>(results));
    }
  }

  class iterator {
  public:
    using iterator_category = std::input_iterator_tag;
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    using pointer = R*;
    using reference = R&;

    iterator() = default;
    explicit iterator(result_stream* s) : s_(s) {
      ++*this;
    }
    R& operator*() {
      return *x_;
    }
    iterator& operator++() {
      x_ = s_->next();
      if (!x_)
        s_ = nullptr;
      return *this;
    }
    bool operator==(const iterator& other) const {
      return s_ == other.s_;
    }
    bool operator!=(const iterator& other) const {
      return s_ != other.s_;
    }

  private:
    result_stream* s_ = nullptr;
    std::optional<R> x_;
  };

  /// Iterates the results; each step may wait, and rethrows a failed one.
  iterator begin() {
    return iterator{this};
  }
  /// The end of the results.
  iterator end() {
    return iterator{};
  }

private:
  // Waits until something arrives; `errc::timeout` after `timeout`.
  void wait_for_results(std::optional<duration> timeout) {
    auto& s = *st_;
    // No spin or yield first: on busy cores a yielding reader hands its
    // core to another program for a whole time slice (measured: imap
    // chunksize 1 fell from 3.4M to 139k tasks/s with two CPU hogs).
    if (s.pending()) {
      s.collect();
      return;
    }
    std::unique_lock<std::mutex> guard{s.mtx};
    s.waiting.store(true, std::memory_order_seq_cst);
    auto has_results = [&] { return s.pending(); };
    bool ok = true;
    timeout = detail::finite(timeout);
    if (!timeout)
      s.cv.wait(guard, has_results);
    else
      ok = s.cv.wait_for(guard, *timeout, has_results);
    s.waiting.store(false, std::memory_order_relaxed);
    guard.unlock();
    if (!ok)
      throw error(errc::timeout, "no result arrived in time");
    s.collect();
  }

  // Once 16 slots of the window are free, submits chunks until it is
  // full or the input ends, in one batch. Small batches keep the workers
  // fed without pause (between two batches they do not fall asleep), and
  // what this thread makes it soon frees, in its allocator's cache.
  void top_up() {
    auto& s = *st_;
    if (s.exhausted || s.in_flight + 16 > s.window)
      return;
    auto room = s.window - s.in_flight;
    auto pool = s.pool.lock();
    if (!pool)
      throw error(errc::pool_not_running,
                  "the pool of this stream was destroyed");
    std::vector<detail::pool_core::job> jobs;
    jobs.reserve(room);
    for (; jobs.size() < room; ++s.submitted) {
      detail::pool_core::job job;
      std::exception_ptr failed;
      bool more = false;
      try {
        more = s.pull(s.submitted, st_, job);
      } catch (...) {
        failed = std::current_exception(); // the input's: thrown in turn
      }
      if (!more) {
        s.exhausted = true;
        s.input_error = failed;
        break;
      }
      jobs.push_back(std::move(job));
    }
    if (jobs.empty())
      return;
    auto n = jobs.size();
    pool->submit(std::move(jobs)); // throws if the pool stopped: none went
    s.in_flight += n;
  }

  std::shared_ptr<state> st_;
};

/// A lazy range of integers [first, last), like Python's `range`: nothing
/// is materialized, so `imap(f, actors::range(0, 10'000'000))` holds only
/// the window of tasks in flight.
class range {
public:
  class iterator {
  public:
    using iterator_category = std::input_iterator_tag;
    using value_type = long long;
    using difference_type = long long;
    using pointer = const long long*;
    using reference = const long long&;

    explicit iterator(long long x = 0) : x_(x) {
    }
    const long long& operator*() const {
      return x_;
    }
    iterator& operator++() {
      ++x_;
      return *this;
    }
    bool operator==(const iterator& other) const {
      return x_ == other.x_;
    }
    bool operator!=(const iterator& other) const {
      return x_ != other.x_;
    }

  private:
    long long x_;
  };

  /// 0, 1, ..., last - 1.
  explicit range(long long last) : range(0, last) {
  }
  /// first, first + 1, ..., last - 1.
  range(long long first, long long last)
    : first_(first), last_(last < first ? first : last) {
  }
  /// The first number.
  iterator begin() const {
    return iterator{first_};
  }
  /// One past the last number.
  iterator end() const {
    return iterator{last_};
  }
  /// How many numbers.
  std::size_t size() const {
    return static_cast<std::size_t>(last_ - first_);
  }

private:
  long long first_;
  long long last_;
};

namespace detail {

/// What both pools (`actors::pool`, `actors::thread_pool`) spell the same
/// way, on top of their `apply_async`, `map_async`, `starmap_async` and
/// `stream`.
template <class Pool>
class pool_api {
public:
  /// `apply_async(...).get()`.
  template <class F, class... Args>
  auto apply(F&& fn, Args&&... args) {
    return self().apply_async(std::forward<F>(fn), std::forward<Args>(args)...)
      .get();
  }

  /// `map_async(...).get()`.
  template <class F, class Range>
  auto map(F&& fn, const Range& inputs, std::size_t chunksize = 0) {
    return self().map_async(std::forward<F>(fn), inputs, chunksize).get();
  }

  /// `starmap_async(...).get()`.
  template <class F, class Range>
  auto starmap(F&& fn, const Range& inputs, std::size_t chunksize = 0) {
    return self().starmap_async(std::forward<F>(fn), inputs, chunksize).get();
  }

  /// Results in input order as they become available, as a
  /// `result_stream`; `inputs` is read lazily and must outlive the stream.
  template <class F, class Range>
  auto imap(F&& fn, const Range& inputs, std::size_t chunksize = 1) {
    return self().stream(std::forward<F>(fn), inputs, chunksize, true);
  }

  /// Results in completion order.
  template <class F, class Range>
  auto imap_unordered(F&& fn, const Range& inputs, std::size_t chunksize = 1) {
    return self().stream(std::forward<F>(fn), inputs, chunksize, false);
  }

  /// No new work; what is queued still runs.
  void close() {
    core_->close();
  }

  /// Stops the workers and fails every outstanding result with
  /// `errc::terminated`.
  void terminate() {
    core_->terminate();
  }

  /// Waits for the queued work and the workers; `errc::pool_running` unless
  /// closed or terminated first.
  void join() {
    core_->join();
  }

protected:
  /// Over the pool `core`.
  explicit pool_api(std::shared_ptr<pool_core> core) : core_(std::move(core)) {
    // nop
  }

  /// The untyped pool: its task table and workers.
  std::shared_ptr<pool_core> core_;

private:
  Pool& self() {
    return static_cast<Pool&>(*this);
  }
};

} // namespace detail

/// How a pool sets up its workers and handles failures.
struct pool_options {
  /// How often a task is run again after its worker died while running it
  /// (counted per input of a map's chunk; tasks a dead worker held but did
  /// not run are rerun without counting).
  int retries = 1;
  /// Replace a worker after this many tasks (0: never), as Python's
  /// `maxtasksperchild`.
  int maxtasksperchild = 0;
  /// A task running longer fails with `errc::timeout`; its worker is
  /// replaced. Empty: no limit.
  std::optional<std::chrono::steady_clock::duration> task_timeout;
  /// More than `max_restarts` worker deaths within `restart_window` break
  /// the pool (`errc::pool_broken`) instead of respawning forever.
  int max_restarts = 10;
  /// The window of `max_restarts` (not negative).
  std::chrono::steady_clock::duration restart_window = std::chrono::seconds{10};

  /// Where worker processes of other hosts join this pool, "HOST:PORT"
  /// ("10.0.0.1:7000"; "0.0.0.0:7000" for every address of this host;
  /// port 0: any free one, see pool::port). Empty: the pool has only its
  /// local workers. Each joining host must run this same program, started
  /// as `PROGRAM --actors-worker HOST:PORT --actors-key-file FILE` (see
  /// actors::init), and prove the key in `key_file`.
  std::string listen;
  /// The key worker hosts must prove (32 bytes, mode 0600; created with a
  /// fresh key if missing: copy it to the hosts). Required with `listen`.
  std::string key_file;
  /// A worker host silent this long (killed, powered off, its link cut) is
  /// lost: its tasks are retried on the other workers (`retries` times).
  std::chrono::milliseconds lost_after = std::chrono::seconds{5};
  /// Between hosts every connection is TLS 1.3 (loopback ones stay plain).
  /// By default the key of `key_file` authenticates both sides (as a TLS
  /// pre-shared key). With these three PEM files instead, both sides show
  /// a certificate and verify the other's against the CA (the hosts get
  /// `--actors-tls-ca`, `--actors-tls-certificate` and
  /// `--actors-tls-private-key`). A missing, unreadable, mismatched or
  /// expired file is `errc::invalid_argument` here. The same files for
  /// every pool of a process.
  std::string tls_ca;
  std::string tls_certificate; ///< see tls_ca
  std::string tls_private_key; ///< see tls_ca

  /// Runs `fn(args...)` once in each worker before its first task (Python's
  /// `initializer` and `initargs`). If it throws, the pool is broken.
  template <class F, class... Args>
  pool_options& initializer(F&& fn, Args&&... args) {
    init_ = detail::closure::bind(std::forward<F>(fn),
                                  std::forward<Args>(args)...);
    return *this;
  }

private:
  friend class pool;

  // The initializer set by `initializer()` (empty: none).
  detail::closure init_;
};

/// A pool of worker processes: the counterpart of Python's
/// `multiprocessing.Pool`, supervised so that it never hangs or loses a task.
///
/// @code
/// int square(int x) { return x * x; }
///
/// actors::pool p{2};
/// auto r = p.apply_async(square, 7);           // async_result<int>
/// std::vector<int> xs = p.map(square, std::vector<int>{1, 2, 3});
/// for (int x : p.imap_unordered(square, xs))   // as they complete
///   std::cout << x << '\n';
/// p.close();
/// p.join();
/// @endcode
///
/// **Tasks** are plain functions or lambdas without captures, with typed,
/// serializable arguments and results, as for `actors::process`.
///
/// **Supervision.** The task table lives in this process; each worker
/// process is fed by a thread of this process over a direct channel (a
/// socket pair made when the worker is started), which keeps a few tasks in
/// flight when they are short and one when they are long, so an idle worker
/// is never starved.
/// When a worker process dies (SIGKILL, a segfault, `exit()`), the tasks it
/// held are rerun on other workers; only the task it was running is charged
/// with the death, and for a chunk of a map or a stream only the input that
/// ran (the chunk is rerun whole: its finished inputs run again). An input
/// charged more than `retries` times (default 1) fails its task with
/// `errc::worker_lost` naming the signal or exit code (for a map, the whole
/// map). A new process takes the dead one's place and the pool stays usable.
/// (A worker of another host cannot show what it ran: its loss charges
/// every task it held.) An exception thrown by
/// a task fails that task only (`errc::task_failed`, "type: message").
///
/// **Lifetime.** `close()` stops new work; `join()` (after `close` or
/// `terminate`, else `errc::pool_running`) waits for the queued work and the
/// workers. `terminate()` kills the workers and fails every outstanding
/// result with `errc::terminated`. The destructor terminates a pool that was
/// not joined; it never leaves a result unresolved.
///
/// **Budget.** Worker deaths beyond `pool_options::max_restarts` within
/// `restart_window`, or an initializer that throws, break the pool: every
/// outstanding and later task fails with `errc::pool_broken` (Python would
/// respawn a failing initializer forever).
class pool;

namespace detail {
/// The core of `p` (for actor_options::hosts).
const std::shared_ptr<pool_core>& core_of(const pool& p) noexcept;
} // namespace detail

class pool : public detail::pool_api<pool> {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// A pool of `processes` workers (0: one per core; negative:
  /// `errc::invalid_argument`).
  explicit pool(int processes = 0, pool_options opts = pool_options{})
    : pool_api(std::make_shared<detail::pool_core>(detail::pool_core::options{
      false, processes, opts.retries, std::move(opts.init_), opts.maxtasksperchild,
      opts.task_timeout, opts.max_restarts, opts.restart_window,
      std::move(opts.listen), std::move(opts.key_file), opts.lost_after,
      std::move(opts.tls_ca), std::move(opts.tls_certificate),
      std::move(opts.tls_private_key)})) {
    // nop
  }

  /// How many worker processes the pool keeps on this host.
  int processes() const noexcept {
    return core_->processes();
  }

  /// The TCP port worker hosts join on (`pool_options::listen`; 0 when the
  /// pool does not listen).
  std::uint16_t port() const noexcept {
    return core_->port();
  }

  /// Worker processes of other hosts serving the pool now.
  std::size_t remote_workers() const {
    return core_->remote_workers();
  }

  /// Waits until at least `n` worker processes of other hosts serve the
  /// pool; false if `timeout` ran out first. Tasks need not wait for them
  /// (they run on whoever serves), but a program that wants its work spread
  /// may.
  bool wait_for_remote_workers(std::size_t n, duration timeout) {
    return core_->wait_remote(n, timeout);
  }

  /// Runs `fn(args...)` on a worker; the result arrives later.
  template <class F, class... Args>
  auto apply_async(F&& fn, Args&&... args) {
    using R = typename detail::fn_traits<detail::fn_ptr_t<F>>::result;
    return detail::submit_one<R>(core_, detail::closure::bind_task(
                                          std::forward<F>(fn),
                                          std::forward<Args>(args)...));
  }

  /// `fn` applied to every element of `inputs`, in input order, computed in
  /// chunks of `chunksize` (0: about len / (4 x processes), as Python).
  template <class F, class Range>
  auto map_async(F&& fn, const Range& inputs, std::size_t chunksize = 0) {
    auto ptr = detail::as_function_pointer(std::forward<F>(fn));
    using traits = detail::fn_traits<decltype(ptr)>;
    static_assert(traits::arity == 1, "map takes a function of one argument; "
                                      "use starmap for several");
    using P = std::tuple_element_t<0, typename traits::args>;
    return detail::submit_map<typename traits::result, P>(
      *core_, inputs, chunksize,
      [ptr](std::vector<P> chunk) { return chunk_task(ptr, std::move(chunk)); });
  }

  /// Like `map_async`, for a function of several arguments, each input a
  /// tuple (or pair) of them.
  template <class F, class Range>
  auto starmap_async(F&& fn, const Range& inputs, std::size_t chunksize = 0) {
    auto ptr = detail::as_function_pointer(std::forward<F>(fn));
    using traits = detail::fn_traits<decltype(ptr)>;
    using P = typename traits::args;
    return detail::submit_map<typename traits::result, P>(
      *core_, inputs, chunksize, [ptr](std::vector<P> chunk) {
        return star_task(ptr, std::move(chunk));
      });
  }

private:
  friend class detail::pool_api<pool>;
  friend const std::shared_ptr<detail::pool_core>&
  detail::core_of(const pool& p) noexcept;

  template <class R, class... Ps>
  static detail::closure
  star_task(R (*fn)(Ps...),
            std::vector<std::tuple<std::decay_t<Ps>...>> chunk) {
    return detail::closure::bind_task(&detail::run_star_chunk<R, Ps...>,
                                      detail::function_ref<R(Ps...)>{fn},
                                      std::move(chunk));
  }

  template <class R, class P>
  static detail::closure chunk_task(R (*fn)(P), std::vector<std::decay_t<P>> chunk) {
    return detail::closure::bind_task(&detail::run_chunk<R, P>,
                                      detail::function_ref<R(P)>{fn},
                                      std::move(chunk));
  }

  template <class F, class Range>
  auto stream(F&& fn, const Range& inputs, std::size_t chunksize,
              bool ordered) {
    auto ptr = detail::as_function_pointer(std::forward<F>(fn));
    using traits = detail::fn_traits<decltype(ptr)>;
    static_assert(traits::arity == 1, "imap takes a function of one argument");
    using R = typename traits::result;
    using P = std::tuple_element_t<0, typename traits::args>;
    using state = detail::stream_state<R>;
    return detail::open_stream<R, P>(
      core_, inputs, chunksize, ordered,
      [ptr](std::vector<P>& chunk, std::size_t index,
            const std::shared_ptr<state>& st) {
        return detail::pool_core::job{
          chunk_task(ptr, std::move(chunk)),
          std::make_shared<detail::chunk_sink<state>>(st, index)};
      });
  }

};

inline const std::shared_ptr<detail::pool_core>&
detail::core_of(const pool& p) noexcept {
  return p.core_;
}

} // namespace actors
