// actors::lock (actors::mutex) across threads and real OS processes: mutual
// exclusion, timeouts, misuse, and recovery when the holder dies.

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "actors/all.hpp"
#include "support/error_code.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

// Appends "+pid" and "-pid" around a critical section, `n` times.
void enter_and_leave(actors::lock l, std::string path, int n) {
  auto fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
  auto line = [&](char c) {
    auto text = c + std::to_string(::getpid()) + "\n";
    [[maybe_unused]] auto w = ::write(fd, text.data(), text.size());
  };
  for (int i = 0; i < n; ++i) {
    std::lock_guard<actors::lock> guard{l};
    line('+');
    line('-');
  }
  ::close(fd);
}

// Like enter_and_leave with an rlock taken twice around each section.
void enter_twice(actors::rlock l, std::string path, int n) {
  auto fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
  auto line = [&](char c) {
    auto text = c + std::to_string(::getpid()) + "\n";
    [[maybe_unused]] auto w = ::write(fd, text.data(), text.size());
  };
  for (int i = 0; i < n; ++i) {
    std::lock_guard<actors::rlock> outer{l};
    line('+');
    std::lock_guard<actors::rlock> inner{l};
    line('-');
  }
  ::close(fd);
}

// Takes an rlock twice, says so, and waits to be killed.
void hold_twice_forever(actors::rlock l, actors::queue<int> held) {
  l.lock();
  l.lock();
  held.put(1);
  for (;;)
    ::pause();
}

// Checks that the file holds `n` sections "+pid" "-pid", never interleaved.
void check_sections(const char* path, int n) {
  std::FILE* f = std::fopen(path, "r");
  char a[32], b[32];
  int sections = 0;
  while (std::fgets(a, sizeof(a), f)) {
    REQUIRE(std::fgets(b, sizeof(b), f) != nullptr);
    REQUIRE(a[0] == '+');
    REQUIRE(b[0] == '-');
    REQUIRE(std::string{a + 1} == std::string{b + 1});
    ++sections;
  }
  std::fclose(f);
  CHECK(sections == n);
}

// Takes the lock, says so, and waits to be killed.
void hold_forever(actors::lock l, actors::queue<int> held) {
  l.lock();
  held.put(1);
  for (;;)
    ::pause();
}

// Makes a lock, hands it over through `out`, and ends once told on `done`.
void makes_lock(actors::queue<actors::lock> out, actors::queue<int> done) {
  out.put(actors::make_lock());
  done.get(std::chrono::seconds{10});
}

// Exits 7 if using `l` fails with owner_unreachable, 0 if it works.
void uses_lock(actors::lock l) {
  try {
    l.lock();
    l.unlock();
    std::exit(0);
  } catch (const actors::error& e) {
    std::exit(e.code() == actors::errc::owner_unreachable ? 7 : 1);
  }
}

// What the holder of `l` is told when it asks again, one digit per way of
// asking: 1 false (or acquired::no), 2 would_deadlock, 3 anything else.
int holder_asks_again(actors::lock& l) {
  auto bounded = [](auto fn) {
    try {
      return fn() ? 3 : 1;
    } catch (const actors::error&) {
      return 3;
    }
  };
  int out = 0;
  out = out * 10 + bounded([&] { return l.try_lock(); });
  out = out * 10 + bounded([&] {
          return l.acquire(0s) != actors::lock::acquired::no;
        });
  out = out * 10 + bounded([&] { return l.try_lock_for(2s); });
  out = out * 10 + bounded([&] {
          return l.acquire(-1s) != actors::lock::acquired::no;
        });
  out = out * 10
        + (code_of([&] { l.lock(); }) == actors::errc::would_deadlock ? 2 : 3);
  return out;
}

// Takes the lock, says so, asks again as its holder, says what it was told,
// and releases it when told.
void holds_and_asks_again(actors::lock l, actors::queue<int> said,
                          actors::queue<int> go) {
  l.lock();
  said.put(0);
  said.put(holder_asks_again(l));
  go.get(std::chrono::seconds{10});
  l.unlock();
}

} // namespace

TEST_CASE("lock, unlock, try_lock, try_lock_for and misuse") {
  auto l = actors::make_lock();
  CHECK(l.try_lock());
  std::thread other{[l]() mutable {
    CHECK_FALSE(l.try_lock());
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(l.try_lock_for(100ms));
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= 100ms);
    CHECK(waited < 2s);
    CHECK(code_of([&] { l.unlock(); }) == actors::errc::not_owner);
  }};
  other.join();
  l.unlock();
  CHECK(code_of([&] { l.unlock(); }) == actors::errc::not_owner);
  {
    std::unique_lock<actors::lock> guard{l, std::defer_lock};
    CHECK(guard.try_lock_for(1s));
  }
  actors::lock empty;
  CHECK(code_of([&] { empty.lock(); }) == actors::errc::invalid_argument);
}

TEST_CASE("its holder asking again: try_lock, acquire(0s) and try_lock_for are "
          "false at once, lock() is would_deadlock") {
  auto l = actors::make_lock();
  l.lock();
  auto t0 = std::chrono::steady_clock::now();
  // try_lock, acquire(0s), try_lock_for(2s), acquire(-1s): false (1);
  // lock(): would_deadlock (2).
  CHECK(holder_asks_again(l) == 11112);
  // Nothing can release it while its holder waits: no wait at all.
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  {
    std::unique_lock<actors::lock> again{l, std::try_to_lock};
    CHECK_FALSE(again.owns_lock());
  }
  l.unlock();
  CHECK(code_of([&] { l.unlock(); }) == actors::errc::not_owner);
  // A negative timeout is zero: free, the lock is taken at once.
  CHECK(l.acquire(-1s) == actors::lock::acquired::yes);
  l.unlock();
  CHECK(l.try_lock_for(-5ms));
  l.unlock();
}

