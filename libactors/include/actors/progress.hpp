#pragma once

#include <chrono>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <caf/actor.hpp>

namespace actors {

/// A live progress bar: the counterpart of Python's `tqdm`, drawn by this
/// process and advanced from any thread or process holding a copy.
///
/// @code
/// actors::thread_pool tp{2};
/// auto results = tp.imap(work, actors::range(10));
/// actors::progress bar{10};
/// for (auto& r : bar.wrap(results))      // +1 per result
///   bar.description("result=" + std::to_string(r));
///
/// actors::progress files{n, "worker 1"};  // by hand, from a worker process:
/// pool.apply_async(scan, paths, files);   // scan calls files.update()
/// @endcode
///
/// **What it shows**, as tqdm: `desc: 45%|████▌     | 45/100 [00:01<00:01,
/// 35.20it/s]`, or without a total `desc: 45it [00:01, 35.20it/s]`. Several
/// bars share the screen, one line each, in creation order.
///
/// **Where.** On standard error. On a terminal, the bars are redrawn in
/// place at most 10 times a second and fit its width. Otherwise (a pipe, a
/// file, a CI log) no control characters are written: each bar prints a
/// plain line at most every 5 seconds while it changes, and its final line
/// when it closes.
///
/// **Sharing.** A `progress` is a handle to a bar kept by a drawing actor in
/// the process that created it: copies, in threads or passed to processes
/// as task arguments, advance the same bar, each update one message. The bar
/// closes (its final state is drawn and kept) with `close()`, at the end of
/// a `wrap`ped iteration, when the last copy in the creating process is
/// destroyed, or when that process exits.
class progress {
public:
  /// The type of timeouts: any integral `std::chrono` duration converts to
  /// it; one of 36 years or more, such as `duration::max()`, is none.
  using duration = std::chrono::steady_clock::duration;

  /// An empty handle: updates do nothing. Exists to be assigned or
  /// deserialized.
  progress() = default;

  /// A new bar counting up to `total` (none: an open-ended count) with
  /// `description` in front.
  explicit progress(std::optional<long long> total,
                    std::string description = {});

  /// Advances the bar by `n`.
  void update(long long n = 1) const;

  /// Replaces the text in front of the bar (tqdm's `set_description`).
  void description(std::string text) const;

  /// Changes the total.
  void total(long long n) const;

  /// Draws the final state and keeps it on screen, and returns once it is
  /// there (so what is printed next comes below it); later updates are
  /// ignored. Idempotent.
  void close() const;

  /// Iterates over `r`, advancing the bar by one per element (once the loop
  /// body is done with it, as tqdm), and closes it at the end. An lvalue is
  /// referenced (it must outlive the loop), an rvalue moved in.
  template <class Range>
  auto wrap(Range&& r) const;

  /// tqdm's `format_meter`: the line of a bar at `n` of `total` after
  /// `elapsed`, at most `width` columns wide; `unicode` picks block
  /// characters over `#`.
  static std::string format_meter(long long n, std::optional<long long> total,
                                   duration elapsed,
                                   const std::string& description, int width,
                                   bool unicode = true);

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, progress& x) {
    return f(x.board_, x.id_);
  }

private:
  template <class Range>
  class wrapped;

  caf::actor board_;
  std::uint64_t id_ = 0;
  std::shared_ptr<void> closer_; // closes when the creator's copies are gone
};

template <class Range>
class progress::wrapped {
public:
  using base_iterator = decltype(std::begin(std::declval<Range&>()));
  using base_sentinel = decltype(std::end(std::declval<Range&>()));

  class iterator {
  public:
    using iterator_category = std::input_iterator_tag;
    using value_type = typename std::iterator_traits<base_iterator>::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = value_type*;
    using reference = decltype(*std::declval<base_iterator&>());

    iterator(base_iterator it, base_sentinel end, const progress* bar)
      : it_(std::move(it)), end_(std::move(end)), bar_(bar) {
      if (bar_ != nullptr && it_ == end_)
        bar_->close();
    }
    reference operator*() {
      return *it_;
    }
    iterator& operator++() {
      bar_->update(1);
      ++it_;
      if (it_ == end_)
        bar_->close();
      return *this;
    }
    bool operator==(const iterator& other) const {
      return it_ == other.it_;
    }
    bool operator!=(const iterator& other) const {
      return !(*this == other);
    }

  private:
    base_iterator it_;
    base_sentinel end_;
    const progress* bar_;
  };

  wrapped(Range&& r, progress bar)
    : r_(std::forward<Range>(r)), bar_(std::move(bar)) {
  }
  iterator begin() {
    return iterator{std::begin(r_), std::end(r_), &bar_};
  }
  iterator end() {
    return iterator{std::end(r_), std::end(r_), nullptr};
  }

private:
  Range r_; // a reference for lvalues
  progress bar_;
};

template <class Range>
auto progress::wrap(Range&& r) const {
  return wrapped<Range>{std::forward<Range>(r), *this};
}

} // namespace actors
