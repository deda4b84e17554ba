// actors::queue within one process and across real OS processes: blocking
// and timeouts, backpressure, close, joinable queues, and no item lost or
// duplicated when producers, consumers or the owner die.

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "actors/all.hpp"
#include "channel.hpp"
#include "queue_hub.hpp"
#include "runtime.hpp"
#include "support/error_code.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

// Waits (bounded) until `pred(stats)` holds for the queue behind `q`.
template <class Q, class Pred>
bool queue_reaches(const Q& q, Pred pred) {
  return support::eventually([&] { return pred(q.ref().snapshot()); }, 10s);
}

// -- functions run in children ------------------------------------------------

void produce(actors::queue<int> q, int first, int count) {
  for (int i = first; i < first + count; ++i)
    q.put(i);
}

// Puts `count` items into `q`, reporting each completed put into `done`.
void produce_reporting(actors::queue<int> q, actors::queue<int> done,
                       int count) {
  for (int i = 0; i < count; ++i) {
    q.put(i);
    done.put(i);
  }
}

// Puts `count` items, reports, then waits to be killed.
void produce_then_wait(actors::queue<int> q, actors::queue<int> done,
                       int count) {
  for (int i = 0; i < count; ++i)
    q.put(i);
  done.put(count);
  for (;;)
    ::pause();
}

void consume_forever(actors::queue<int> q) {
  for (;;)
    q.get();
}

// Gets `count` items from `in` and passes them on to `out`.
void relay(actors::queue<int> in, actors::queue<int> out, int count) {
  for (int i = 0; i < count; ++i)
    out.put(in.get());
}

// Gets `count` items and reports them all at once, in the order received.
void collect(actors::queue<int> in, actors::queue<std::vector<int>> out,
             int count) {
  std::vector<int> got;
  got.reserve(count);
  for (int i = 0; i < count; ++i)
    got.push_back(in.get());
  out.put(std::move(got));
}

// Creates a queue in this child, hands it to the parent, then waits to die.
void own_a_queue(actors::queue<actors::queue<int>> back) {
  actors::queue<int> mine{actors::unbounded};
  back.put(mine);
  for (;;)
    ::pause();
}

// Puts 0, 1, 2, ... until a put fails; reports how many returned and the
// error's code.
void put_until_refused(actors::queue<int> q,
                       actors::queue<std::vector<int>> report) {
  int count = 0;
  try {
    for (;; ++count)
      q.put(count);
  } catch (const actors::error& e) {
    report.put({count, e.code().value()});
  }
}

void put_big(actors::queue<std::string> q, std::size_t size) {
  std::string s(size, 'x');
  s.front() = 'a';
  s.back() = 'z';
  q.put(std::move(s));
}

} // namespace

TEST_CASE("put and get keep FIFO order, qsize, empty and full") {
  actors::queue<std::string> q{3};
  CHECK(q.empty());
  CHECK_FALSE(q.full());
  q.put("a");
  q.put("b");
  q.put("c");
  CHECK(q.qsize() == 3);
  CHECK(q.full());
  CHECK(q.get() == "a");
  CHECK(q.get() == "b");
  CHECK(q.get() == "c");
  CHECK(q.empty());
}

TEST_CASE("nowait forms raise full and empty, try forms return") {
  actors::queue<int> q{1};
  CHECK(code_of([&] { q.get_nowait(); }) == actors::errc::queue_empty);
  CHECK_FALSE(q.try_get().has_value());
  q.put_nowait(1);
  CHECK(code_of([&] { q.put_nowait(2); }) == actors::errc::queue_full);
  CHECK_FALSE(q.try_put(2));
  CHECK(q.try_get() == 1);
  CHECK(q.try_put(3));
  CHECK(q.get_nowait() == 3);
}

TEST_CASE("bad arguments are clear errors") {
  CHECK(code_of([] { actors::queue<int> q{-1}; })
        == actors::errc::invalid_argument);
  actors::queue<int> q{actors::unbounded};
  CHECK(code_of([&] { q.get(-1ms); }) == actors::errc::invalid_argument);
  actors::queue<int> empty;
  CHECK(code_of([&] { empty.put(1); }) == actors::errc::invalid_argument);
}

TEST_CASE("timeouts: get on empty and put on full give up on time") {
  actors::queue<int> q{1};
  auto t0 = std::chrono::steady_clock::now();
  CHECK(code_of([&] { q.get(100ms); }) == actors::errc::queue_empty);
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 100ms);
  CHECK(waited < 2s);
  q.put(1);
  t0 = std::chrono::steady_clock::now();
  CHECK(code_of([&] { q.put(2, 100ms); }) == actors::errc::queue_full);
  waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 100ms);
  CHECK(waited < 2s);
  // The put that timed out never lands later.
  CHECK(q.get() == 1);
  CHECK_FALSE(q.try_get(200ms).has_value());
}

