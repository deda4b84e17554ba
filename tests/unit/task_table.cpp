// pool/: the task table and its policies (task_table.hpp), in process:
// submit, take, settle, a worker's death charging only the task that ran,
// requeueing the others, retries exhausted, the restart budget, the window.

#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pool/task_table.hpp"

using namespace actors;
using namespace actors::detail;

namespace {

// A sink that only exists: the table hands outcomes back as deliveries.
struct null_sink final : result_sink {
  void deliver(outcome&&) override {
    // nop
  }
};

task_table::policy make_policy(int retries, int max_restarts = 10) {
  task_table::policy p;
  p.retries = retries;
  p.max_restarts = max_restarts;
  p.restart_window = std::chrono::seconds{60};
  return p;
}

// Queues `n` tasks; returns the id of the first.
std::uint64_t submit(task_table& t, std::size_t n) {
  std::vector<pool_core::job> jobs;
  for (std::size_t i = 0; i < n; ++i)
    jobs.emplace_back(closure::local([] {}),
                      std::make_shared<null_sink>());
  return t.submit(jobs.data(), jobs.size());
}

outcome ok(std::uint64_t id) {
  outcome o;
  o.task = id;
  o.ok = true;
  return o;
}

// The ids held by `w`, in order.
std::vector<std::uint64_t> ids(task_table::holding& w) {
  std::vector<std::uint64_t> result;
  for (auto& t : w.taken)
    result.push_back(t.id);
  return result;
}

// The ids of the queued tasks, in order (taking and settling them all
// through a fresh holding).
std::vector<std::uint64_t> drain(task_table& t) {
  auto& w = t.add_worker();
  std::vector<std::uint64_t> result;
  while (t.queued() > 0)
    result.push_back(t.take(w).id);
  std::vector<delivery> out;
  for (auto id : result)
    t.settle(w, ok(id), out);
  return result;
}

} // namespace

TEST_CASE("tasks are taken in order and settled to their sinks") {
  task_table t{make_policy(1)};
  auto& w = t.add_worker();
  CHECK(t.drained());
  auto first = submit(t, 3);
  CHECK(first == 1);
  CHECK(submit(t, 1) == 4);
  CHECK(t.queued() == 4);
  CHECK(t.queued_hint() == 4);
  CHECK(t.take(w).id == 1);
  CHECK(t.take(w).id == 2);
  t.publish_queued();
  CHECK(t.queued_hint() == 2);
  CHECK(t.taken() == 2);
  std::vector<delivery> out;
  // Out of order, and a task the worker does not hold.
  CHECK(t.settle(w, ok(2), out));
  CHECK_FALSE(t.settle(w, ok(3), out));
  CHECK(t.settle(w, ok(1), out));
  REQUIRE(out.size() == 2);
  CHECK(out[0].second.task == 2);
  CHECK(out[1].second.task == 1);
  CHECK(out[0].first != nullptr);
  CHECK(t.taken() == 0);
  CHECK_FALSE(t.drained());
  CHECK(drain(t) == std::vector<std::uint64_t>{3, 4});
  CHECK(t.drained());
}

TEST_CASE("a worker thread's round settles its tasks in order") {
  task_table t{make_policy(0)};
  auto& w = t.add_worker();
  submit(t, 2);
  t.take(w);
  t.take(w);
  std::vector<outcome> results{ok(1), ok(2)};
  std::vector<delivery> out;
  t.settle_all(w, results, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].second.task == 1);
  CHECK(out[1].second.task == 2);
  CHECK(t.drained());
}

TEST_CASE("a worker's death charges only the task it ran") {
  task_table t{make_policy(1)};
  auto& w = t.add_worker();
  submit(t, 5);
  for (int i = 0; i < 4; ++i)
    t.take(w);
  CHECK(ids(w) == std::vector<std::uint64_t>{1, 2, 3, 4});
  std::vector<delivery> out;
  // It died running task 2 (input 0): every task it held is requeued first,
  // in its order, the one that ran charged once (retries: 1).
  CHECK(t.on_worker_lost(w, "worker process 7 died", true, out,
                         last_run{2, 0}));
  CHECK(out.empty());
  CHECK(w.taken.empty());
  CHECK(t.taken() == 0);
  CHECK(t.queued() == 5);
  CHECK(t.queued_hint() == 5);
  // Again: task 2 runs and the worker dies; its retries are spent.
  auto& v = t.add_worker();
  CHECK(t.take(v).id == 1);
  CHECK(t.take(v).id == 2);
  CHECK(t.on_worker_lost(v, "worker process 8 died (signal 9)", true, out,
                         last_run{2, 0}));
  REQUIRE(out.size() == 1);
  CHECK(out[0].second.task == 2);
  CHECK_FALSE(out[0].second.ok);
  CHECK(out[0].second.code == errc::worker_lost);
  CHECK(out[0].second.what
        == "worker process 8 died (signal 9) while running the task");
  // Task 1 was requeued uncharged, before the others.
  CHECK(drain(t) == std::vector<std::uint64_t>{1, 3, 4, 5});
}

