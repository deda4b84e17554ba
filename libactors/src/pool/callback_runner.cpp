// The thread of a pool that runs its results' callbacks (pool_core.hpp's
// callback_runner), one at a time in the order the results arrived; the
// report of a callback that threw (result_slot.hpp); and the base of result
// sinks.

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "actors/detail/result_slot.hpp"
#include "pool/pool_state.hpp"

namespace actors::detail {

result_sink::~result_sink() {
  // nop
}

void result_sink::deliver_from(outcome&& x, std::shared_ptr<result_sink>&) {
  deliver(std::move(x));
}

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

void report_callback_threw(const char* what) noexcept {
  if (what != nullptr)
    std::fprintf(stderr, "actors: a result callback threw: %s\n", what);
  else
    std::fprintf(stderr, "actors: a result callback threw\n");
}

std::shared_ptr<callback_runner> make_callback_runner() {
  return std::make_shared<callback_runner>();
}

void stop_callbacks(callback_runner& runner) {
  runner.stop();
}

callback_runner* set_delivering(callback_runner* runner) noexcept {
  return std::exchange(delivering, runner);
}

} // namespace actors::detail
