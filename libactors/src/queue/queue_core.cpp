#include "queue/queue_core.hpp"

#include <algorithm>
#include <atomic>

#include "base/deadline.hpp"

namespace actors::detail {

std::chrono::nanoseconds spin_time() noexcept {
  static const auto value = spin_from_env("ACTORS_QUEUE_SPIN_US", 20);
  return value;
}

namespace {

q_outcome closed_outcome(const char* what) {
  return q_outcome::fail(errc::closed, what);
}

} // namespace

std::uint64_t queue_core::park(std::deque<waiter>& line, answer_fn answer,
                               value item) {
  auto serial = next_serial_++;
  line.push_back(waiter{serial, std::move(answer), std::move(item)});
  return serial;
}

queue_core::result queue_core::put(value item, bool wait, answer_fn answer) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (closed_)
    return closed_outcome("put on a closed queue");
  if (putters_.empty() && has_room()) {
    items_.push_back(std::move(item));
    ++unfinished_;
    settle();
    return q_outcome{};
  }
  if (!wait)
    return q_outcome::fail(errc::queue_full, "the queue is full");
  return park(putters_, std::move(answer), std::move(item));
}

bool queue_core::put_buffered(std::vector<value>& items) {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& item : items)
    items_.push_back(std::move(item));
  unfinished_ += items.size();
  items.clear();
  settle();
  return !closed_;
}

queue_core::result queue_core::get(bool wait, answer_fn answer) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!items_.empty() && getters_.empty()) {
    q_outcome result;
    result.item = std::move(items_.front());
    items_.pop_front();
    settle();
    return result;
  }
  if (closed_)
    return closed_outcome("the queue is closed and drained");
  if (!wait)
    return q_outcome::fail(errc::queue_empty, "the queue is empty");
  return park(getters_, std::move(answer));
}

queue_core::result queue_core::poll(bool wait, answer_fn answer) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (!items_.empty() || closed_ || !wait) {
    q_outcome result;
    result.flag = !items_.empty() || closed_;
    return result;
  }
  return park(pollers_, std::move(answer));
}

queue_core::result queue_core::join(bool wait, answer_fn answer) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (unfinished_ == 0)
    return q_outcome{};
  if (!wait)
    return q_outcome::fail(errc::timeout, "unfinished tasks remain");
  return park(joiners_, std::move(answer));
}

q_outcome queue_core::task_done() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (unfinished_ == 0)
    return q_outcome::fail(errc::too_many_task_done,
                         "task_done() called more times than items were put");
  if (--unfinished_ == 0) {
    for (auto& w : joiners_)
      w.answer(q_outcome{});
    joiners_.clear();
  }
  return q_outcome{};
}

bool queue_core::close_locked() {
  if (closed_)
    return false;
  closed_ = true;
  settle();
  return true;
}

void queue_core::close() {
  bool now = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    now = close_locked();
  }
  closed_now(now);
}

queue_ref::stats queue_core::snapshot() {
  std::lock_guard<std::mutex> guard{mtx_};
  return {items_.size(), maxsize_, getters_.size(), putters_.size()};
}

void queue_core::settle() {
  for (;;) {
    if (!items_.empty() && !getters_.empty()) {
      auto w = std::move(getters_.front());
      getters_.pop_front();
      auto item = std::move(items_.front());
      items_.pop_front();
      q_outcome result;
      result.item = item; // shares the boxed value
      if (!w.answer(std::move(result)))
        items_.push_front(std::move(item));
    } else if (!putters_.empty() && has_room()) {
      auto w = std::move(putters_.front());
      putters_.pop_front();
      items_.push_back(std::move(w.item));
      ++unfinished_;
      w.answer(q_outcome{});
    } else {
      break;
    }
  }
  if (!items_.empty() || closed_) {
    for (auto& w : pollers_) {
      q_outcome ready;
      ready.flag = true;
      w.answer(std::move(ready));
    }
    pollers_.clear();
  }
  if (closed_) {
    for (auto* line : {&getters_, &putters_})
      for (auto& w : *line)
        w.answer(closed_outcome("the queue was closed"));
    getters_.clear();
    putters_.clear();
  }
}

void queue_core::expire(std::uint64_t serial) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto expire_in = [&](std::deque<waiter>& line, auto make) {
    auto i = std::find_if(line.begin(), line.end(), [&](const waiter& w) {
      return w.serial == serial;
    });
    if (i == line.end())
      return false;
    auto w = std::move(*i);
    line.erase(i);
    w.answer(make());
    return true;
  };
  expire_in(putters_,
            [] { return q_outcome::fail(errc::queue_full, "the queue stayed full"); })
    || expire_in(getters_,
                 [] {
                   return q_outcome::fail(errc::queue_empty,
                                        "the queue stayed empty");
                 })
    || expire_in(pollers_, [] { return q_outcome{}; })
    || expire_in(joiners_, [] {
         return q_outcome::fail(errc::timeout, "unfinished tasks remain");
       });
}

