// actors::semaphore and actors::event across threads and real processes.

#include <doctest/doctest.h>

#include <cstdio>
#include <fcntl.h>
#include <string>
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
