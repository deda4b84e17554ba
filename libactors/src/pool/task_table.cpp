// The task table of a pool and its policies (see task_table.hpp).

#include "pool/task_table.hpp"

namespace actors::detail {

int task_entry::charge(std::uint64_t input) {
  if (!charges)
    charges = std::make_unique<std::vector<std::pair<std::uint64_t, int>>>();
  for (auto& [x, n] : *charges)
    if (x == input)
      return ++n;
  charges->emplace_back(input, 1);
  return 1;
}

void task_ring::erase(iterator pos) {
  if (pos.index() == 0)
    return pop_front();
  for (auto i = pos.index(); i + 1 < size_; ++i)
    (*this)[i] = std::move((*this)[i + 1]);
  pop_back();
}

void task_ring::grow() {
  if (size_ < buf_.size())
    return;
  std::vector<task_entry> bigger(std::max<std::size_t>(16, 2 * buf_.size()));
  for (std::size_t i = 0; i < size_; ++i)
    bigger[i] = std::move((*this)[i]);
  buf_ = std::move(bigger);
  head_ = 0;
}

outcome failed(std::uint64_t id, errc code, std::string what) {
  outcome result;
  static_cast<status&>(result) = status::failure(code, std::move(what));
  result.task = id;
  return result;
}

delivery failure(task_entry&& task, errc code, std::string what) {
  auto id = task.id;
  return {std::move(task.sink), failed(id, code, std::move(what))};
}

task_table::task_table(policy p)
  : policy_(p), deaths_(p.max_restarts, p.restart_window) {
  // nop
}

std::uint64_t task_table::submit(pool_core::job* jobs, std::size_t n) {
  auto first = next_task_;
  for (std::size_t i = 0; i < n; ++i)
    queued_.push_back(task_entry{next_task_++, std::move(jobs[i].first),
                                 std::move(jobs[i].second), {}});
  publish_queued();
  return first;
}

std::uint64_t task_table::submit_to(holding& w, pool_core::job job) {
  auto id = next_task_++;
  w.taken.push_back(task_entry{id, std::move(job.first),
                               std::move(job.second), {}, true});
  ++taken_;
  return id;
}

task_table::holding& task_table::add_worker() {
  return holdings_.emplace_back();
}

task_entry& task_table::take(holding& w) {
  w.taken.push_back(std::move(queued_.front()));
  queued_.pop_front();
  ++taken_;
  return w.taken.back();
}

bool task_table::settle(holding& w, outcome&& o, std::vector<delivery>& out) {
  auto i = w.taken.begin();
  while (i != w.taken.end() && i->id != o.task)
    ++i;
  if (i == w.taken.end())
    return false;
  out.emplace_back(std::move(i->sink), std::move(o));
  w.taken.erase(i);
  --taken_;
  return true;
}

void task_table::settle_all(holding& w, std::vector<outcome>& results,
                            std::vector<delivery>& out) {
  auto& mine = w.taken;
  for (std::size_t i = 0; i < mine.size(); ++i)
    out.emplace_back(std::move(mine[i].sink), std::move(results[i]));
  taken_ -= mine.size();
  mine.clear();
}

void task_table::fail_all(errc code, const std::string& what,
                          std::vector<delivery>& out) {
  for (auto& t : queued_)
    out.push_back(failure(std::move(t), code, what));
  queued_.clear();
  for (auto& w : holdings_) {
    for (auto& t : w.taken)
      out.push_back(failure(std::move(t), code, what));
    w.taken.clear();
  }
  taken_ = 0;
  publish_queued();
}

bool task_table::cancel_queued(std::uint64_t task, errc code,
                               const std::string& what,
                               std::vector<delivery>& out) {
  auto i = std::find_if(queued_.begin(), queued_.end(),
                        [&](const task_entry& t) { return t.id == task; });
  if (i == queued_.end())
    return false;
  out.push_back(failure(std::move(*i), code, what));
  queued_.erase(i);
  publish_queued();
  return true;
}

task_table::holding* task_table::holder(std::uint64_t task) {
  for (auto& w : holdings_)
    for (auto& t : w.taken)
      if (t.id == task)
        return &w;
  return nullptr;
}

void task_table::stop_task(holding& w, std::uint64_t task, errc code,
                           const std::string& what,
                           std::vector<delivery>& out) {
  auto i = std::find_if(w.taken.begin(), w.taken.end(),
                        [&](const task_entry& t) { return t.id == task; });
  out.push_back(failure(std::move(*i), code, what));
  w.taken.erase(i);
  --taken_;
  w.retiring = true;
}

bool task_table::on_worker_lost(holding& w, const std::string& why,
                                bool counts, std::vector<delivery>& out,
                                std::optional<last_run> ran) {
  while (!w.taken.empty()) {
    auto task = std::move(w.taken.back());
    w.taken.pop_back();
    --taken_;
    auto charged = !w.retiring && (!ran || ran->task == task.id);
    if (task.pinned
        || (charged && task.charge(ran ? ran->input : 0) > policy_.retries))
      out.push_back(failure(std::move(task), errc::worker_lost,
                            why + " while running the task"));
    else
      queued_.push_front(std::move(task));
  }
  publish_queued();
  if (counts && !w.retiring)
    return deaths_.allow();
  return true;
}

std::size_t task_table::window_for(std::uint32_t micros) {
  return std::clamp<std::size_t>(
    static_cast<std::size_t>(work_in_flight.count())
      / std::max<std::uint32_t>(micros, 1),
    1, max_window);
}

std::size_t task_table::limit(std::size_t window, std::size_t serving) const {
  if (policy_.one_at_a_time)
    return 1;
  return std::min(window, std::max<std::size_t>(
                            1, (queued_.size() + taken_) / serving));
}

} // namespace actors::detail
