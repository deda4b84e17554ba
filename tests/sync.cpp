// actors::semaphore, bounded_semaphore, event, condition and barrier across
// threads and real processes; active_children and cpu_count.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <fcntl.h>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "actors/all.hpp"
#include "support/error_code.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

// Appends "+" on entry and "-" on exit around `n` sections it holds a token.
void enter_leave(actors::semaphore s, std::string path, int n) {
  auto fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
  for (int i = 0; i < n; ++i) {
    s.acquire();
    [[maybe_unused]] auto a = ::write(fd, "+", 1);
    [[maybe_unused]] auto b = ::write(fd, "-", 1);
    s.release();
  }
  ::close(fd);
}

// Waits for the event, then reports through the queue.
void wait_then_report(actors::event e, actors::queue<int> done) {
  if (e.wait(10s))
    done.put(1);
}

} // namespace

TEST_CASE("a semaphore hands out its tokens and no more") {
  auto s = actors::make_semaphore(2);
  CHECK(s.acquire(0ms));
  CHECK(s.acquire(0ms));
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(s.acquire(100ms));
  CHECK(std::chrono::steady_clock::now() - t0 >= 100ms);
  s.release();
  CHECK(s.acquire(1s));
  CHECK(code_of([] { actors::make_semaphore(-1); })
        == actors::errc::invalid_argument);
}

TEST_CASE("4 processes never hold more than 2 tokens at once") {
  char path[] = "/tmp/actors-sem-XXXXXX";
  ::close(::mkstemp(path));
  auto s = actors::make_semaphore(2);
  std::vector<actors::process> procs;
  for (int i = 0; i < 4; ++i)
    procs.emplace_back(enter_leave, s, std::string{path}, 50);
  for (auto& p : procs)
    p.start();
  for (auto& p : procs) {
    REQUIRE(p.join(60s));
    CHECK(p.exitcode() == 0);
  }
  std::FILE* f = std::fopen(path, "r");
  int inside = 0, most = 0, entries = 0;
  for (int c; (c = std::fgetc(f)) != EOF;) {
    inside += c == '+' ? 1 : -1;
    entries += c == '+';
    most = std::max(most, inside);
  }
  std::fclose(f);
  ::unlink(path);
  CHECK(entries == 200);
  CHECK(most <= 2);
  CHECK(inside == 0);
}

TEST_CASE("an event: set, clear, is_set and wait") {
  auto e = actors::make_event();
  CHECK_FALSE(e.is_set());
  CHECK_FALSE(e.wait(50ms));
  e.set();
  e.set(); // setting twice is harmless
  CHECK(e.is_set());
  CHECK(e.wait(0ms));
  CHECK(e.wait()); // waiting does not clear it
  e.clear();
  e.clear();
  CHECK_FALSE(e.is_set());
}

TEST_CASE("an event wakes a process waiting for it") {
  auto e = actors::make_event();
  actors::queue<int> done{actors::unbounded};
  actors::process waiter{wait_then_report, e, done};
  waiter.start();
  CHECK_FALSE(done.try_get(200ms).has_value()); // still waiting
  e.set();
  CHECK(done.get(10s) == 1);
  REQUIRE(waiter.join(10s));
  CHECK(waiter.exitcode() == 0);
}

// -- bounded_semaphore ---------------------------------------------------------

namespace {

// Releases `s` once; reports the error's code (0: none) through `out`.
void release_once(actors::bounded_semaphore s, actors::queue<int> out) {
  out.put(static_cast<int>(code_of([&] { s.release(); })));
}

} // namespace

TEST_CASE("a bounded semaphore refuses a release beyond its value") {
  auto s = actors::make_bounded_semaphore(2);
  CHECK(s.value() == 2);
  CHECK(code_of([&] { s.release(); }) == actors::errc::invalid_argument);
  CHECK(s.value() == 2); // the refused release changed nothing
  CHECK(s.acquire(0ms));
  CHECK(s.value() == 1);
  s.release();
  CHECK(s.value() == 2);
  CHECK(code_of([] { actors::make_bounded_semaphore(0); })
        == actors::errc::invalid_argument);
  // Usable as a semaphore, and the bound holds in another process too.
  actors::semaphore plain = s;
  CHECK(plain.acquire(0ms));
  actors::queue<int> out{actors::unbounded};
  actors::process ok{release_once, s, out};
  ok.start();
  CHECK(out.get(10s) == 0);
  actors::process refused{release_once, s, out};
  refused.start();
  CHECK(out.get(10s) == static_cast<int>(actors::errc::invalid_argument));
  REQUIRE(ok.join(10s));
  REQUIRE(refused.join(10s));
}

