#pragma once

#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "actors/detail/thread_pool_tasks.hpp"
#include "actors/pool.hpp"

namespace actors {

/// A pool of worker threads in this process: the counterpart of Python's
/// `multiprocessing.pool.ThreadPool`, with the API of `actors::pool`.
///
/// @code
/// int offset = 10;
/// actors::thread_pool tp{2};
/// auto r = tp.apply_async([offset](int x) { return x + offset; }, 1);
/// for (auto y : tp.imap([&](int x) { return x * offset; },
///                       actors::range(10)))
///   std::cout << y << '\n';
/// @endcode
///
/// It is the same pool as `actors::pool` (the same task table, results and
/// error handling) with threads of this process as its workers, which take
/// their tasks from the table directly. As
/// nothing crosses a process boundary, any callable works, lambdas that
/// capture included, arguments and results need not be serializable, and
/// results are moved, not copied or serialized (a move-only result can be
/// taken once with `get`). `fn` is shared by the worker threads and may run
/// on several at once.
///
/// **Errors** are those of `actors::pool`: a task that throws fails with
/// `errc::task_failed` ("type: message"), a stream rethrows at the task's
/// position. A thread cannot be stopped from outside, so `cancel()` only
/// removes tasks that have not started, and `terminate()` fails every
/// outstanding result at once with `errc::terminated` while running tasks
/// finish on their own; `join()` and the destructor wait for them.
class thread_pool : public detail::pool_api<thread_pool> {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// A pool of `threads` workers (0: one per core; negative:
  /// `errc::invalid_argument`). `initializer` runs once on each worker
  /// thread before its first task; if it throws, the pool is broken
  /// (`errc::pool_broken`).
  explicit thread_pool(int threads = 0,
                       std::function<void()> initializer = nullptr)
    : pool_api(std::make_shared<detail::pool_core>(
      options(threads, std::move(initializer)))) {
    // nop
  }

  /// The number of worker threads.
  int threads() const noexcept {
    return core_->processes();
  }

  /// Runs `fn(args...)` on a worker thread; the result arrives later.
  template <class F, class... Args>
  auto apply_async(F&& fn, Args&&... args) {
    using R = std::decay_t<std::invoke_result_t<std::decay_t<F>&,
                                                std::decay_t<Args>...>>;
    return detail::submit_one<R>(
      core_, detail::closure::local(
               [fn = std::forward<F>(fn),
                args = std::make_tuple(std::forward<Args>(args)...)]() mutable
               -> decltype(auto) { return std::apply(fn, std::move(args)); }));
  }

  /// `fn` applied to every element of `inputs`, in input order, computed in
  /// chunks of `chunksize` (0: about len / (4 x threads), as Python).
  template <class F, class Range>
  auto map_async(F&& fn, const Range& inputs, std::size_t chunksize = 0) {
    using P = element_t<Range>;
    using R = std::decay_t<std::invoke_result_t<std::decay_t<F>&, P&&>>;
    return map_impl<R, P>(std::forward<F>(fn), inputs, chunksize);
  }

  /// Like `map_async`, each input a tuple (or pair) of arguments.
  template <class F, class Range>
  auto starmap_async(F&& fn, const Range& inputs, std::size_t chunksize = 0) {
    using P = element_t<Range>;
    using R = std::decay_t<decltype(std::apply(std::declval<std::decay_t<F>&>(),
                                               std::declval<P&&>()))>;
    auto star = [fn = std::forward<F>(fn)](P&& args) mutable -> R {
      return std::apply(fn, std::move(args));
    };
    return map_impl<R, P>(std::move(star), inputs, chunksize);
  }

private:
  friend class detail::pool_api<thread_pool>;

  static detail::pool_core::options options(int threads,
                                            std::function<void()> init) {
    detail::pool_core::options opts;
    opts.threads = true;
    opts.processes = threads;
    opts.retries = 0; // a thread never dies alone
    if (init)
      opts.initializer = detail::closure::local(std::move(init));
    return opts;
  }

  template <class Range>
  using element_t = std::decay_t<decltype(*std::begin(std::declval<const Range&>()))>;

  template <class R, class P, class F, class Range>
  async_result<std::vector<R>> map_impl(F&& fn, const Range& inputs,
                                        std::size_t chunksize) {
    static_assert(!std::is_void_v<R>,
                  "map collects results: the function must return a value "
                  "(use apply_async for void functions)");
    std::vector<P> all(std::begin(inputs), std::end(inputs));
    auto n = all.size();
    if (chunksize == 0)
      chunksize = detail::default_chunksize(n, threads());
    auto chunks = (n + chunksize - 1) / chunksize;
    using state = detail::shared_map<R, P, std::decay_t<F>>;
    auto slot = std::make_shared<detail::result_slot<std::vector<R>>>();
    auto st = std::make_shared<state>(std::forward<F>(fn), std::move(all),
                                      chunks, slot);
    // Submitted in batches, so that the workers start while the rest is cut.
    constexpr std::size_t batch = 256;
    std::vector<detail::pool_core::job> jobs;
    for (std::size_t c = 0; c < chunks; ++c) {
      auto first = c * chunksize;
      auto last = std::min(n, first + chunksize);
      auto chunk = std::make_shared<detail::shared_map_chunk<state>>(st, c,
                                                                    first,
                                                                    last);
      jobs.emplace_back(detail::closure::wrap(chunk), std::move(chunk));
      if (jobs.size() == batch || c + 1 == chunks) {
        core_->submit(std::move(jobs));
        jobs.clear();
      }
    }
    return async_result<std::vector<R>>{slot};
  }

  template <class F, class Range>
  auto stream(F&& fn, const Range& inputs, std::size_t chunksize, bool ordered) {
    using P = element_t<Range>;
    using R = std::decay_t<std::invoke_result_t<std::decay_t<F>&, P&&>>;
    static_assert(!std::is_void_v<R>,
                  "imap yields results: the function must return a value "
                  "(use apply_async for void functions)");
    using chunk = detail::stream_chunk<R, P, std::decay_t<F>>;
    auto shared = std::make_shared<std::decay_t<F>>(std::forward<F>(fn));
    return detail::open_stream<R, P>(
      core_, inputs, chunksize, ordered,
      [shared](std::vector<P>& inputs, std::size_t index,
               const std::shared_ptr<detail::stream_state<R>>& st) {
        auto c = std::make_shared<chunk>(shared, inputs, st, index);
        return detail::pool_core::job{detail::closure::wrap(c), std::move(c)};
      });
  }

};

} // namespace actors
