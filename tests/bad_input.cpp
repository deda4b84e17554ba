// Bad input, one case each: what the user gets (the exact actors::errc) and
// that nothing else was disturbed (the pool, queue or pipe still works).
//
// Only what the component tests do not check already is here; the rows
// they cover are listed in docs/reliability.md and below:
//   get on a closed queue, put after close   queue.cpp: close: puts fail...
//   send on a closed pipe (closed, broken)   pipe.cpp: close: the other end...
//   start twice, join before start           process.cpp: misuse is a clear...
//   pool join before close, work after close pool.cpp / thread_pool.cpp: misuse
//   pool of size -1, thread_pool of 0 / -1   pool.cpp / thread_pool.cpp: misuse
//   queue maxsize -1                         queue.cpp: bad arguments are...
//   try_lock (zero)                          lock.cpp: lock, unlock, try_lock...
//   semaphore -1, acquire(0ms), event wait(0) sync.cpp
//   unserializable pool argument / result    pool.cpp: an argument or result...
//   task throwing a std::exception           pool.cpp: an exception fails...
//   task killed by a signal (SIGSEGV)        pool.cpp: a task that always kills...
//   process exit(n), throw of a non-std type process.cpp: exit codes follow...
//   64 MiB through a queue / a pipe          queue.cpp, pipe.cpp

#include <doctest/doctest.h>

#include <algorithm>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"
#include "support/error_code.hpp"
#include "support/picky.hpp"
#include "support/proc_stats.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

int square(int x) {
  return x * x;
}

// The error of `fn`: its code and message (code `{}` if none was thrown).
template <class F>
std::pair<actors::errc, std::string> error_of(F fn) {
  try {
    fn();
  } catch (const actors::error& e) {
    return {static_cast<actors::errc>(e.code().value()), e.what()};
  }
  return {actors::errc{}, ""};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A pool that answers as it should: the proof nothing was disturbed.
void still_serves(actors::pool& p) {
  CHECK(p.map(square, std::vector<int>{1, 2, 3, 4}, 1)
        == std::vector<int>{1, 4, 9, 16});
}

// -- tasks that end their worker ----------------------------------------------

int exits_3(int) {
  std::exit(3);
}

int aborts(int) {
  std::abort();
}

// A null dereference the kernel, not UBSan, reports (SIGSEGV); the access
// is volatile, through a volatile pointer, so the compiler keeps it.
__attribute__((no_sanitize("undefined"))) int dereferences_null(int) {
  volatile int* volatile pointer = nullptr;
  *pointer = 1;
  return 0;
}

void null_in_process(int x) {
  dereferences_null(x);
}

struct not_an_exception {
  int code = 7;
};

int throws_int(int) {
  throw 42;
}

int throws_struct(int) {
  throw not_an_exception{};
}

int throws_string(int) {
  throw std::string{"a string"};
}

} // namespace

TEST_CASE("a task calling exit(3) fails with worker_lost naming exit code 3") {
  actors::pool p{2};
  auto [code, what] = error_of([&] { p.apply_async(exits_3, 0).get(30s); });
  CHECK(code == actors::errc::worker_lost);
  INFO(what);
  CHECK(contains(what, "exit code 3"));
  still_serves(p);
  p.close();
  p.join();
}

TEST_CASE("a task calling abort() fails with worker_lost naming signal 6") {
  actors::pool p{2};
  auto [code, what] = error_of([&] { p.apply_async(aborts, 0).get(30s); });
  CHECK(code == actors::errc::worker_lost);
  INFO(what);
  CHECK(contains(what, "signal " + std::to_string(SIGABRT)));
  still_serves(p);
  p.close();
  p.join();
}