TEST_CASE("a blocked get is woken by a put from another thread") {
  actors::queue<int> q{actors::unbounded};
  std::thread producer{[q] {
    q.ref().snapshot(); // any call: proves the thread can use the handle
    q.put(42);
  }};
  CHECK(q.get(10s) == 42);
  producer.join();
}

TEST_CASE("close: puts fail, gets drain, then fail, blocked callers wake") {
  actors::queue<int> q{actors::unbounded};
  q.put(1);
  q.close();
  CHECK(code_of([&] { q.put(2); }) == actors::errc::closed);
  CHECK(q.get() == 1);
  CHECK(code_of([&] { q.get(); }) == actors::errc::closed);

  actors::queue<int> r{actors::unbounded};
  actors::errc seen{};
  std::thread blocked{[&] { seen = code_of([&] { r.get(10s); }); }};
  REQUIRE(queue_reaches(r, [](auto s) { return s.getters == 1; }));
  r.close();
  blocked.join();
  CHECK(seen == actors::errc::closed);
}

TEST_CASE("joinable_queue: join waits for task_done of every item") {
  actors::joinable_queue<int> q{actors::unbounded};
  CHECK(q.join(0ms));
  q.put(1);
  q.put(2);
  CHECK_FALSE(q.join(50ms));
  q.get();
  q.task_done();
  CHECK_FALSE(q.join(0ms));
  q.get();
  q.task_done();
  CHECK(q.join(1s));
  CHECK(code_of([&] { q.task_done(); }) == actors::errc::too_many_task_done);
}

TEST_CASE("a producer process and a consumer: every item, in order") {
  actors::queue<int> q{actors::unbounded};
  actors::process producer{produce, q, 0, 1000};
  producer.start();
  for (int i = 0; i < 1000; ++i)
    REQUIRE(q.get(10s) == i);
  REQUIRE(producer.join(10s));
  CHECK(producer.exitcode() == 0);
}

TEST_CASE("backpressure: a full queue blocks a producer in another process") {
  actors::queue<int> q{2};
  actors::queue<int> done{actors::unbounded};
  actors::process producer{produce_reporting, q, done, 5};
  producer.start();
  CHECK(done.get(10s) == 0);
  CHECK(done.get(10s) == 1);
  // The third put waits for room: nothing more is reported.
  REQUIRE(queue_reaches(q, [](auto s) { return s.putters == 1; }));
  CHECK_FALSE(done.try_get().has_value());
  CHECK(q.get() == 0); // makes room
  CHECK(done.get(10s) == 2);
  for (int i = 1; i < 5; ++i)
    CHECK(q.get(10s) == i);
  REQUIRE(producer.join(10s));
  CHECK(producer.exitcode() == 0);
}

TEST_CASE("a consumer killed while blocked in get takes no item with it") {
  actors::queue<int> q{actors::unbounded};
  actors::process consumer{consume_forever, q};
  consumer.start();
  REQUIRE(queue_reaches(q, [](auto s) { return s.getters == 1; }));
  consumer.kill();
  REQUIRE(consumer.join(10s));
  q.put(7);
  CHECK(q.get(5s) == 7);
}

TEST_CASE("a producer killed after N puts leaves exactly N items") {
  actors::queue<int> q{actors::unbounded};
  actors::queue<int> done{actors::unbounded};
  actors::process producer{produce_then_wait, q, done, 50};
  producer.start();
  CHECK(done.get(10s) == 50);
  producer.kill();
  REQUIRE(producer.join(10s));
  for (int i = 0; i < 50; ++i)
    CHECK(q.get_nowait() == i);
  CHECK(q.empty());
}

TEST_CASE("when the queue's owner dies, a blocked get fails promptly") {
  actors::queue<actors::queue<int>> back{actors::unbounded};
  actors::process owner{own_a_queue, back};
  owner.start();
  auto theirs = back.get(10s);
  actors::errc seen{};
  std::thread blocked{[&] { seen = code_of([&] { theirs.get(); }); }};
  REQUIRE(queue_reaches(theirs, [](auto s) { return s.getters == 1; }));
  auto t0 = std::chrono::steady_clock::now();
  owner.kill();
  blocked.join();
  CHECK(seen == actors::errc::owner_unreachable);
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  REQUIRE(owner.join(10s));
}

