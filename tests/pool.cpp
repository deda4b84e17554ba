// actors::pool across real worker processes: results, ordering, exceptions,
// worker deaths with retries, close/join/terminate and the destructor.

#include <doctest/doctest.h>

#include <csignal>
#include <cstdio>
#include <numeric>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "actors/all.hpp"
#include "support/error_code.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

int square(int x) {
  return x * x;
}

void nothing() {
}

long add(int a, long b) {
  return a + b;
}

int fails(int x) {
  if (x == 3)
    throw std::invalid_argument("three is not allowed");
  return x;
}

int slow_inverse(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds{(3 - x) * 300});
  return x;
}

// Kills its worker on the first attempt (marked by a file), succeeds after.
int dies_once(std::string marker) {
  if (std::FILE* f = std::fopen(marker.c_str(), "r")) {
    std::fclose(f);
    return 42;
  }
  std::fclose(std::fopen(marker.c_str(), "w"));
  std::raise(SIGKILL);
  return 0;
}

int always_segfaults() {
  std::raise(SIGSEGV);
  return 0;
}

int blocks() {
  for (;;)
    ::pause();
}

pid_t worker_pid(int) {
  return ::getpid();
}

} // namespace

TEST_CASE("apply and apply_async return the function's result") {
  actors::pool p{2};
  auto r = p.apply_async(square, 7);
  CHECK(r.get(10s) == 49);
  CHECK(r.ready());
  CHECK(r.successful());
  CHECK(p.apply(add, 2, 40L) == 42);
  p.apply_async(nothing).get(10s);
  p.close();
  p.join();
}

TEST_CASE("map and starmap give results in input order, as serially") {
  actors::pool p{2};
  std::vector<int> xs(1000);
  std::iota(xs.begin(), xs.end(), 0);
  std::vector<int> expected;
  for (int x : xs)
    expected.push_back(square(x));
  CHECK(p.map(square, xs) == expected);
  CHECK(p.map(square, xs, 1) == expected);
  CHECK(p.map(square, std::vector<int>{}).empty());
  std::vector<std::pair<int, long>> pairs{{1, 1}, {2, 2}, {3, 30}};
  CHECK(p.starmap(add, pairs) == std::vector<long>{2, 4, 33});
  p.close();
  p.join();
}

TEST_CASE("imap yields in input order, imap_unordered in completion order") {
  actors::pool p{3};
  std::vector<int> xs{0, 1, 2};
  std::vector<int> ordered, unordered;
  for (int x : p.imap(slow_inverse, xs))
    ordered.push_back(x);
  auto t0 = std::chrono::steady_clock::now();
  auto stream = p.imap_unordered(slow_inverse, xs);
  auto first = stream.next(10s);
  auto first_after = std::chrono::steady_clock::now() - t0;
  unordered.push_back(*first);
  while (auto x = stream.next(10s))
    unordered.push_back(*x);
  CHECK(ordered == std::vector<int>{0, 1, 2});
  CHECK(unordered == std::vector<int>{2, 1, 0});
  // Streaming: the first result came while the longest task still ran.
  CHECK(first_after < 800ms);
  p.close();
  p.join();
}

TEST_CASE("an exception fails that task only, with its type and message") {
  actors::pool p{2};
  auto r = p.apply_async(fails, 3);
  try {
    r.get(10s);
    FAIL("no error");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::task_failed);
    CHECK(std::string{e.what()}.find("std::invalid_argument")
          != std::string::npos);
    CHECK(std::string{e.what()}.find("three is not allowed")
          != std::string::npos);
  }
  CHECK_FALSE(r.successful());
  CHECK(code_of([&] { p.map(fails, std::vector<int>{1, 2, 3, 4}, 1); })
        == actors::errc::task_failed);
  CHECK(p.apply(square, 3) == 9); // still usable
  p.close();
  p.join();
}

TEST_CASE("a worker killed mid-task: the task is retried and succeeds") {
  char marker[] = "/tmp/actors-dies-once-XXXXXX";
  ::close(::mkstemp(marker));
  ::unlink(marker);
  actors::pool p{2};
  auto pids_before = p.map(worker_pid, std::vector<int>(20, 0), 1);
  CHECK(p.apply_async(dies_once, std::string{marker}).get(30s) == 42);
  ::unlink(marker);
  // The pool is whole again: still two workers, all usable.
  std::vector<int> xs(200);
  std::iota(xs.begin(), xs.end(), 0);
  std::vector<int> expected;
  for (int x : xs)
    expected.push_back(square(x));
  CHECK(p.map(square, xs, 1) == expected);
  p.close();
  p.join();
}

TEST_CASE("a task that always kills its worker fails with worker_lost") {
  actors::pool p{2};
  auto r = p.apply_async(always_segfaults);
  try {
    r.get(30s);
    FAIL("no error");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::worker_lost);
    CHECK(std::string{e.what()}.find("signal 11") != std::string::npos);
  }
  CHECK(p.apply(square, 5) == 25);
  p.close();
  p.join();
}

TEST_CASE("misuse: join before close, work after close, bad sizes") {
  actors::pool p{1};
  CHECK(code_of([&] { p.join(); }) == actors::errc::pool_running);
  p.close();
  CHECK(code_of([&] { p.apply_async(square, 1); })
        == actors::errc::pool_not_running);
  p.join();
  CHECK(code_of([] { actors::pool bad{-1}; })
        == actors::errc::invalid_argument);
}

TEST_CASE("terminate resolves every outstanding result with an error") {
  actors::pool p{2};
  std::vector<actors::async_result<int>> rs;
  for (int i = 0; i < 5; ++i)
    rs.push_back(p.apply_async(blocks));
  p.terminate();
  for (auto& r : rs)
    CHECK(code_of([&] { r.get(10s); }) == actors::errc::terminated);
  p.join();
}

TEST_CASE("destroying a pool never leaves a result unresolved") {
  std::optional<actors::async_result<int>> r;
  {
    actors::pool p{1};
    r = p.apply_async(blocks);
  }
  CHECK(code_of([&] { r->get(10s); }) == actors::errc::terminated);
}