TEST_CASE("a task dereferencing null fails with worker_lost naming signal 11") {
  actors::pool p{2};
  auto [code, what] =
    error_of([&] { p.apply_async(dereferences_null, 0).get(30s); });
  CHECK(code == actors::errc::worker_lost);
  INFO(what);
  CHECK(contains(what, "signal " + std::to_string(SIGSEGV)));
  // In a map, the lost chunk fails the map and the pool goes on.
  CHECK(code_of([&] {
          p.map(dereferences_null, std::vector<int>{1, 2}, 1);
        })
        == actors::errc::worker_lost);
  still_serves(p);
  p.close();
  p.join();
}

TEST_CASE("a process dereferencing null ends with -SIGSEGV") {
  actors::process child{null_in_process, 0};
  child.start();
  REQUIRE(child.join(30s));
  INFO("exit code " << child.exitcode().value_or(999));
  CHECK(child.exitcode() == -SIGSEGV);
}

TEST_CASE("exceptions that are not std::exception fail their task with task_failed naming the type") {
  actors::pool p{2};
  auto [code, what] = error_of([&] { p.apply(throws_int, 0); });
  CHECK(code == actors::errc::task_failed);
  CHECK(what.find("int") != std::string::npos);
  std::tie(code, what) = error_of([&] { p.apply(throws_struct, 0); });
  CHECK(code == actors::errc::task_failed);
  INFO(what);
  CHECK(contains(what, "not_an_exception"));
  std::tie(code, what) = error_of([&] { p.apply(throws_string, 0); });
  CHECK(code == actors::errc::task_failed);
  CHECK(contains(what, "string"));
  // In a stream: at its position, and the stream goes on.
  std::vector<int> inputs{1, 2};
  auto stream = p.imap(throws_int, inputs);
  CHECK(code_of([&] { stream.next(10s); }) == actors::errc::task_failed);
  CHECK(code_of([&] { stream.next(10s); }) == actors::errc::task_failed);
  CHECK_FALSE(stream.next(10s).has_value());
  still_serves(p);
  p.close();
  p.join();
}

// -- values that cannot be serialized -----------------------------------------

namespace {

using support::picky;

void takes_picky(picky p) {
  std::exit(p.x);
}

// Puts picky{x} (bounded: a put that is never answered is not a hang here),
// exits with the errc it failed with, 0 on success.
void puts_picky(actors::queue<picky> q, int x) {
  try {
    q.put(picky{x}, 10s);
  } catch (const actors::error& e) {
    std::exit(static_cast<int>(e.code().value()));
  }
}

void sends_picky(actors::connection<picky> c, int x) {
  try {
    c.send(picky{x});
  } catch (const actors::error& e) {
    std::exit(static_cast<int>(e.code().value()));
  }
}

void gets_picky(actors::queue<picky> q) {
  try {
    std::exit(q.get(10s).x == -1 ? 0 : 100);
  } catch (const actors::error& e) {
    std::exit(static_cast<int>(e.code().value()));
  }
}

constexpr int invalid_argument_exit =
  static_cast<int>(actors::errc::invalid_argument);

} // namespace

// A put from a process other than the queue's owner, where the item must
// be serialized to travel (bounded: a put never answered is no hang here).
TEST_CASE("an item that cannot be serialized: put from another process fails with invalid_argument") {
  actors::queue<picky> q{actors::unbounded};
  actors::process child{puts_picky, q, -1};
  child.start();
  REQUIRE(child.join(30s));
  CHECK(child.exitcode() == invalid_argument_exit);
  CHECK(q.empty());
  actors::process good{puts_picky, q, 5};
  good.start();
  REQUIRE(good.join(30s));
  CHECK(good.exitcode() == 0);
  CHECK(q.get(10s).x == 5);
}

// The same through a pipe, whose send has no timeout: bounded by the join.
TEST_CASE("a pipe message that cannot be serialized: send from another process fails with invalid_argument") {
  auto [a, b] = actors::pipe<picky>();
  actors::process child{sends_picky, b, -1};
  child.start();
  b.close();
  auto ended = child.join(15s);
  CHECK(ended);
  if (!ended)
    child.kill();
  REQUIRE(child.join(10s));
  CHECK(child.exitcode() == invalid_argument_exit);
}