TEST_CASE("a holder in another process asking again: false, lock() is "
          "would_deadlock") {
  auto l = actors::make_lock();
  actors::queue<int> said{actors::unbounded};
  actors::queue<int> go{actors::unbounded};
  actors::process holder{holds_and_asks_again, l, said, go};
  holder.start();
  REQUIRE(said.get(10s) == 0);
  CHECK(said.get(10s) == 11112);
  CHECK_FALSE(l.try_lock()); // held there
  go.put(1);
  REQUIRE(holder.join(10s));
  CHECK(holder.exitcode() == 0);
  CHECK(l.acquire(5s) == actors::lock::acquired::yes);
  l.unlock();
}

TEST_CASE("8 threads contending never overlap") {
  auto l = actors::make_lock();
  std::atomic<bool> inside{false};
  std::atomic<int> violations{0};
  int counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, l]() mutable {
      for (int i = 0; i < 100; ++i) {
        std::lock_guard<actors::lock> guard{l};
        if (inside.exchange(true))
          ++violations;
        ++counter;
        inside = false;
      }
    });
  for (auto& t : threads)
    t.join();
  CHECK(violations == 0);
  CHECK(counter == 800);
}

TEST_CASE("4 processes contending never overlap") {
  char path[] = "/tmp/actors-lock-XXXXXX";
  ::close(::mkstemp(path));
  auto l = actors::make_lock();
  std::vector<actors::process> procs;
  for (int i = 0; i < 4; ++i)
    procs.emplace_back(enter_and_leave, l, std::string{path}, 50);
  for (auto& p : procs)
    p.start();
  for (auto& p : procs) {
    REQUIRE(p.join(60s));
    CHECK(p.exitcode() == 0);
  }
  // Every "+pid" is immediately followed by the same "-pid".
  check_sections(path, 200);
  ::unlink(path);
}

TEST_CASE("a holder killed with SIGKILL: the next acquirer gets the lock") {
  auto l = actors::make_lock();
  actors::queue<int> held{actors::unbounded};
  actors::process holder{hold_forever, l, held};
  holder.start();
  REQUIRE(held.get(10s) == 1);
  CHECK_FALSE(l.try_lock());
  auto t0 = std::chrono::steady_clock::now();
  holder.kill();
  CHECK(l.acquire(5s) == actors::lock::acquired::previous_owner_died);
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  l.unlock();
  l.lock();
  CHECK_FALSE(l.previous_owner_died());
  l.unlock();
  REQUIRE(holder.join(10s));
}

TEST_CASE("an rlock is re-entrant for its holder and exclusive for others") {
  auto r = actors::make_rlock();
  r.lock();
  CHECK(r.try_lock());
  CHECK(r.acquire(0s) == actors::rlock::acquired::yes);
  auto other_gets_it = [r]() mutable {
    bool got = false;
    std::thread t{[&] {
      got = r.try_lock();
      if (got)
        r.unlock();
    }};
    t.join();
    return got;
  };
  CHECK_FALSE(other_gets_it());
  r.unlock();
  r.unlock();
  CHECK_FALSE(other_gets_it()); // still held once
  r.unlock();
  CHECK(other_gets_it());
  CHECK(code_of([&] { r.unlock(); }) == actors::errc::not_owner);
  actors::rlock empty;
  CHECK(code_of([&] { empty.lock(); }) == actors::errc::invalid_argument);
}

TEST_CASE("4 processes taking an rlock twice never overlap") {
  char path[] = "/tmp/actors-rlock-XXXXXX";
  ::close(::mkstemp(path));
  auto r = actors::make_rlock();
  std::vector<actors::process> procs;
  for (int i = 0; i < 4; ++i)
    procs.emplace_back(enter_twice, r, std::string{path}, 25);
  for (auto& p : procs)
    p.start();
  for (auto& p : procs) {
    REQUIRE(p.join(60s));
    CHECK(p.exitcode() == 0);
  }
  check_sections(path, 100);
  ::unlink(path);
}

TEST_CASE("an rlock held twice by a killed process is released entirely") {
  auto r = actors::make_rlock();
  actors::queue<int> held{actors::unbounded};
  actors::process holder{hold_twice_forever, r, held};
  holder.start();
  REQUIRE(held.get(10s) == 1);
  CHECK_FALSE(r.try_lock());
  holder.kill();
  CHECK(r.acquire(5s) == actors::rlock::acquired::previous_owner_died);
  r.unlock();
  std::thread other{[r]() mutable {
    CHECK(r.try_lock_for(5s)); // free: nothing of the dead holder remains
    r.unlock();
  }};
  other.join();
  REQUIRE(holder.join(10s));
}

TEST_CASE("a lock outlives its maker where it was used, and fails clearly elsewhere") {
  actors::queue<actors::lock> out{0};
  actors::queue<int> done{0};
  actors::process maker{makes_lock, out, done};
  maker.start();
  auto l = out.get(10s);
  {
    // Mapped here while its maker lives, and used by another process too.
    std::lock_guard<actors::lock> guard{l};
  }
  actors::process user{uses_lock, l};
  user.start();
  REQUIRE(user.join(10s));
  CHECK(user.exitcode() == 0);
  done.put(1);
  REQUIRE(maker.join(10s));
  CHECK(l.try_lock()); // this process mapped it: it goes on working
  l.unlock();
  actors::process late{uses_lock, l};
  late.start();
  REQUIRE(late.join(10s));
  CHECK(late.exitcode() == 7); // its memory went with its maker
}