void queue_core::cancel(std::uint64_t serial) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto match = [serial](const waiter& w) { return w.serial == serial; };
  for (auto* line : {&getters_, &putters_, &pollers_, &joiners_})
    line->erase(std::remove_if(line->begin(), line->end(), match),
                line->end());
}

void queue_core::requeue(value item) {
  std::lock_guard<std::mutex> guard{mtx_};
  items_.push_front(std::move(item));
  settle();
}

bool queue_core::attach(holder_role role, const caf::actor_addr& holder,
                        const caf::actor_addr& sender, std::uint64_t id) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& h = side(role);
  auto fresh = h.processes.insert(holder).second;
  // The receiver holds it now: the flight ends (or will as it departs).
  if (id != 0 && h.flights.erase({sender, id}) == 0)
    h.attached_early.emplace(sender, id);
  return fresh;
}

void queue_core::depart(holder_role role, const caf::actor_addr& sender,
                        std::uint64_t id) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& h = side(role);
  if (h.attached_early.erase({sender, id}) == 0)
    h.flights.emplace(sender, id);
}

void queue_core::detach(holder_role role, const caf::actor_addr& holder) {
  bool now = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto& h = side(role);
    if (h.processes.erase(holder) > 0 && h.none())
      now = close_locked();
  }
  closed_now(now);
}

void queue_core::lost_in_flight(holder_role role,
                                const caf::actor_addr& sender,
                                std::uint64_t id) {
  bool now = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto& h = side(role);
    if (h.flights.erase({sender, id}) > 0 && h.none())
      now = close_locked();
  }
  closed_now(now);
}

void queue_core::holder_gone(const caf::actor_addr& holder) {
  bool now = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    // Like a pipe whose every descriptor of one side was closed; a
    // descriptor it was sending dies with it, as with Python's.
    for (auto* h : {&readers_, &writers_}) {
      auto held = h->processes.erase(holder) > 0;
      auto from = [&](std::set<holders::flight>& xs) {
        auto first = xs.lower_bound({holder, 0});
        auto last = first;
        while (last != xs.end() && last->first == holder)
          ++last;
        auto any = first != last;
        xs.erase(first, last);
        return any;
      };
      held = from(h->flights) || held;
      from(h->attached_early);
      if (held && h->none())
        now = close_locked() || now;
    }
  }
  closed_now(now);
}

template <class Op>
q_outcome queue_core::wait_blocking(Op op, std::optional<duration> timeout) {
  struct slot {
    std::condition_variable cv;
    std::atomic<bool> done{false};
    q_outcome result;
  } s;
  bool wait = !timeout || *timeout > duration::zero();
  auto parked = op(wait, [&s](q_outcome&& x) {
    s.result = std::move(x);
    s.done.store(true, std::memory_order_release);
    s.cv.notify_one();
    return true;
  });
  if (auto* now = std::get_if<q_outcome>(&parked))
    return std::move(*now);
  auto serial = std::get<std::uint64_t>(parked);
  // An answer often comes within microseconds (the other end of a pipe
  // replies): look for it briefly before sleeping, serving the hub
  // meanwhile, so that the answer need not wake the hub's thread and then
  // this one.
  deadline limit{timeout};
  auto spin_until =
    std::min(std::chrono::steady_clock::now() + spin_time(), limit.when());
  while (!s.done.load(std::memory_order_acquire)
         && std::chrono::steady_clock::now() < spin_until)
    if (!idle_ || !idle_())
      relax();
  {
    std::unique_lock<std::mutex> guard{mtx_};
    auto done = [&] { return s.done.load(std::memory_order_relaxed); };
    if (!limit.bounded())
      s.cv.wait(guard, done);
    else
      s.cv.wait_until(guard, limit.when(), done);
    if (done())
      return std::move(s.result);
  }
  // Timed out: still parked, so answer it with its timeout outcome.
  expire(serial);
  std::lock_guard<std::mutex> guard{mtx_};
  return std::move(s.result);
}

q_outcome queue_core::put_blocking(value item,
                                   std::optional<duration> timeout) {
  return wait_blocking(
    [&](bool wait, answer_fn answer) {
      return put(std::move(item), wait, std::move(answer));
    },
    timeout);
}

q_outcome queue_core::get_blocking(std::optional<duration> timeout) {
  return wait_blocking(
    [&](bool wait, answer_fn answer) { return get(wait, std::move(answer)); },
    timeout);
}

q_outcome queue_core::poll_blocking(std::optional<duration> timeout) {
  return wait_blocking(
    [&](bool wait, answer_fn answer) { return poll(wait, std::move(answer)); },
    timeout);
}

q_outcome queue_core::join_blocking(std::optional<duration> timeout) {
  return wait_blocking(
    [&](bool wait, answer_fn answer) { return join(wait, std::move(answer)); },
    timeout);
}

} // namespace actors::detail