// Put in the owner's own queue (refused, or stored unserialized), then got
// by another process: an error either way, never a crashed consumer.
TEST_CASE("an unserializable item in a queue does not crash the process that gets it") {
  actors::queue<picky> q{actors::unbounded};
  auto code = code_of([&] { q.put(picky{-1}); });
  CHECK((code == actors::errc{} || code == actors::errc::invalid_argument));
  if (code == actors::errc{}) {
    actors::process child{gets_picky, q};
    child.start();
    REQUIRE(child.join(30s));
    CHECK(child.exitcode() != -SIGSEGV);
    CHECK(child.exitcode() == invalid_argument_exit);
  }
  CHECK(q.empty()); // nothing half-put
  q.put(picky{6});
  actors::process good{gets_picky, q};
  good.start();
  REQUIRE(good.join(30s));
  CHECK(good.exitcode() == 100); // got picky{6}, not -1
}

// As for a pool task's argument: refused at start, nothing started.
TEST_CASE("a process argument that cannot be serialized fails start with invalid_argument") {
  actors::process bad{takes_picky, picky{-1}};
  CHECK(code_of([&] { bad.start(); }) == actors::errc::invalid_argument);
  if (bad.pid())
    REQUIRE(bad.join(30s));
  actors::process good{takes_picky, picky{4}};
  good.start();
  REQUIRE(good.join(30s));
  CHECK(good.exitcode() == 4);
}

// -- 256 MiB items --------------------------------------------------------------

namespace {

constexpr std::size_t huge = std::size_t{256} << 20;

std::string huge_string() {
  std::string s(huge, 'x');
  s.front() = 'a';
  s[huge / 2] = 'm';
  s.back() = 'z';
  return s;
}

bool is_huge_string(const std::string& s) {
  return s.size() == huge && s.front() == 'a' && s[huge / 2] == 'm'
         && s.back() == 'z'
         && std::count(s.begin(), s.end(), 'x')
              == static_cast<long>(huge - 3);
}

void put_huge(actors::queue<std::string> q) {
  q.put(huge_string());
}

void send_huge(actors::connection<std::string> c) {
  c.send(huge_string());
}

} // namespace

TEST_CASE("a 256 MiB item crosses a queue between processes intact") {
  actors::queue<std::string> q{actors::unbounded};
  actors::process producer{put_huge, q};
  auto t0 = std::chrono::steady_clock::now();
  producer.start();
  auto s = q.get(60s);
  MESSAGE("256 MiB through a queue in "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now() - t0)
               .count()
          << " ms");
  CHECK(is_huge_string(s));
  REQUIRE(producer.join(30s));
  CHECK(producer.exitcode() == 0);
  s.clear();
  s.shrink_to_fit();
  q.put("small");
  CHECK(q.get(10s) == "small");
}

TEST_CASE("a 256 MiB message crosses a pipe between processes intact") {
  auto [a, b] = actors::pipe<std::string>();
  actors::process sender{send_huge, b};
  auto t0 = std::chrono::steady_clock::now();
  sender.start();
  b.close();
  auto s = a.recv(60s);
  MESSAGE("256 MiB through a pipe in "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now() - t0)
               .count()
          << " ms");
  CHECK(is_huge_string(s));
  REQUIRE(sender.join(30s));
  CHECK(sender.exitcode() == 0);
  // The sender is gone and held the only other end: end of pipe, no hang.
  CHECK(code_of([&, a = a] { a.recv(10s); }) == actors::errc::end_of_pipe);
}

// -- sizes ----------------------------------------------------------------------

TEST_CASE("a pool of size 0 has one worker per core") {
  actors::pool p{0};
  auto cores = static_cast<int>(
    std::max(1u, std::thread::hardware_concurrency()));
  CHECK(p.processes() == cores);
  still_serves(p);
  p.close();
  p.join();
}

