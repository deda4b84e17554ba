#pragma once

// How both pool kinds (actors::pool, actors::thread_pool) turn calls into
// tasks of their pool_core and collect the results: a map's chunks, the
// collector of their results, submitting one task, a map or a stream.
// Public templates need it; users never name it.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "actors/detail/closure.hpp"
#include "actors/detail/function_ref.hpp"
#include "actors/detail/pool_core.hpp"
#include "actors/detail/result_slot.hpp"
#include "actors/detail/result_stream.hpp"
#include "actors/error.hpp"

namespace actors {

template <class T>
class async_result;

template <class R>
class result_stream;

namespace detail {

// A chunk of a map or a stream, run in a worker process. It shows the pool
// which input runs (running_input), so that a death charges that one.
template <class R, class P>
std::vector<R> run_chunk(function_ref<R(P)> fn,
                         std::vector<std::decay_t<P>> items) {
  std::vector<R> out;
  out.reserve(items.size());
  auto* at = running_input();
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (at)
      at->store(i, std::memory_order_relaxed);
    out.push_back(fn(std::move(items[i])));
  }
  return out;
}

template <class R, class... Ps>
std::vector<R> run_star_chunk(function_ref<R(Ps...)> fn,
                              std::vector<std::tuple<std::decay_t<Ps>...>> items) {
  std::vector<R> out;
  out.reserve(items.size());
  auto* at = running_input();
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (at)
      at->store(i, std::memory_order_relaxed);
    out.push_back(std::apply(
      [&](auto&... args) { return fn(std::move(args)...); }, items[i]));
  }
  return out;
}

// Collects the chunks of a map: the whole result, or the error of the first
// failed chunk in input order.
template <class R>
class map_collector {
public:
  map_collector(std::size_t chunks, std::shared_ptr<result_slot<std::vector<R>>> slot)
    : parts_(chunks), slot_(std::move(slot)), missing_(chunks) {
    if (chunks == 0)
      slot_->set({});
  }

  void add_chunk(std::size_t index, outcome&& x) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (x.ok) {
      try {
        parts_[index] = x.result.template take<std::vector<R>>();
      } catch (const error& e) {
        parts_[index] = std::make_pair(static_cast<errc>(e.code().value()),
                                       std::string{e.what()});
      }
    } else {
      parts_[index] = std::make_pair(x.code, std::move(x.what));
    }
    if (--missing_ > 0)
      return;
    std::vector<R> all;
    for (auto& part : parts_) {
      if (auto* err = std::get_if<std::pair<errc, std::string>>(&part))
        return slot_->fail(err->first, std::move(err->second));
      auto& xs = std::get<std::vector<R>>(part);
      std::move(xs.begin(), xs.end(), std::back_inserter(all));
    }
    slot_->set(std::move(all));
  }

private:
  std::mutex mtx_;
  std::vector<std::variant<std::vector<R>, std::pair<errc, std::string>>> parts_;
  std::shared_ptr<result_slot<std::vector<R>>> slot_;
  std::size_t missing_;
};

template <class Collector>
class chunk_sink final : public result_sink {
public:
  chunk_sink(std::shared_ptr<Collector> c, std::size_t index)
    : c_(std::move(c)), index_(index) {
    // nop
  }
  void deliver(outcome&& x) override {
    c_->add_chunk(index_, std::move(x));
  }

private:
  std::shared_ptr<Collector> c_;
  std::size_t index_;
};

template <class F>
using fn_ptr_t = decltype(as_function_pointer(std::declval<F>()));

template <class Fn>
struct fn_traits;

template <class R, class... Ps>
struct fn_traits<R (*)(Ps...)> {
  using result = R;
  using signature = R(Ps...);
  using args = std::tuple<std::decay_t<Ps>...>;
  static constexpr std::size_t arity = sizeof...(Ps);
};

inline std::size_t default_chunksize(std::size_t n, int workers) {
  auto per = static_cast<std::size_t>(workers) * 4;
  auto size = n / per + (n % per != 0 ? 1 : 0);
  return size == 0 ? 1 : size;
}

// What both pool kinds share above pool_core: how results are collected.
// `make_task(std::vector<P>)` turns a chunk of inputs into a closure that
// returns the `std::vector<R>` of their results.

template <class R>
async_result<R> submit_one(const std::shared_ptr<pool_core>& core,
                           closure task) {
  auto slot = std::make_shared<result_slot<R>>();
  slot->cancels(core, core->submit(std::move(task), slot));
  return async_result<R>{slot};
}

template <class R, class P, class Range, class MakeTask>
async_result<std::vector<R>> submit_map(pool_core& core, const Range& inputs,
                                        std::size_t chunksize,
                                        MakeTask make_task) {
  std::vector<P> all(std::begin(inputs), std::end(inputs));
  if (chunksize == 0)
    chunksize = default_chunksize(all.size(), core.workers());
  auto chunks = (all.size() + chunksize - 1) / chunksize;
  auto slot = std::make_shared<result_slot<std::vector<R>>>();
  auto collector = std::make_shared<map_collector<R>>(chunks, slot);
  // Submitted in batches, so that the workers start while the rest is cut.
  constexpr std::size_t batch = 256;
  std::vector<pool_core::job> jobs;
  jobs.reserve(std::min(chunks, batch));
  for (std::size_t c = 0; c < chunks; ++c) {
    auto first = all.begin() + static_cast<std::ptrdiff_t>(c * chunksize);
    auto last = all.begin()
                + static_cast<std::ptrdiff_t>(
                  std::min(all.size(), (c + 1) * chunksize));
    jobs.emplace_back(make_task(std::vector<P>(std::make_move_iterator(first),
                                               std::make_move_iterator(last))),
                      std::make_shared<chunk_sink<map_collector<R>>>(collector,
                                                                     c));
    if (jobs.size() == batch || c + 1 == chunks) {
      core.submit(std::move(jobs));
      jobs.clear();
    }
  }
  return async_result<std::vector<R>>{slot};
}

// `make_job(chunk, index, state)` turns a chunk of inputs into the job
// that delivers its results to `state->add_chunk(index, ...)`; it takes the
// inputs out of `chunk`, a buffer it may leave its memory in for the next.
template <class R, class P, class Range, class MakeJob>
result_stream<R> open_stream(std::shared_ptr<pool_core> core,
                             const Range& inputs, std::size_t chunksize,
                             bool ordered, MakeJob make_job) {
  if (chunksize == 0)
    chunksize = 1;
  auto it = std::make_shared<decltype(std::begin(inputs))>(std::begin(inputs));
  auto end = std::end(inputs);
  auto pull = [make_job, it, end, chunksize, read = false,
               chunk = std::vector<P>{}](
                std::size_t index,
                const std::shared_ptr<stream_state<R>>& state,
                pool_core::job& job) mutable {
    chunk.clear();
    while (chunk.size() < chunksize) {
      // Past an input only to read the next (as Python's next()): an error
      // there belongs to that next input, and drops this chunk.
      if (read)
        ++*it;
      read = false;
      if (!(*it != end))
        break;
      chunk.push_back(**it);
      read = true;
    }
    if (chunk.empty())
      return false;
    job = make_job(chunk, index, state);
    return true;
  };
  auto window = 128 * core->workers();
  return result_stream<R>{std::move(core), std::move(pull), window, ordered};
}

} // namespace detail

} // namespace actors