// -- condition -----------------------------------------------------------------

namespace {

// Takes the lock, says it is about to wait, waits up to 20 s, reports
// whether it was notified (1) or not (0).
void wait_and_report(actors::condition c, actors::queue<int> sleeping,
                     actors::queue<int> woken) {
  std::unique_lock<actors::condition> guard{c};
  sleeping.put(1);
  woken.put(c.wait(20s) ? 1 : 0);
}

// Three times: under the lock, one more token, then notify_all.
void produce_three(actors::condition c, actors::semaphore made) {
  for (int i = 0; i < 3; ++i) {
    std::lock_guard<actors::condition> guard{c};
    made.release();
    c.notify_all();
  }
}

// Starts `n` waiters and returns once all of them wait (each reported while
// holding the lock, so the lock is free again only once each one waits).
std::vector<actors::process> start_waiters(int n, actors::condition& c,
                                           actors::queue<int>& sleeping,
                                           actors::queue<int>& woken) {
  std::vector<actors::process> result;
  for (int i = 0; i < n; ++i) {
    result.emplace_back(wait_and_report, c, sleeping, woken);
    result.back().start();
  }
  for (int i = 0; i < n; ++i)
    REQUIRE(sleeping.get(10s) == 1);
  c.lock();
  c.unlock();
  return result;
}

} // namespace

TEST_CASE("a condition's wait and notify need its lock") {
  auto c = actors::make_condition(actors::make_lock());
  CHECK(code_of([&] { c.wait(0ms); }) == actors::errc::not_owner);
  CHECK(code_of([&] { c.notify(); }) == actors::errc::not_owner);
  CHECK(code_of([&] { c.notify_all(); }) == actors::errc::not_owner);
  actors::condition empty;
  CHECK(code_of([&] { empty.notify(); }) == actors::errc::invalid_argument);
  std::lock_guard<actors::condition> guard{c};
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(c.wait(100ms)); // nobody notifies: false after the timeout
  CHECK(std::chrono::steady_clock::now() - t0 >= 100ms);
  CHECK_FALSE(c.wait(-1s)); // negative: zero
  c.notify(); // nobody waits: nothing happens
  c.notify_all();
}

TEST_CASE("a condition on an rlock releases every level while it waits") {
  auto r = actors::make_rlock();
  auto c = actors::make_condition(r);
  c.lock();
  c.lock();
  std::thread other{[&] {
    // Gets the lock while the owner waits, and notifies it.
    std::lock_guard<actors::rlock> guard{r};
    c.notify();
  }};
  CHECK(c.wait(10s));
  other.join();
  c.unlock();
  c.unlock(); // both levels are held again after the wait
  CHECK(code_of([&] { c.unlock(); }) == actors::errc::not_owner);
}

TEST_CASE("notify wakes exactly as many waiting processes as it says") {
  auto c = actors::make_condition();
  actors::queue<int> sleeping{actors::unbounded}, woken{actors::unbounded};
  auto waiters = start_waiters(4, c, sleeping, woken);
  {
    std::lock_guard<actors::condition> guard{c};
    c.notify(1);
  }
  CHECK(woken.get(10s) == 1);
  CHECK_FALSE(woken.try_get(300ms).has_value()); // and no second one
  {
    std::lock_guard<actors::condition> guard{c};
    c.notify(2);
  }
  CHECK(woken.get(10s) == 1);
  CHECK(woken.get(10s) == 1);
  CHECK_FALSE(woken.try_get(300ms).has_value());
  {
    std::lock_guard<actors::condition> guard{c};
    c.notify_all();
  }
  CHECK(woken.get(10s) == 1);
  for (auto& p : waiters) {
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 0);
  }
}

TEST_CASE("a waiter that died does not swallow a notification") {
  auto c = actors::make_condition();
  actors::queue<int> sleeping{actors::unbounded}, woken{actors::unbounded};
  // The first waiter has waited longest, so notify(1) would pick it.
  auto first = start_waiters(1, c, sleeping, woken);
  auto second = start_waiters(1, c, sleeping, woken);
  first[0].kill();
  REQUIRE(first[0].join(10s));
  {
    std::lock_guard<actors::condition> guard{c};
    c.notify(1);
  }
  CHECK(woken.get(10s) == 1);
  REQUIRE(second[0].join(10s));
  CHECK(second[0].exitcode() == 0);
}