TEST_CASE("pool sizes and options out of range are invalid_argument") {
  CHECK(code_of([] { actors::pool p{INT_MIN}; })
        == actors::errc::invalid_argument);
  CHECK(code_of([] { actors::thread_pool tp{INT_MIN}; })
        == actors::errc::invalid_argument);
  auto with = [](auto set) {
    return code_of([&] {
      actors::pool_options opts;
      set(opts);
      actors::pool p{1, opts};
    });
  };
  CHECK(with([](auto& o) { o.retries = -1; })
        == actors::errc::invalid_argument);
  CHECK(with([](auto& o) { o.maxtasksperchild = -1; })
        == actors::errc::invalid_argument);
  CHECK(with([](auto& o) { o.max_restarts = -1; })
        == actors::errc::invalid_argument);
  CHECK(with([](auto& o) { o.task_timeout = 0s; })
        == actors::errc::invalid_argument);
  CHECK(with([](auto& o) { o.task_timeout = -1s; })
        == actors::errc::invalid_argument);
}

TEST_CASE("a negative maxsize is invalid_argument for every queue kind") {
  CHECK(code_of([] { actors::queue<int> q{LONG_MIN}; })
        == actors::errc::invalid_argument);
  CHECK(code_of([] { actors::joinable_queue<int> q{-1}; })
        == actors::errc::invalid_argument);
  CHECK(code_of([] { actors::simple_queue<int> q{-5}; })
        == actors::errc::invalid_argument);
  actors::queue<int> q{actors::unbounded};
  q.put(1);
  CHECK(q.get(1s) == 1);
}

// -- zero and negative timeouts -------------------------------------------------

namespace {

// The time `fn` takes, in ms.
template <class F>
long long ms_taken(F fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::steady_clock::now() - t0)
    .count();
}

void block_forever() {
  for (;;)
    ::pause();
}

int blocks(int) {
  block_forever();
  return 0;
}

} // namespace

TEST_CASE("queue timeouts: zero does not wait and negative is zero") {
  actors::queue<int> q{1};
  CHECK(ms_taken([&] {
          CHECK(code_of([&] { q.get(0s); }) == actors::errc::queue_empty);
          CHECK(code_of([&] { q.get(-1s); }) == actors::errc::queue_empty);
          CHECK_FALSE(q.try_get(-1ms).has_value());
          q.put(1, -1ms); // room: put at once
          CHECK(code_of([&] { q.put(2, 0s); }) == actors::errc::queue_full);
          CHECK(code_of([&] { q.put(2, -1s); }) == actors::errc::queue_full);
          CHECK_FALSE(q.try_put(2, -1ms));
          CHECK(q.get(-1ms) == 1);
        })
        < 1000);
  CHECK(q.empty());
  actors::joinable_queue<int> j{actors::unbounded};
  j.put(1);
  CHECK(ms_taken([&] {
          CHECK_FALSE(j.join(0s));
          CHECK_FALSE(j.join(-1s));
        })
        < 1000);
  j.get();
  j.task_done();
  CHECK(j.join(0s));
  CHECK(j.join(-1s));
}

TEST_CASE("pipe timeouts: zero does not wait and negative is zero") {
  auto [a, b] = actors::pipe<int>();
  CHECK(ms_taken([&, a = a] {
          CHECK(code_of([&] { a.recv(0s); }) == actors::errc::timeout);
          CHECK(code_of([&] { a.recv(-1s); }) == actors::errc::timeout);
          CHECK(code_of([&] { a.recv_bytes(-1s); }) == actors::errc::timeout);
          CHECK_FALSE(a.poll(0s));
          CHECK_FALSE(a.poll(-1s));
          CHECK(actors::wait<int>({a}, 0s).empty());
          CHECK(actors::wait<int>({a}, -1s).empty());
        })
        < 1000);
  b.send(7);
  CHECK(a.poll(10s));
  CHECK(a.poll(-1s));
  CHECK(actors::wait<int>({a}, -1s).size() == 1);
  CHECK(a.recv(-1s) == 7);
}

