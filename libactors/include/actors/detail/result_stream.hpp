#pragma once

// What a result_stream (imap, imap_unordered) and its chunks in flight
// share: the chunks submitted, their results as they arrive, and how the
// reader waits for them. Public templates need it; users never name it.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "actors/detail/pool_core.hpp"
#include "actors/error.hpp"

namespace actors::detail {

// What a result_stream and its chunks in flight share. The threads that
// deliver chunks (a thread pool's workers, a process pool's feeders) push
// them on `ready` without a lock; the thread reading the stream takes all
// of them at once and owns everything else. It sleeps on `cv` only after
// saying so in `waiting`, and only then do deliverers take `mtx` to wake it.
template <class R>
struct stream_state {
  using part = std::variant<std::vector<R>, std::pair<errc, std::string>>;
  // Makes the job of chunk `index` (false at the end of the input).
  using pull_fn = std::function<bool(
    std::size_t index, const std::shared_ptr<stream_state>& self,
    pool_core::job& job)>;

  // A chunk's results on their way to the reader. A thread pool's chunk
  // holds its own node and is its `owner`: the reader drops it, on the
  // thread that made it; other nodes are made by `add_chunk` (owner null).
  struct chunk_results {
    std::size_t index = 0;
    part results;
    std::optional<R> single; // the result of a chunk of one (results unused)
    std::shared_ptr<void> owner;
    chunk_results* next = nullptr;
  };

  stream_state(std::size_t window_size, bool in_order)
    : window(window_size), ordered(in_order), ring(window_size) {
    // nop
  }

  ~stream_state() {
    release(ready.exchange(nullptr));
    for (auto* x : ring)
      release(x);
  }

  // -- the reader's ---------------------------------------------------------

  // Not owned: the pool's owner decides when it ends (the tasks in flight
  // hold this state, and a pool should not end on one of its own threads).
  std::weak_ptr<pool_core> pool;
  pull_fn pull;
  const std::size_t window; // chunks submitted and not yet taken, at most
  const bool ordered;
  bool exhausted = false;
  std::exception_ptr input_error; // reading the input threw this
  std::size_t submitted = 0;
  std::size_t in_flight = 0; // submitted, not yet taken
  // Arrived, not yet taken. Ordered: chunk i in slot i % window; unordered:
  // the n-th chunk to complete in slot n % window.
  std::vector<chunk_results*> ring;
  std::size_t head = 0; // the next to take (ordered: the chunk index)
  std::size_t tail = 0; // unordered: chunk results moved to the ring so far
  std::vector<R> current; // the chunk being yielded
  std::size_t pos = 0;

  // -- shared ---------------------------------------------------------------

  // Pushed by deliverers, newest first.
  std::atomic<chunk_results*> ready{nullptr};
  std::atomic<bool> waiting{false};     // the reader sleeps (or is about to)
  std::mutex mtx;
  std::condition_variable cv;

  // The outcome of chunk `index` (a sink: see chunk_sink).
  void add_chunk(std::size_t index, outcome&& x) {
    auto* n = new chunk_results;
    n->index = index;
    if (!x.ok) {
      n->results = std::make_pair(x.code, std::move(x.what));
    } else {
      try {
        n->results = x.result.template take<std::vector<R>>();
      } catch (const error& e) {
        n->results = std::make_pair(static_cast<errc>(e.code().value()),
                                    std::string{e.what()});
      }
    }
    add_chunk(n);
  }

  // Hands `n` to the reader (any thread).
  void add_chunk(chunk_results* n) {
    auto* top = ready.load(std::memory_order_relaxed);
    do {
      n->next = top;
    } while (!ready.compare_exchange_weak(top, n, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
    if (waiting.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> guard{mtx};
      cv.notify_all();
    }
  }

  // Whether anything arrived that the reader has not collected.
  bool pending() const {
    return ready.load(std::memory_order_seq_cst) != nullptr;
  }

  // Moves what arrived into the ring (the reader).
  void collect() {
    auto* list = ready.exchange(nullptr, std::memory_order_acquire);
    if (list == nullptr)
      return;
    if (ordered) {
      while (list != nullptr) {
        auto* next = std::exchange(list->next, nullptr);
        ring[list->index % window] = list;
        list = next;
      }
      return;
    }
    // Newest first: reversed, they go to the ring in the order they came.
    chunk_results* oldest = nullptr;
    while (list != nullptr) {
      auto* next = list->next;
      list->next = oldest;
      oldest = list;
      list = next;
    }
    while (oldest != nullptr) {
      auto* next = std::exchange(oldest->next, nullptr);
      ring[tail++ % window] = oldest;
      oldest = next;
    }
  }

  // The next chunk to yield, taken from the ring; null if not there yet
  // (the reader).
  chunk_results* take() {
    auto& slot = ring[head % window];
    auto* x = slot;
    if (x == nullptr)
      return nullptr;
    slot = nullptr;
    ++head;
    --in_flight;
    return x;
  }

  // Frees a chunk's results and those linked after it (in `ready`; those in
  // the ring are linked to none).
  static void release(chunk_results* x) {
    while (x != nullptr) {
      auto* next = x->next;
      if (x->owner) {
        auto keep = std::move(x->owner); // frees x with its chunk
      } else {
        delete x;
      }
      x = next;
    }
  }
};

} // namespace actors::detail