TEST_CASE("wait_for waits for a predicate that another process makes true") {
  auto c = actors::make_condition();
  auto made = actors::make_semaphore(0);
  actors::process producer{produce_three, c, made};
  std::unique_lock<actors::condition> guard{c};
  producer.start();
  CHECK(c.wait_for([&] { return made.value() >= 3; }, 20s));
  guard.unlock();
  REQUIRE(producer.join(10s));
  guard.lock();
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(c.wait_for([&] { return made.value() >= 4; }, 100ms));
  CHECK(std::chrono::steady_clock::now() - t0 >= 100ms);
}

TEST_CASE("a condition holds at most the waiters it was made for") {
  auto c = actors::make_condition(1);
  actors::queue<int> sleeping{actors::unbounded}, woken{actors::unbounded};
  auto waiters = start_waiters(1, c, sleeping, woken);
  {
    std::lock_guard<actors::condition> guard{c};
    CHECK(code_of([&] { c.wait(1s); }) == actors::errc::invalid_argument);
    c.notify();
  }
  CHECK(woken.get(10s) == 1);
  REQUIRE(waiters[0].join(10s));
}

// -- barrier -------------------------------------------------------------------

namespace {

// Waits at the barrier `rounds` times, reporting each arrival index (as
// round * 4 + index).
void meet(actors::barrier b, int rounds, actors::queue<int> indices) {
  for (int i = 0; i < rounds; ++i)
    indices.put(i * 4 + static_cast<int>(b.wait(20s)));
}

// Waits once and reports the code of what it threw (0: nothing).
void meet_once(actors::barrier b, actors::queue<int> sleeping,
               actors::queue<int> out) {
  sleeping.put(1);
  out.put(static_cast<int>(code_of([&] { b.wait(20s); })));
}

// Returns once `n` parties wait at `b` in its round.
void until_waiting(const actors::barrier& b, std::size_t n) {
  auto until = std::chrono::steady_clock::now() + 10s;
  while (b.n_waiting() < n && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms); // polls a state, bounded
  REQUIRE(b.n_waiting() == n);
}

// The barrier action's counter: each party sets it before it meets (an
// action takes no arguments; every process of the run has its globals).
actors::value<long> action_runs;

void count_round() {
  std::lock_guard<actors::rlock> guard{action_runs.get_lock()};
  action_runs.set(action_runs.get() + 1);
}

void throws_in_action() {
  throw std::runtime_error("the action failed");
}

// Meets `rounds` times and reports how many actions had run after each.
void meet_counting(actors::barrier b, actors::value<long> runs, int rounds,
                   actors::queue<long> seen) {
  action_runs = runs;
  for (int i = 0; i < rounds; ++i) {
    b.wait(20s);
    seen.put(runs.get());
  }
}

} // namespace

TEST_CASE("a barrier's action runs once per round, in the last party, "
          "before any leaves") {
  action_runs = actors::make_value<long>(0);
  auto b = actors::make_barrier(3, count_round, 20s);
  actors::queue<long> seen{actors::unbounded};
  std::vector<actors::process> parties;
  for (int i = 0; i < 2; ++i) {
    parties.emplace_back(meet_counting, b, action_runs, 5, seen);
    parties.back().start();
  }
  for (long round = 1; round <= 5; ++round) {
    b.wait();
    CHECK(action_runs.get() == round);
  }
  for (auto& p : parties) {
    REQUIRE(p.join(20s));
    CHECK(p.exitcode() == 0);
  }
  // Each party saw exactly the rounds done so far after each round.
  std::vector<long> all;
  for (int i = 0; i < 10; ++i)
    all.push_back(seen.get(1s));
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<long>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5});
  CHECK(action_runs.get() == 5);
  // An action that throws: its party gets the exception, the others a
  // broken barrier.
  auto failing = actors::make_barrier(2, throws_in_action);
  std::thread other{[&] {
    CHECK(code_of([&] { failing.wait(10s); })
          == actors::errc::broken_barrier);
  }};
  until_waiting(failing, 1);
  CHECK_THROWS_WITH_AS(failing.wait(10s), "the action failed",
                       std::runtime_error);
  other.join();
  CHECK(failing.broken());
  failing.reset();
  CHECK_FALSE(failing.broken());
}

TEST_CASE("a barrier of four processes meets ten times, indices 0 to 3") {
  auto b = actors::make_barrier(4);
  CHECK(b.parties() == 4);
  actors::queue<int> indices{actors::unbounded};
  std::vector<actors::process> parties;
  for (int i = 0; i < 3; ++i) {
    parties.emplace_back(meet, b, 10, indices);
    parties.back().start();
  }
  // Each round hands out 0..3 once each, the parent's index among them.
  std::vector<std::vector<int>> rounds(10);
  for (int round = 0; round < 10; ++round)
    rounds[round].push_back(static_cast<int>(b.wait(20s)));
  for (auto& p : parties) {
    REQUIRE(p.join(20s));
    CHECK(p.exitcode() == 0);
  }
  for (int i = 0; i < 30; ++i) {
    auto x = indices.get(1s);
    rounds.at(static_cast<std::size_t>(x / 4)).push_back(x % 4);
  }
  for (auto& r : rounds) {
    std::sort(r.begin(), r.end());
    CHECK(r == std::vector<int>{0, 1, 2, 3});
  }
  CHECK_FALSE(b.broken());
  CHECK(b.n_waiting() == 0);
}