TEST_CASE("lock and sync timeouts: zero does not wait and negative is zero") {
  auto l = actors::make_lock();
  auto r = actors::make_rlock();
  auto s = actors::make_semaphore(0);
  auto e = actors::make_event();
  CHECK(l.try_lock_for(-1ms)); // free: taken at once
  std::thread other{[&] {
    CHECK(ms_taken([&] {
            CHECK_FALSE(l.try_lock_for(-1s)); // held: not at once
            CHECK(l.acquire(-1s) == actors::lock::acquired::no);
          })
          < 1000);
  }};
  other.join();
  l.unlock();
  CHECK(r.acquire(-1ms) == actors::rlock::acquired::yes);
  CHECK(r.acquire(0s) == actors::rlock::acquired::yes);
  r.release();
  r.release();
  CHECK(ms_taken([&] {
          CHECK_FALSE(s.acquire(0s));
          CHECK_FALSE(s.acquire(-1s));
          CHECK_FALSE(e.wait(0s));
          CHECK_FALSE(e.wait(-1s));
        })
        < 1000);
  s.release();
  CHECK(s.acquire(-1s));
  e.set();
  CHECK(e.wait(-1s));
}

TEST_CASE("process join with a zero or negative timeout answers at once") {
  actors::process p{block_forever};
  p.start();
  // As Python's join(timeout): no waiting, no error; the child runs on.
  CHECK(ms_taken([&] { CHECK_FALSE(p.join(0s)); }) < 1000);
  CHECK(ms_taken([&] { CHECK_FALSE(p.join(-1s)); }) < 1000);
  CHECK(p.is_alive());
  p.kill();
  CHECK(p.join(10s));
  CHECK(p.join(-1s)); // ended: true at once
}

TEST_CASE("result timeouts: zero and negative give errc::timeout at once") {
  actors::pool p{1};
  auto running = p.apply_async(blocks, 0);
  // As Python's AsyncResult.get(timeout): TimeoutError, for any timeout.
  CHECK(ms_taken([&] {
          CHECK(code_of([&] { running.get(0s); }) == actors::errc::timeout);
          CHECK(code_of([&] { running.get(-1s); }) == actors::errc::timeout);
          CHECK_FALSE(running.wait(0s));
          CHECK_FALSE(running.wait(-1s));
        })
        < 1000);
  std::vector<int> inputs{1};
  auto stream = p.imap(square, inputs); // behind the blocked task
  CHECK(code_of([&] { stream.next(0s); }) == actors::errc::timeout);
  CHECK(code_of([&] { stream.next(-1s); }) == actors::errc::timeout);
  CHECK(running.cancel());
  CHECK(*stream.next(10s) == 1); // the stream goes on after its timeouts
  CHECK_FALSE(stream.next(10s).has_value());
  still_serves(p);
  p.close();
  p.join();
}

namespace {

caf::behavior idle_actor(caf::event_based_actor*) {
  return {[](int x) { return x; }};
}

} // namespace

TEST_CASE("actor process, supervisor and pool waits: negative is zero") {
  auto a = actors::spawn(idle_actor);
  actors::child_spec spec;
  spec.id = "idle";
  spec.start = [] { return actors::spawn(idle_actor).handle(); };
  actors::supervisor sup{{}, {spec}};
  actors::pool p{1};
  actors::thread_pool t{1};
  auto gate = actors::make_event();
  auto waiting = t.apply_async([gate] { return gate.wait(30s); });
  CHECK(ms_taken([&] {
          CHECK_FALSE(a.join(0s));
          CHECK_FALSE(a.join(-1s));
          CHECK_FALSE(sup.wait(0s));
          CHECK_FALSE(sup.wait(-1s));
          CHECK_FALSE(p.wait_for_remote_workers(1, 0s));
          CHECK_FALSE(p.wait_for_remote_workers(1, -1s));
          CHECK_FALSE(waiting.wait(-1s));
          CHECK(code_of([&] { waiting.get(-1s); }) == actors::errc::timeout);
        })
        < 1000);
  gate.set();
  CHECK(waiting.get(10s));
  CHECK(a.stop(10s));
  CHECK(a.join(-1s)); // ended: true at once
  sup.stop();
  CHECK(sup.wait(-1s));
  p.close();
  p.join();
}