TEST_CASE("handles travel through queues and work in other processes") {
  actors::queue<int> in{actors::unbounded};
  actors::queue<int> out{actors::unbounded};
  actors::process relayer{relay, in, out, 3};
  relayer.start();
  for (int i = 0; i < 3; ++i)
    in.put(i * 10);
  for (int i = 0; i < 3; ++i)
    CHECK(out.get(10s) == i * 10);
  REQUIRE(relayer.join(10s));
  CHECK(relayer.exitcode() == 0);
}

TEST_CASE("4 producers and 4 consumers: exact multiset, per-producer order") {
  constexpr int producers = 4, consumers = 4, per_producer = 25000;
  constexpr int total = producers * per_producer;
  actors::queue<int> q{64};
  actors::queue<std::vector<int>> out{actors::unbounded};
  std::vector<actors::process> procs;
  for (int p = 0; p < producers; ++p)
    procs.emplace_back(produce, q, p * per_producer, per_producer);
  for (int c = 0; c < consumers; ++c)
    procs.emplace_back(collect, q, out, total / consumers);
  auto t0 = std::chrono::steady_clock::now();
  for (auto& p : procs)
    p.start();
  std::vector<int> all;
  for (int c = 0; c < consumers; ++c) {
    auto got = out.get(120s);
    // Each consumer saw each producer's items in the order they were put.
    std::vector<int> last(producers, -1);
    for (auto item : got) {
      auto& prev = last[item / per_producer];
      REQUIRE(item > prev);
      prev = item;
    }
    all.insert(all.end(), got.begin(), got.end());
  }
  for (auto& p : procs) {
    REQUIRE(p.join(30s));
    CHECK(p.exitcode() == 0);
  }
  MESSAGE(total << " items through 4 producers and 4 consumers in "
                << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0)
                     .count()
                << " ms");
  std::sort(all.begin(), all.end());
  REQUIRE(all.size() == static_cast<size_t>(total));
  for (int i = 0; i < total; ++i)
    REQUIRE(all[i] == i);
  CHECK(q.empty());
}

TEST_CASE("a 64 MiB item crosses processes intact") {
  actors::queue<std::string> q{actors::unbounded};
  constexpr std::size_t size = 64 << 20;
  actors::process producer{put_big, q, size};
  producer.start();
  auto s = q.get(60s);
  CHECK(s.size() == size);
  CHECK(s.front() == 'a');
  CHECK(s.back() == 'z');
  CHECK(std::count(s.begin(), s.end(), 'x') == static_cast<long>(size - 2));
  REQUIRE(producer.join(10s));
}

// -- what other processes put, and the hub they put it through -----------------

TEST_CASE("what a joined producer put is there at once: qsize, get_nowait") {
  actors::queue<int> q{actors::unbounded};
  actors::process producer{produce, q, 0, 1000};
  producer.start();
  REQUIRE(producer.join(10s));
  // Its puts returned once the kernel held them; nothing has read them yet
  // when join returns, yet they count and can be taken without waiting.
  CHECK(q.qsize() == 1000);
  for (int i = 0; i < 1000; ++i)
    REQUIRE(q.get_nowait() == i);
  CHECK(q.empty());
}

TEST_CASE("puts racing a close: the producer is refused soon, nothing is lost") {
  actors::queue<int> q{actors::unbounded};
  actors::queue<std::vector<int>> report{actors::unbounded};
  actors::process producer{put_until_refused, q, report};
  producer.start();
  for (int i = 0; i < 100; ++i)
    REQUIRE(q.get(10s) == i);
  q.close();
  auto [count, code] = [&] {
    auto r = report.get(10s);
    return std::pair{r.at(0), r.at(1)};
  }();
  CHECK(static_cast<actors::errc>(code) == actors::errc::closed);
  // Every put that returned is in the queue or was taken: after the report
  // (sent after the last put, on the same connection), drain the rest.
  int next = 100;
  for (;;) {
    int got = -1;
    try {
      got = q.get_nowait();
    } catch (const actors::error& e) {
      CHECK(e.code() == actors::errc::closed);
      break;
    }
    REQUIRE(got == next);
    ++next;
  }
  CHECK(next == count);
  MESSAGE(count << " puts returned, " << count - 100
                << " of them were in the queue at its close or landed after");
  REQUIRE(producer.join(10s));
}

namespace {

// A connection to this process's hub, as a stranger would make one.
int connect_to_hub(const std::string& name) {
  auto fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::copy(name.begin(), name.end(), addr.sun_path + 1);
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1
                                    + name.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0)
    return -1;
  return fd;
}

// Whether the hub hangs up on `fd` within `bound` (reading what it sends).
bool hung_up(int fd, std::chrono::milliseconds bound) {
  timeval tv{static_cast<time_t>(bound.count() / 1000),
             static_cast<suseconds_t>(bound.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[256];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return true;
    if (n < 0 && errno != EINTR)
      return false; // timed out: still open
  }
}

} // namespace