TEST_CASE("a barrier's timeout breaks it, and reset makes it whole") {
  auto b = actors::make_barrier(2);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(code_of([&] { b.wait(50ms); }) == actors::errc::broken_barrier);
  CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
  CHECK(b.broken());
  CHECK(code_of([&] { b.wait(1s); }) == actors::errc::broken_barrier);
  b.reset();
  CHECK_FALSE(b.broken());
  std::thread other{[&] { CHECK(b.wait(10s) < 2); }};
  CHECK(b.wait(10s) < 2);
  other.join();
  // The default timeout bounds a wait that gives none.
  auto quick = actors::make_barrier(2, 50ms);
  CHECK(code_of([&] { quick.wait(); }) == actors::errc::broken_barrier);
  CHECK(code_of([] { actors::make_barrier(0); })
        == actors::errc::invalid_argument);
  CHECK(actors::make_barrier(1).wait() == 0); // one party never waits
}

TEST_CASE("abort and reset release the processes waiting at a barrier") {
  auto b = actors::make_barrier(3);
  actors::queue<int> sleeping{actors::unbounded}, out{actors::unbounded};
  actors::process w1{meet_once, b, sleeping, out};
  actors::process w2{meet_once, b, sleeping, out};
  w1.start();
  w2.start();
  until_waiting(b, 2);
  b.abort();
  CHECK(out.get(10s) == static_cast<int>(actors::errc::broken_barrier));
  CHECK(out.get(10s) == static_cast<int>(actors::errc::broken_barrier));
  REQUIRE(w1.join(10s));
  REQUIRE(w2.join(10s));
  b.reset();
  actors::process w3{meet_once, b, sleeping, out};
  w3.start();
  until_waiting(b, 1);
  b.reset(); // a round under way: its waiter is told
  CHECK(out.get(10s) == static_cast<int>(actors::errc::broken_barrier));
  REQUIRE(w3.join(10s));
  CHECK_FALSE(b.broken());
}

TEST_CASE("a party killed while it waits has arrived, and holds nobody up") {
  auto b = actors::make_barrier(3);
  actors::queue<int> sleeping{actors::unbounded}, out{actors::unbounded};
  actors::process doomed{meet_once, b, sleeping, out};
  doomed.start();
  until_waiting(b, 1);
  doomed.kill();
  REQUIRE(doomed.join(10s));
  // Its arrival counts: two more complete the round.
  actors::process w{meet_once, b, sleeping, out};
  w.start();
  CHECK(b.wait(10s) < 3);
  CHECK(out.get(10s) == 0);
  REQUIRE(w.join(10s));
  // The next round needs three living parties, and gets them.
  actors::queue<int> indices{actors::unbounded};
  actors::process p1{meet, b, 1, indices};
  actors::process p2{meet, b, 1, indices};
  p1.start();
  p2.start();
  CHECK(b.wait(10s) < 3);
  REQUIRE(p1.join(10s));
  REQUIRE(p2.join(10s));
  CHECK_FALSE(b.broken());
}

// -- active_children, cpu_count ------------------------------------------------

namespace {

void wait_for_event(actors::event e) {
  e.wait(20s);
}

} // namespace

TEST_CASE("active_children lists the children that run, cpu_count the CPUs") {
  CHECK(actors::cpu_count() >= 1);
  CHECK(actors::cpu_count() == std::thread::hardware_concurrency());
  auto go = actors::make_event();
  actors::process a{wait_for_event, go}, b{wait_for_event, go};
  a.name("first");
  a.start();
  b.start();
  auto running = actors::active_children();
  std::vector<pid_t> pids;
  for (auto& c : running)
    pids.push_back(c.pid);
  CHECK(std::count(pids.begin(), pids.end(), *a.pid()) == 1);
  CHECK(std::count(pids.begin(), pids.end(), *b.pid()) == 1);
  for (auto& c : running)
    if (c.pid == *a.pid())
      CHECK(c.name == "first");
  go.set();
  REQUIRE(a.join(10s));
  REQUIRE(b.join(10s));
  for (auto& c : actors::active_children())
    CHECK((c.pid != *a.pid() && c.pid != *b.pid()));
}