TEST_CASE("deaths are charged per input of a chunk") {
  task_table t{make_policy(1)};
  submit(t, 1);
  std::vector<delivery> out;
  // Inputs 0, 1, 2 of task 1 each killed a worker once: within retries.
  for (std::uint64_t input = 0; input < 3; ++input) {
    auto& w = t.add_worker();
    t.take(w);
    CHECK(t.on_worker_lost(w, "died", false, out, last_run{1, input}));
  }
  CHECK(out.empty());
  // Input 1 again: its second death fails the task.
  auto& w = t.add_worker();
  t.take(w);
  t.on_worker_lost(w, "died", false, out, last_run{1, 1});
  REQUIRE(out.size() == 1);
  CHECK(out[0].second.task == 1);
  CHECK(t.drained());
}

TEST_CASE("with no retries the task that ran fails at once") {
  task_table t{make_policy(0)};
  auto& w = t.add_worker();
  submit(t, 3);
  t.take(w);
  t.take(w);
  std::vector<delivery> out;
  // Died between tasks (task 0): nothing is charged.
  t.on_worker_lost(w, "died", true, out, last_run{0, 0});
  CHECK(out.empty());
  CHECK(t.queued() == 3);
  t.take(w);
  t.take(w);
  t.on_worker_lost(w, "died", true, out, last_run{1, 0});
  REQUIRE(out.size() == 1);
  CHECK(out[0].second.task == 1);
  CHECK(drain(t) == std::vector<std::uint64_t>{2, 3});
}

TEST_CASE("a death that cannot say what ran charges every task held") {
  task_table t{make_policy(0)};
  auto& w = t.add_worker();
  submit(t, 3);
  t.take(w);
  t.take(w);
  std::vector<delivery> out;
  t.on_worker_lost(w, "worker 12 on far was lost", false, out);
  REQUIRE(out.size() == 2);
  CHECK(t.queued() == 1);
  CHECK(t.taken() == 0);
}

TEST_CASE("a planned end charges nothing and spends no restart") {
  task_table t{make_policy(0, 0)};
  auto& w = t.add_worker();
  submit(t, 2);
  t.take(w);
  t.take(w);
  w.retiring = true;
  std::vector<delivery> out;
  CHECK(t.on_worker_lost(w, "died", true, out, last_run{1, 0}));
  CHECK(out.empty());
  CHECK(drain(t) == std::vector<std::uint64_t>{1, 2});
}

TEST_CASE("deaths beyond the restart budget are reported") {
  task_table t{make_policy(5, 2)};
  auto& w = t.add_worker();
  std::vector<delivery> out;
  CHECK(t.on_worker_lost(w, "died", true, out));
  CHECK(t.on_worker_lost(w, "died", true, out));
  // Deaths that do not count (remote workers) never spend it.
  CHECK(t.on_worker_lost(w, "died", false, out));
  CHECK_FALSE(t.on_worker_lost(w, "died", true, out));
}

TEST_CASE("a stopped task fails and its worker retires") {
  task_table t{make_policy(1)};
  auto& w = t.add_worker();
  submit(t, 3);
  t.take(w);
  t.take(w);
  CHECK(t.holder(2) == &w);
  CHECK(t.holder(3) == nullptr);
  std::vector<delivery> out;
  t.stop_task(w, 2, errc::timeout, "too long", out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].second.code == errc::timeout);
  CHECK(w.retiring);
  CHECK(ids(w) == std::vector<std::uint64_t>{1});
  // Its end then charges nothing: task 1 is rerun.
  out.clear();
  t.on_worker_lost(w, "died", true, out, last_run{1, 0});
  CHECK(out.empty());
  CHECK(drain(t) == std::vector<std::uint64_t>{1, 3});
}

TEST_CASE("cancel removes a queued task; fail_all fails everything") {
  task_table t{make_policy(1)};
  auto& w = t.add_worker();
  submit(t, 4);
  t.take(w);
  std::vector<delivery> out;
  CHECK(t.cancel_queued(3, errc::cancelled, "cancelled", out));
  CHECK_FALSE(t.cancel_queued(1, errc::cancelled, "cancelled", out));
  REQUIRE(out.size() == 1);
  CHECK(out[0].second.task == 3);
  out.clear();
  t.fail_all(errc::terminated, "terminated", out);
  CHECK(out.size() == 3);
  for (auto& d : out)
    CHECK(d.second.code == errc::terminated);
  CHECK(t.drained());
  CHECK(w.taken.empty());
}

TEST_CASE("the window follows the tasks' running time and the queue") {
  CHECK(task_table::window_for(0) == task_table::max_window);
  CHECK(task_table::window_for(1) == task_table::max_window);
  CHECK(task_table::window_for(100) == 20);
  CHECK(task_table::window_for(2000) == 1);
  CHECK(task_table::window_for(1'000'000) == 1);
  task_table t{make_policy(1)};
  CHECK(t.limit(64, 4) == 1); // nothing queued: one at least
  submit(t, 40);
  CHECK(t.limit(64, 4) == 10); // a fair share of 40 among 4
  CHECK(t.limit(5, 4) == 5);   // the window
  auto p = make_policy(1);
  p.one_at_a_time = true; // a task timeout
  task_table timed{p};
  submit(timed, 40);
  CHECK(timed.limit(64, 1) == 1);
}