TEST_CASE("the hub hangs up on a stranger and serves its queues meanwhile") {
  namespace k = actors::detail::hub_frame;
  actors::queue<int> q{actors::unbounded};
  auto& hub = actors::detail::runtime::get().hub();
  auto dial_hub = [name = hub.address()] {
    auto fd = connect_to_hub(name);
    REQUIRE(fd >= 0);
    return fd;
  };
  // Sends a hello and says whether the hub hung up on it.
  auto hello_refused = [&](std::uint64_t k0, std::uint64_t k1,
                           std::int32_t word) {
    actors::detail::channel ch{dial_hub()};
    REQUIRE_FALSE(ch.put(k::hello, k0, k1, word));
    REQUIRE(ch.flush(true));
    return hung_up(ch.fd(), 2s);
  };
  SUBCASE("a wrong key") {
    CHECK(hello_refused(hub.key0() ^ 1, hub.key1(), -1));
  }
  SUBCASE("the right key but no shared word") {
    // Descriptor 0 (stdin) is not a one-word memfd.
    CHECK(hello_refused(hub.key0(), hub.key1(), 0));
  }
  SUBCASE("an operation before the hello") {
    auto fd = dial_hub();
    actors::detail::channel ch{fd};
    std::uint64_t req = 1;
    std::uint64_t qid = q.ref().actor()->id();
    std::int64_t ns = 0;
    REQUIRE_FALSE(ch.put(k::get, req, qid, ns));
    REQUIRE(ch.flush(true));
    CHECK(hung_up(fd, 2s));
  }
  SUBCASE("garbage") {
    auto fd = dial_hub();
    char junk[64];
    for (std::size_t i = 0; i < sizeof(junk); ++i)
      junk[i] = static_cast<char>(i * 37 + 11);
    REQUIRE(::send(fd, junk, sizeof(junk), MSG_NOSIGNAL) == sizeof(junk));
    CHECK(hung_up(fd, 2s));
    ::close(fd);
  }
  SUBCASE("another user") {
    auto name = hub.address();
    if (::geteuid() != 0) {
      MESSAGE("skipped: only root can become another user here");
      return;
    }
    // The right hello, framed here: after fork, the child only makes
    // system calls (this process has threads).
    int pair[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    std::string hello(256, '\0');
    {
      actors::detail::channel ch{pair[0]};
      std::uint64_t k0 = hub.key0();
      std::uint64_t k1 = hub.key1();
      std::int32_t word = -1;
      REQUIRE_FALSE(ch.put(k::hello, k0, k1, word));
      REQUIRE(ch.flush(true));
    }
    auto size = ::recv(pair[1], hello.data(), hello.size(), 0);
    ::close(pair[1]);
    REQUIRE(size > 0);
    hello.resize(static_cast<std::size_t>(size));
    auto child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // Becomes nobody, then dials with the right key: still refused.
      if (::setgid(65534) != 0 || ::setuid(65534) != 0)
        ::_exit(3);
      auto fd = connect_to_hub(name);
      if (fd < 0)
        ::_exit(5);
      ::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
      ::_exit(hung_up(fd, 2s) ? 0 : 4);
    }
    int status = 0;
    bool ended = support::eventually(
      [&] { return ::waitpid(child, &status, WNOHANG) == child; }, 10s);
    if (!ended) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
    }
    REQUIRE(ended);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  // Meanwhile and after, a real process uses the queue through the hub.
  actors::process producer{produce, q, 0, 10};
  producer.start();
  for (int i = 0; i < 10; ++i)
    CHECK(q.get(10s) == i);
  REQUIRE(producer.join(10s));
}

TEST_CASE("at rest after traffic, the hub uses no CPU") {
  // The hub's thread and a waiting thread spin for at most 50 us before
  // they sleep: with nothing to do, the process must be idle.
  actors::queue<int> q{actors::unbounded};
  actors::process producer{produce, q, 0, 20000};
  producer.start();
  for (int i = 0; i < 20000; ++i)
    REQUIRE(q.get(10s) == i);
  REQUIRE(producer.join(10s));
  auto cpu = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return std::chrono::seconds{u.ru_utime.tv_sec + u.ru_stime.tv_sec}
           + std::chrono::microseconds{u.ru_utime.tv_usec
                                       + u.ru_stime.tv_usec};
  };
  auto before = cpu();
  // A window to measure in, not a synchronization.
  std::this_thread::sleep_for(500ms);
  auto used = cpu() - before;
  MESSAGE("CPU used by the whole process over 500 ms at rest: "
          << std::chrono::duration_cast<std::chrono::microseconds>(used)
               .count()
          << " us");
  CHECK(used < 25ms);
}