// -- the longest timeouts ------------------------------------------------------

namespace {

constexpr auto longest = std::chrono::steady_clock::duration::max();

// Runs `wait` (whose timeout is `longest`) while another thread calls
// `supply` 200 ms later: `wait` must return what was supplied. (The delay
// only makes it likely that `wait` waits first; if it does not, there is
// nothing to wait for and the case passes anyway.) A duration::max() added
// to the clock overflowed into the past: the wait timed out at once.
template <class Wait, class Supply>
void waits_for(Wait wait, Supply supply) {
  std::thread supplier{[&] {
    std::this_thread::sleep_for(200ms);
    supply();
  }};
  wait();
  supplier.join();
}

int get_longest(actors::queue<int> q) {
  return q.get(longest) == 5 ? 0 : 1;
}

} // namespace

TEST_CASE("a timeout of duration::max() waits without bound") {
  actors::queue<int> q{1};
  waits_for([&] { CHECK(q.get(longest) == 1); }, [&] { q.put(1); });
  q.put(2);
  waits_for([&] { q.put(3, longest); }, [&] { CHECK(q.get() == 2); });
  CHECK(q.get() == 3);
  actors::joinable_queue<int> j{actors::unbounded};
  j.put(4);
  waits_for([&] { CHECK(j.join(longest)); },
            [&] {
              j.get();
              j.task_done();
            });
  // A child's get goes through the hub, which got the timeout as a number.
  actors::process child{get_longest, q};
  child.start();
  waits_for([&] { CHECK(child.join(longest)); }, [&] { q.put(5); });
  CHECK(child.exitcode() == 0);
  auto [a, b] = actors::pipe<int>();
  waits_for([&, a = a] { CHECK(a.poll(longest)); }, [&, b = b] { b.send(6); });
  CHECK(a.recv(longest) == 6);
  auto s = actors::make_semaphore(0);
  auto e = actors::make_event();
  waits_for([&] { CHECK(s.acquire(longest)); }, [&] { s.release(); });
  waits_for([&] { CHECK(e.wait(longest)); }, [&] { e.set(); });
  actors::thread_pool t{1};
  auto gate = actors::make_event();
  auto task = t.apply_async([gate] { return gate.wait(30s); });
  waits_for([&] { CHECK(task.get(longest)); }, [&] { gate.set(); });
  actors::child_spec spec;
  spec.id = "idle";
  spec.start = [] { return actors::spawn(idle_actor).handle(); };
  actors::supervisor sup{{}, {spec}};
  waits_for([&] { CHECK(sup.wait(longest)); },
            [&] {
              caf::anon_send_exit(sup.handle(),
                                  caf::exit_reason::user_shutdown);
            });
}

TEST_CASE("a negative restart window is invalid_argument") {
  actors::pool_options opts;
  opts.restart_window = -1s;
  auto code = code_of([&] {
    actors::pool p{1, opts};
    p.apply_async(exits_3, 0).wait(30s);
    still_serves(p);
    p.close();
    p.join();
  });
  CHECK(code == actors::errc::invalid_argument);
}

TEST_CASE("a zero restart window counts each death alone") {
  actors::pool_options opts;
  opts.restart_window = 0s;
  actors::pool p{1, opts};
  CHECK(code_of([&] { p.apply(exits_3, 0); }) == actors::errc::worker_lost);
  still_serves(p);
  p.close();
  p.join();
}
