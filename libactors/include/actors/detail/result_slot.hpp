#pragma once

// Where the result of a pool's task waits for its reader (async_result's
// state): a value or an error, once, and the callbacks attached to it; it
// is also the sink of the task. Public templates need it; users never name
// it.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

#include "actors/detail/pool_core.hpp"
#include "actors/detail/timeout.hpp"
#include "actors/error.hpp"

namespace actors::detail {

/// Reports on stderr that a result's callback threw (`what`: the
/// exception's message, null for a non-standard exception).
void report_callback_threw(const char* what) noexcept;

// Where a result waits for its reader: a value or an error, once. It is
// also the sink of the task that produces it. The callbacks attached before
// the result arrives run before it counts as done (before wait() and get()
// return), as Python's: on the callback thread of the pool delivering it
// (see callback_runner), or at once when no pool delivers it.
template <class T>
class result_slot final : public result_sink,
                          public std::enable_shared_from_this<result_slot<T>> {
public:
  using stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  using on_value = std::function<void(const stored&)>;
  using on_error = std::function<void(errc, const std::string&)>;

  void set(stored x) {
    settle([&] { value_ = std::move(x); });
  }

  void fail(errc code, std::string what) {
    settle([&] { error_ = std::make_pair(code, std::move(what)); });
  }

  bool wait(std::optional<std::chrono::steady_clock::duration> timeout) {
    std::unique_lock<std::mutex> guard{mtx_};
    auto ready = [this] { return ready_here(); };
    timeout = finite(timeout);
    if (!timeout) {
      cv_.wait(guard, ready);
      return true;
    }
    return cv_.wait_for(guard, *timeout, ready);
  }

  bool ready() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return ready_here();
  }

  bool successful() const {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!ready_here())
      throw error(errc::invalid_argument, "the result is not ready yet");
    return !error_;
  }

  // A copy, or for a move-only type (a thread pool's result) the value
  // itself, once.
  stored get(std::optional<std::chrono::steady_clock::duration> timeout) {
    if (!wait(timeout))
      throw error(errc::timeout, "the result was not ready in time");
    std::lock_guard<std::mutex> guard{mtx_};
    if (error_)
      throw error(error_->first, error_->second);
    if constexpr (std::is_copy_constructible_v<stored>) {
      return *value_;
    } else {
      if (taken_)
        throw error(errc::invalid_argument,
                    "a move-only result can be taken once");
      taken_ = true;
      return std::move(*value_);
    }
  }

  // Attached before the result arrives: replaces earlier callbacks, runs
  // before the result is done. Attached later: runs at once, here.
  void then(on_value ok, on_error err) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!settled_) {
        ok_ = std::move(ok);
        err_ = std::move(err);
        return;
      }
    }
    invoke(ok, err);
  }

  // The task to cancel on `cancel()`: `task` of `pool`.
  void cancels(std::weak_ptr<pool_core> pool, std::uint64_t task) {
    std::lock_guard<std::mutex> guard{mtx_};
    pool_ = std::move(pool);
    task_ = task;
  }

  bool cancel() {
    std::shared_ptr<pool_core> pool;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (settled_)
        return false;
      pool = pool_.lock();
    }
    return pool && pool->cancel(task_);
  }

  void deliver(outcome&& x) override {
    if (!x.ok)
      return fail(x.code, std::move(x.what));
    try {
      if constexpr (std::is_void_v<T>)
        set(std::monostate{});
      else
        set(x.result.template take<T>());
    } catch (const error& e) {
      fail(static_cast<errc>(e.code().value()), e.what());
    }
  }

private:
  // Done for this thread (under the lock): done, or settled and this is the
  // thread that runs (or will run) its callbacks, so that a callback may
  // read its own result and those queued behind it.
  bool ready_here() const {
    if (done_)
      return true;
    if (!settled_)
      return false;
    return runs_on_ == std::this_thread::get_id()
           || (runner_ != nullptr && runs_callbacks_of(runner_));
  }

  // Stores the outcome once; runs the callbacks (here, or queued on the
  // pool's callback thread), then marks the result done.
  template <class Store>
  void settle(Store store) {
    auto* runner = delivering_callbacks_to();
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (settled_)
        return;
      store();
      settled_ = true;
      if (!ok_ && !err_) {
        done_ = true;
        cv_.notify_all();
        return;
      }
      runner_ = runner;
    }
    std::function<void()> job = [self = this->shared_from_this()] {
      self->run_callbacks();
    };
    if (runner == nullptr || !post_callback(runner, job)) {
      {
        std::lock_guard<std::mutex> guard{mtx_};
        runner_ = nullptr;
      }
      job();
    }
  }

  void run_callbacks() {
    on_value ok;
    on_error err;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      ok = std::move(ok_);
      err = std::move(err_);
      ok_ = nullptr;
      err_ = nullptr;
      runs_on_ = std::this_thread::get_id();
    }
    invoke(ok, err);
    std::lock_guard<std::mutex> guard{mtx_};
    done_ = true;
    cv_.notify_all();
  }

  // Calls the callback the outcome (settled, so no longer written) asks
  // for, outside the lock; one that throws is reported and harms nothing
  // else.
  void invoke(const on_value& ok, const on_error& err) {
    try {
      if (error_ && err)
        err(error_->first, error_->second);
      else if (value_ && ok)
        ok(*value_);
    } catch (const std::exception& e) {
      report_callback_threw(e.what());
    } catch (...) {
      report_callback_threw(nullptr);
    }
  }

  mutable std::mutex mtx_;
  std::condition_variable cv_;
  bool settled_ = false; // the value or error is there
  bool done_ = false;    // ... and the callbacks attached before have run
  bool taken_ = false;
  std::optional<stored> value_;
  std::optional<std::pair<errc, std::string>> error_;
  on_value ok_;
  on_error err_;
  callback_runner* runner_ = nullptr; // where the callbacks were queued
  std::thread::id runs_on_;           // the thread running them
  std::weak_ptr<pool_core> pool_;
  std::uint64_t task_ = 0;
};

} // namespace actors::detail
