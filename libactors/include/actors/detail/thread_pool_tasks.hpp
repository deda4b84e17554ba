#pragma once

// How a thread pool's map and streams share their inputs and results with
// their chunks, which run on the pool's threads (nothing is copied or
// serialized). actors::thread_pool needs it; users never name it.

#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/detail/closure.hpp"
#include "actors/detail/pool_core.hpp"
#include "actors/detail/result_slot.hpp"
#include "actors/detail/result_stream.hpp"
#include "actors/error.hpp"

namespace actors::detail {

// A thread pool's map: its chunks read their inputs from, and write their
// results into, vectors shared with it, so a chunk copies nothing; it
// resolves the map once every chunk arrived (the first error in input order
// wins).
template <class R, class P, class F>
class shared_map {
public:
  shared_map(F fn, std::vector<P> inputs, std::size_t chunks,
             std::shared_ptr<result_slot<std::vector<R>>> slot)
    : fn_(std::move(fn)), inputs_(std::move(inputs)),
      results_(inputs_.size()), errors_(chunks), slot_(std::move(slot)),
      missing_(chunks) {
    if (chunks == 0)
      slot_->set({});
  }

  // Runs the elements [first, last): one chunk, on a worker thread.
  void run(std::size_t first, std::size_t last) {
    for (auto i = first; i < last; ++i)
      results_[i].emplace(fn_(std::move(inputs_[i])));
  }

  // The chunk's outcome (its chunk_results also publishes its results).
  void add_chunk(std::size_t index, outcome&& x) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!x.ok)
      errors_[index].emplace(x.code, std::move(x.what));
    if (--missing_ > 0)
      return;
    for (auto& err : errors_)
      if (err)
        return slot_->fail(err->first, std::move(err->second));
    std::vector<R> all;
    all.reserve(results_.size());
    for (auto& r : results_)
      all.push_back(std::move(*r));
    slot_->set(std::move(all));
  }

private:
  F fn_;
  std::vector<P> inputs_;
  std::vector<std::optional<R>> results_;
  std::vector<std::optional<std::pair<errc, std::string>>> errors_;
  std::shared_ptr<result_slot<std::vector<R>>> slot_;
  std::mutex mtx_;
  std::size_t missing_;
};

// One chunk of a shared_map: its task and its sink in one allocation.
template <class Map>
class shared_map_chunk final : public callable, public result_sink {
public:
  shared_map_chunk(std::shared_ptr<Map> map, std::size_t index,
                   std::size_t first, std::size_t last)
    : map_(std::move(map)), index_(index), first_(first), last_(last) {
    // nop
  }

  value operator()() override {
    map_->run(first_, last_);
    return {};
  }

  caf::error save(caf::serializer&) override {
    return caf::sec::state_not_serializable; // it never leaves the process
  }

  void deliver(outcome&& x) override {
    map_->add_chunk(index_, std::move(x));
  }

private:
  std::shared_ptr<Map> map_;
  std::size_t index_;
  std::size_t first_;
  std::size_t last_;
};

// One chunk of a thread pool's stream: its task and its sink in one
// allocation; its results reach the stream without a type-erased box. The
// thread reading the stream makes it and, as the chunk goes to the stream
// with its results, frees it: memory made and freed on one thread stays in
// that thread's cache of the allocator. A chunk of one input (imap's
// default) holds its input and result in place: one allocation in all.
template <class R, class P, class F>
class stream_chunk final : public callable, public result_sink {
public:
  using chunk_results = typename stream_state<R>::chunk_results;

  // Takes the inputs out of `inputs`.
  stream_chunk(std::shared_ptr<F> fn, std::vector<P>& inputs,
               std::shared_ptr<stream_state<R>> stream, std::size_t index)
    : fn_(std::move(fn)), stream_(std::move(stream)), index_(index) {
    if (inputs.size() == 1) {
      one_.emplace(std::move(inputs.front()));
    } else {
      inputs_ = std::move(inputs);
      results_.reserve(inputs_.size());
    }
  }

  value operator()() override {
    if (one_) {
      node_.single.emplace((*fn_)(std::move(*one_)));
      return {};
    }
    for (auto& x : inputs_)
      results_.push_back((*fn_)(std::move(x)));
    return {};
  }

  caf::error save(caf::serializer&) override {
    return caf::sec::state_not_serializable; // it never leaves the process
  }

  void deliver(outcome&& x) override {
    std::shared_ptr<result_sink> self;
    deliver_from(std::move(x), self);
  }

  void deliver_from(outcome&& x, std::shared_ptr<result_sink>& self) override {
    // The stream does not keep this chunk's reference to it (no cycle).
    auto stream = std::move(stream_);
    if (!x.ok)
      return stream->add_chunk(index_, std::move(x));
    // The chunk travels as its own node, which owns it.
    auto* node = &node_;
    if (self) {
      node_.owner = std::move(self);
    } else {
      node = new chunk_results;
      node->single = std::move(node_.single);
    }
    node->index = index_;
    if (!node->single)
      node->results = std::move(results_);
    stream->add_chunk(node);
  }

private:
  std::shared_ptr<F> fn_;
  std::optional<P> one_;   // the input of a chunk of one
  std::vector<P> inputs_;  // ... or the inputs of a larger one
  std::vector<R> results_; // and their results
  std::shared_ptr<stream_state<R>> stream_;
  std::size_t index_;
  chunk_results node_; // holds the result of a chunk of one
};

} // namespace actors::detail
