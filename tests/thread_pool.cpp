// actors::thread_pool: the pool's API served by threads of this process, with
// capturing callables, moved results and the process pool's errors.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"
#include "support/error_code.hpp"
#include "support/throwing_range.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

// Blocks until `n` callers arrived or `bound` passed; true if all arrived.
class rendezvous {
public:
  explicit rendezvous(int n) : missing_(n) {
  }
  bool arrive_and_wait(std::chrono::milliseconds bound) {
    std::unique_lock<std::mutex> guard{mtx_};
    if (--missing_ <= 0)
      cv_.notify_all();
    return cv_.wait_for(guard, bound, [this] { return missing_ <= 0; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  int missing_;
};

// Opens once, for tasks that must stay running until the test lets them go.
class gate {
public:
  void open() {
    std::lock_guard<std::mutex> guard{mtx_};
    open_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds bound) {
    std::unique_lock<std::mutex> guard{mtx_};
    return cv_.wait_for(guard, bound, [this] { return open_; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Neither serializable nor copyable: only a thread pool can carry it.
struct handle_only {
  std::unique_ptr<int> p;
};

// Counts its copies.
struct counted {
  explicit counted(std::atomic<int>* copies) : copies(copies) {
  }
  counted(const counted& other) : copies(other.copies) {
    ++*copies;
  }
  counted(counted&&) = default;
  counted& operator=(const counted&) = delete;
  counted& operator=(counted&&) = default;
  std::atomic<int>* copies;
};

} // namespace

TEST_CASE("capturing lambdas run and return through every entry point") {
  int offset = 1000;
  std::string prefix = "n=";
  actors::thread_pool tp{2};
  CHECK(tp.threads() == 2);
  CHECK(tp.apply_async([offset](int x) { return x + offset; }, 7).get(10s)
        == 1007);
  CHECK(tp.apply([&prefix](int x) { return prefix + std::to_string(x); }, 5)
        == "n=5");
  std::vector<int> xs(1000);
  std::iota(xs.begin(), xs.end(), 0);
  std::vector<int> expected;
  for (int x : xs)
    expected.push_back(x * 3 + offset);
  auto f = [offset](int x) { return x * 3 + offset; };
  CHECK(tp.map(f, xs) == expected);
  CHECK(tp.map(f, xs, 1) == expected);
  CHECK(tp.map_async(f, std::vector<int>{}).get(10s).empty());
  std::vector<std::pair<int, std::string>> pairs{{1, "a"}, {2, "b"}};
  CHECK(tp.starmap([&](int n, const std::string& s) { return prefix + s
                                                             + std::to_string(n); },
                   pairs)
        == std::vector<std::string>{"n=a1", "n=b2"});
  std::vector<int> ordered;
  for (int y : tp.imap(f, actors::range(0, 1000), 7))
    ordered.push_back(y);
  CHECK(ordered == expected);
  std::multiset<int> unordered;
  for (int y : tp.imap_unordered(f, xs))
    unordered.insert(y);
  CHECK(unordered == std::multiset<int>(expected.begin(), expected.end()));
  tp.apply_async([] {}).get(10s); // void tasks
  tp.close();
  tp.join();
}

TEST_CASE("workers are threads of this process, running concurrently") {
  actors::thread_pool tp{2};
  rendezvous both{2};
  auto task = [&both] {
    // Each task waits for the other: passes only if two run at once.
    bool met = both.arrive_and_wait(10s);
    return std::make_pair(met, std::make_pair(::getpid(), std::this_thread::get_id()));
  };
  auto a = tp.apply_async(task);
  auto b = tp.apply_async(task);
  auto ra = a.get(20s);
  auto rb = b.get(20s);
  CHECK(ra.first);
  CHECK(rb.first);
  CHECK(ra.second.first == ::getpid());
  CHECK(rb.second.first == ::getpid());
  CHECK(ra.second.second != rb.second.second);
  CHECK(ra.second.second != std::this_thread::get_id());
  tp.close();
  tp.join();
}

TEST_CASE("results are moved: move-only results, non-serializable arguments") {
  actors::thread_pool tp{2};
  auto r = tp.apply_async([](int x) { return std::make_unique<int>(x); }, 42);
  auto p = r.get(10s);
  REQUIRE(p != nullptr);
  CHECK(*p == 42);
  CHECK(code_of([&] { r.get(10s); }) == actors::errc::invalid_argument);
  auto shared = std::make_shared<handle_only>();
  shared->p = std::make_unique<int>(7);
  CHECK(tp.apply([](std::shared_ptr<handle_only> h) { return *h->p; }, shared)
        == 7);
  // Arguments and results are moved all the way: a callback sees the
  // result without a single copy.
  std::atomic<int> copies{0};
  gate seen;
  tp.apply_async([](counted c) { return c; }, counted{&copies})
    .then([&](const counted&) { seen.open(); }, [](actors::errc, auto&&) {});
  CHECK(seen.wait(10s));
  CHECK(copies == 0);
  tp.close();
  tp.join();
}

TEST_CASE("exceptions propagate exactly as in the process pool") {
  actors::thread_pool tp{2};
  auto fails = [](int x) {
    if (x == 3)
      throw std::invalid_argument("three is not allowed");
    return x;
  };
  try {
    tp.apply(fails, 3);
    FAIL("no error");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::task_failed);
    CHECK(std::string{e.what()}.find("std::invalid_argument")
          != std::string::npos);
    CHECK(std::string{e.what()}.find("three is not allowed")
          != std::string::npos);
  }
  CHECK(code_of([&] { tp.apply([] { throw 42; }); })
        == actors::errc::task_failed);
  CHECK(code_of([&] { tp.map(fails, std::vector<int>{1, 2, 3, 4}, 1); })
        == actors::errc::task_failed);
  // A stream throws at the failing position and goes on after it.
  std::vector<int> inputs{1, 2, 3, 4}; // read lazily: must outlive the stream
  auto stream = tp.imap(fails, inputs);
  CHECK(*stream.next(10s) == 1);
  CHECK(*stream.next(10s) == 2);
  CHECK(code_of([&] { stream.next(10s); }) == actors::errc::task_failed);
  CHECK(*stream.next(10s) == 4);
  CHECK_FALSE(stream.next(10s).has_value());
  CHECK(tp.apply(fails, 5) == 5); // still usable
  tp.close();
  tp.join();
}

TEST_CASE("100k small tasks: map, chunksize 1, apply_async and imap_unordered") {
  actors::thread_pool tp{2};
  std::atomic<long> calls{0};
  auto f = [&calls](long x) {
    ++calls;
    return x * x;
  };
  std::vector<long> xs(100000);
  std::iota(xs.begin(), xs.end(), 0L);
  std::vector<long> expected;
  for (long x : xs)
    expected.push_back(x * x);
  CHECK(tp.map(f, xs) == expected);
  CHECK(tp.map(f, xs, 1) == expected);
  std::vector<actors::async_result<long>> rs;
  for (long x : xs)
    rs.push_back(tp.apply_async(f, x));
  long sum = 0;
  for (auto& r : rs)
    sum += r.get(30s);
  CHECK(sum == std::accumulate(expected.begin(), expected.end(), 0L));
  long usum = 0;
  for (long y : tp.imap_unordered(f, actors::range(0, 100000)))
    usum += y;
  CHECK(usum == sum);
  CHECK(calls == 400000);
  tp.close();
  tp.join();
}

TEST_CASE("terminate fails what is outstanding at once, running tasks finish") {
  actors::thread_pool tp{1};
  gate started, release;
  std::atomic<bool> finished{false};
  auto running = tp.apply_async([&] {
    started.open();
    release.wait(10s);
    finished = true;
    return 1;
  });
  auto queued = tp.apply_async([] { return 2; });
  REQUIRE(started.wait(10s));
  tp.terminate();
  CHECK(code_of([&] { running.get(1s); }) == actors::errc::terminated);
  CHECK(code_of([&] { queued.get(1s); }) == actors::errc::terminated);
  CHECK_FALSE(finished);
  release.open();
  tp.join(); // waits for the running task's thread
  CHECK(finished);
}

TEST_CASE("cancel removes a queued task, a running one cannot be stopped") {
  actors::thread_pool tp{1};
  gate started, release;
  auto running = tp.apply_async([&] {
    started.open();
    return release.wait(10s);
  });
  auto queued = tp.apply_async([] { return 2; });
  REQUIRE(started.wait(10s));
  CHECK(queued.cancel());
  CHECK(code_of([&] { queued.get(1s); }) == actors::errc::cancelled);
  CHECK_FALSE(running.cancel());
  release.open();
  CHECK(running.get(10s));
  tp.close();
  tp.join();
}

TEST_CASE("misuse: join before close, work after close, bad sizes") {
  actors::thread_pool tp{1};
  CHECK(code_of([&] { tp.join(); }) == actors::errc::pool_running);
  tp.close();
  CHECK(code_of([&] { tp.apply_async([] { return 1; }); })
        == actors::errc::pool_not_running);
  tp.join();
  CHECK(code_of([] { actors::thread_pool bad{-1}; })
        == actors::errc::invalid_argument);
  actors::thread_pool cores{0};
  CHECK(cores.threads() >= 1);
}

TEST_CASE("the initializer runs once per thread, one that throws breaks the pool") {
  thread_local int initialized = 0;
  std::atomic<int> runs{0};
  {
    actors::thread_pool tp{2, [&] {
                             ++runs;
                             initialized = 7;
                           }};
    CHECK(tp.map([](int) { return initialized; }, std::vector<int>(50, 0), 1)
          == std::vector<int>(50, 7));
    tp.close();
    tp.join();
  }
  CHECK(runs == 2);
  actors::thread_pool broken{2, [] { throw std::runtime_error("no database"); }};
  try {
    // Fails at submission or in the result, whichever comes after the
    // initializer failed.
    broken.apply_async([] { return 1; }).get(10s);
    FAIL("no error");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::pool_broken);
    CHECK(std::string{e.what()}.find("no database") != std::string::npos);
  }
}

TEST_CASE("destroying a thread pool resolves every queued result") {
  std::optional<actors::async_result<int>> queued;
  gate release;
  {
    actors::thread_pool tp{1};
    tp.apply_async([&] { return release.wait(100ms); });
    queued = tp.apply_async([] { return 1; });
  }
  CHECK(code_of([&] { queued->get(1s); }) == actors::errc::terminated);
}

TEST_CASE("a stream outliving its pool fails instead of hanging") {
  std::vector<int> xs(100000, 1); // far more than the stream's window
  std::optional<actors::result_stream<int>> stream;
  {
    actors::thread_pool tp{1};
    stream.emplace(tp.imap([](int x) { return x; }, xs));
    CHECK(*stream->next(10s) == 1);
  }
  auto code = code_of([&] {
    while (stream->next(10s)) {
    }
  });
  CHECK((code == actors::errc::terminated
         || code == actors::errc::pool_not_running));
}

TEST_CASE("imap over an input that throws: the results before it, its "
          "error, then the end") {
  actors::thread_pool tp{2};
  int offset = 1;
  auto f = [offset](int x) { return x * 10 + offset; };
  for (auto mode : {support::throwing_range::on_dereference,
                    support::throwing_range::on_advance}) {
    INFO("mode " << mode);
    support::throwing_range fourth{3, 10, mode};
    auto s1 = tp.imap(f, fourth, 1);
    auto r1 = support::read_all(s1);
    CHECK(r1.values == std::vector<int>{1, 11, 21});
    CHECK(r1.error == "bad input 3");
    CHECK(r1.ended_after_error);
    support::throwing_range eighth{7, 20, mode};
    auto s2 = tp.imap(f, eighth, 2);
    auto r2 = support::read_all(s2);
    CHECK(r2.values == std::vector<int>{1, 11, 21, 31, 41, 51});
    CHECK(r2.error == "bad input 7");
    CHECK(r2.ended_after_error);
    auto s3 = tp.imap_unordered(f, fourth, 1);
    auto r3 = support::read_all(s3);
    std::sort(r3.values.begin(), r3.values.end());
    CHECK(r3.values == std::vector<int>{1, 11, 21});
    CHECK(r3.error == "bad input 3");
    CHECK(r3.ended_after_error);
    CHECK_THROWS_AS(tp.map_async(f, fourth), support::bad_input);
  }
  CHECK(tp.map(f, std::vector<int>{1, 2}) == std::vector<int>{11, 21});
}

TEST_CASE("a callback has run when wait() or get() returns") {
  actors::thread_pool tp{2};
  int late = 0;
  for (int i = 0; i < 200; ++i) {
    auto ran = std::make_shared<std::atomic<int>>(0);
    auto r = tp.apply_async([i] { return i; });
    r.then([ran](int) { ran->store(1); },
           [ran](actors::errc, const std::string&) { ran->store(2); });
    REQUIRE(r.wait(10s));
    late += ran->load() != 1;
  }
  CHECK(late == 0);
  auto failed = std::make_shared<std::atomic<int>>(0);
  auto f = tp.apply_async([]() -> int { throw std::runtime_error("no"); });
  f.then([failed](int) { failed->store(1); },
         [failed](actors::errc, const std::string&) { failed->store(2); });
  CHECK(code_of([&] { f.get(10s); }) == actors::errc::task_failed);
  CHECK(failed->load() == 2);
}

TEST_CASE("a callback may wait for another result of the same pool") {
  actors::thread_pool tp{1};
  gate go;
  auto a = tp.apply_async([&go] { return go.wait(30s) ? 1 : 0; });
  auto b = tp.apply_async([] { return 25; });
  std::promise<int> seen;
  a.then(
    [b, &seen](int) {
      try {
        seen.set_value(b.get(3s));
      } catch (...) {
        seen.set_exception(std::current_exception());
      }
    },
    [&seen](actors::errc, const std::string& what) {
      seen.set_exception(std::make_exception_ptr(std::runtime_error(what)));
    });
  go.open();
  auto answer = seen.get_future();
  REQUIRE(answer.wait_for(20s) == std::future_status::ready);
  CHECK(answer.get() == 25);
  CHECK(a.get(10s) == 1);
}

TEST_CASE("a stream dropped with results it did not read frees each once") {
  actors::thread_pool tp{2};
  std::vector<int> xs(1000, 1);
  {
    auto s = tp.imap([](int x) { return x; }, xs);
    CHECK(*s.next(10s) == 1); // a window of chunks went to the workers
    tp.close();
    tp.join(); // ... and every one of them has arrived
    CHECK(*s.next(10s) == 1); // taken in, all at once; one is yielded
  } // the others go with the stream
  CHECK_THROWS_AS(tp.apply_async([] { return 1; }), actors::error);
}
