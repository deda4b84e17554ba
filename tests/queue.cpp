// actors::queue within one process and across real OS processes: blocking
// and timeouts, backpressure, close, joinable queues, and no item lost or
// duplicated when producers, consumers or the owner die; the same from
// "another host", through a stream to the hub.

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "actors/all.hpp"
#include "wire/channel.hpp"
#include "queue/queue_hub.hpp"
#include "node/runtime.hpp"
#include "support/error_code.hpp"
#include "support/stream_door.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using actors::detail::queue_access;
using support::code_of;

namespace {

// Waits (bounded) until `pred(stats)` holds for the queue behind `q`.
template <class Q, class Pred>
bool queue_reaches(const Q& q, Pred pred) {
  return support::eventually(
    [&] { return pred(queue_access::ref(q).snapshot()); }, 10s);
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

// Puts "data" into `q` and reports 0, or the code of the put's error.
void put_once_reporting(actors::queue<std::string> q,
                        actors::queue<int> report) {
  try {
    q.put("data");
    report.put(0);
  } catch (const actors::error& e) {
    report.put(e.code().value());
  }
}

// Puts once and reports; waits for `go`, then does the same again.
void put_twice_reporting(actors::queue<std::string> q, actors::queue<int> go,
                         actors::queue<int> report) {
  put_once_reporting(q, report);
  go.get(30s);
  put_once_reporting(q, report);
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
  CHECK(code_of([&] { q.get(-1ms); }) == actors::errc::queue_empty); // zero
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
    // Any call: proves the thread can use the handle.
    queue_access::ref(q).snapshot();
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

TEST_CASE("a queue closed before a producer process existed refuses its "
          "put") {
  for (long maxsize : {actors::unbounded, 4L}) {
    CAPTURE(maxsize);
    actors::queue<std::string> q{maxsize};
    actors::queue<int> report{actors::unbounded};
    q.close();
    actors::process producer{put_once_reporting, q, report};
    producer.start();
    CHECK(static_cast<actors::errc>(report.get(10s)) == actors::errc::closed);
    REQUIRE(producer.join(10s));
    // Nothing landed: drained and closed.
    CHECK(code_of([&] { q.get_nowait(); }) == actors::errc::closed);
  }
}

TEST_CASE("a put that begins after the close returned is refused, also by a "
          "producer that put before") {
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    actors::queue<std::string> q{actors::unbounded};
    actors::queue<int> go{actors::unbounded};
    actors::queue<int> report{actors::unbounded};
    actors::process producer{put_twice_reporting, q, go, report};
    producer.start();
    REQUIRE(report.get(10s) == 0);
    CHECK(q.get(10s) == "data");
    q.close();
    go.put(1); // the producer's second put begins after this
    CHECK(static_cast<actors::errc>(report.get(10s)) == actors::errc::closed);
    REQUIRE(producer.join(10s));
    CHECK(code_of([&] { q.get_nowait(); }) == actors::errc::closed);
  }
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
  auto& hub = actors::detail::queue_hub::local();
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
    std::uint64_t qid = queue_access::ref(q).actor()->id();
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

namespace {

// Whether the hub has hung up on `fd` already (not waiting).
bool hung_up_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0)
    return false;
  char byte;
  auto n = ::recv(fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

std::size_t hung_up_among(const std::vector<int>& fds, std::size_t first,
                          std::size_t last) {
  std::size_t n = 0;
  for (auto i = first; i < last; ++i)
    n += hung_up_now(fds[i]) ? 1 : 0;
  return n;
}

// Raises the soft limit on open files to `needed`; false if the hard limit
// does not allow it.
bool allow_open_files(rlim_t needed) {
  rlimit lim;
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return false;
  if (lim.rlim_cur >= needed)
    return true;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < needed)
    return false;
  lim.rlim_cur = needed;
  return ::setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

std::chrono::nanoseconds cpu_used() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return std::chrono::seconds{u.ru_utime.tv_sec + u.ru_stime.tv_sec}
         + std::chrono::microseconds{u.ru_utime.tv_usec + u.ru_stime.tv_usec};
}

} // namespace

TEST_CASE("the hub drops a local connection that never says hello at its "
          "deadline") {
  using actors::detail::queue_hub;
  actors::queue<int> q{actors::unbounded};
  auto& hub = actors::detail::queue_hub::local();
  auto t0 = std::chrono::steady_clock::now();
  auto fd = connect_to_hub(hub.address());
  REQUIRE(fd >= 0);
  CHECK(hung_up(fd, 10s));
  auto took = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  CHECK(took >= queue_hub::hello_deadline - 100ms);
  CHECK(took < queue_hub::hello_deadline + 2s);
  MESSAGE("silent connection dropped after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took)
               .count()
          << " ms");
}

TEST_CASE("a flood of silent connections: the oldest beyond the bound go at "
          "once, the rest at the deadline, and clients are served "
          "meanwhile") {
  using actors::detail::queue_hub;
  constexpr std::size_t extra = 300;
  constexpr std::size_t flood = queue_hub::max_pending + extra;
  // This process holds both ends of each connection.
  if (!allow_open_files(2 * flood + 256)) {
    MESSAGE("skipped: the hard limit on open files is too low");
    return;
  }
  actors::queue<int> q{actors::unbounded};
  auto& hub = actors::detail::queue_hub::local();
  std::vector<int> fds;
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < flood; ++i) {
    fds.push_back(connect_to_hub(hub.address()));
    REQUIRE(fds.back() >= 0);
  }
  // The oldest beyond the bound are dropped as the newest are accepted.
  CHECK(support::eventually(
    [&] { return hung_up_among(fds, 0, extra) == extra; }, 10s));
  CHECK(hub.pending() <= queue_hub::max_pending);
  auto early = std::chrono::steady_clock::now() - t0;
  if (early < queue_hub::hello_deadline - 500ms)
    CHECK(hung_up_among(fds, extra, flood) == 0); // before their deadline
  else
    MESSAGE("not checked that the newest wait: the flood took "
            << std::chrono::duration_cast<std::chrono::milliseconds>(early)
                 .count()
            << " ms");
  // A client is served while they wait.
  actors::process producer{produce, q, 0, 10};
  producer.start();
  for (int i = 0; i < 10; ++i)
    CHECK(q.get(10s) == i);
  REQUIRE(producer.join(10s));
  // The rest go at their deadline.
  CHECK(support::eventually(
    [&] { return hung_up_among(fds, 0, flood) == flood; }, 10s));
  auto all = std::chrono::steady_clock::now() - t0;
  CHECK(all < queue_hub::hello_deadline + 3s);
  CHECK(hub.pending() == 0);
  for (auto fd : fds)
    ::close(fd);
  MESSAGE(flood << " silent connections all dropped after "
                << std::chrono::duration_cast<std::chrono::milliseconds>(all)
                     .count()
                << " ms");
}

TEST_CASE("out of descriptors with strangers waiting, the hub does not spin "
          "and serves again once it has descriptors") {
  using actors::detail::queue_hub;
  actors::queue<int> q{actors::unbounded};
  auto& hub = actors::detail::queue_hub::local();
  auto name = hub.address();
  rlimit before;
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &before) == 0);
  // A stranger (a forked child: system calls only, this process has
  // threads) connects 64 times once told, and waits to be killed.
  int go[2];
  REQUIRE(::pipe2(go, O_CLOEXEC) == 0);
  auto child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    char byte;
    if (::read(go[0], &byte, 1) != 1)
      ::_exit(3);
    for (int i = 0; i < 64; ++i)
      if (connect_to_hub(name) < 0)
        ::_exit(4);
    for (;;)
      ::pause();
  }
  ::close(go[0]);
  // This process may open only a few more descriptors: the hub accepts a
  // few strangers, then runs out, with more waiting in its backlog.
  auto open_now = [] {
    std::size_t n = 0;
    for (int fd = 0; fd < 4096; ++fd)
      n += ::fcntl(fd, F_GETFD) != -1 ? 1 : 0;
    return n;
  };
  rlimit low = before;
  low.rlim_cur = open_now() + 8;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  REQUIRE(::write(go[1], "g", 1) == 1);
  // The stranger is connected (in the backlog or accepted) once its
  // connections are all made: wait for the hub to have taken some.
  CHECK(support::eventually([&] { return hub.pending() > 0; }, 5s));
  auto cpu0 = cpu_used();
  // A window to measure in, not a synchronization.
  std::this_thread::sleep_for(500ms);
  auto used = cpu_used() - cpu0;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &before) == 0);
  MESSAGE("CPU used by the whole process over 500 ms out of descriptors: "
          << std::chrono::duration_cast<std::chrono::microseconds>(used)
               .count()
          << " us");
  CHECK(used < 50ms);
  // With descriptors again, a producer is served.
  actors::process producer{produce, q, 0, 10};
  producer.start();
  for (int i = 0; i < 10; ++i)
    CHECK(q.get(10s) == i);
  REQUIRE(producer.join(10s));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(go[1]);
  // The stranger's connections are gone with it or at their deadline.
  CHECK(support::eventually([&] { return hub.pending() == 0; }, 10s));
}

TEST_CASE("at rest after traffic, the hub uses no CPU") {
  // The hub's thread and a waiting thread spin for at most 20 us
  // (ACTORS_QUEUE_SPIN_US) before they sleep: with nothing to do, the
  // process must be idle.
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

// -- from another host: a stream to the hub (hub_stream.cpp) -----------------
//
// A child that calls support::use_door is a client of remote hubs: every
// call on a queue of this process goes through its stream (TCP on
// 127.0.0.1, handed to the hub by a support::stream_door).

namespace {

namespace hub_frame = actors::detail::hub_frame;

using stream_clock = std::chrono::steady_clock;

long ms_since(stream_clock::time_point t0) {
  return static_cast<long>(
    std::chrono::duration_cast<std::chrono::milliseconds>(stream_clock::now()
                                                          - t0)
      .count());
}

// Gets `n` items from `in` and puts each into `out`.
template <class T>
void echo_over_stream(int port, actors::queue<T> in, actors::queue<T> out,
                      int n) {
  support::use_door(port);
  for (int i = 0; i < n; ++i)
    out.put(in.get(30s));
}

// Gets a handle over the stream and puts 0 .. n-1 into it.
void put_into_received(int port, actors::queue<actors::queue<int>> handles,
                       int n) {
  support::use_door(port);
  auto q = handles.get(30s);
  for (int i = 0; i < n; ++i)
    q.put(i);
}

void produce_over_stream(int port, actors::queue<int> q, int first,
                         int count) {
  support::use_door(port);
  for (int i = first; i < first + count; ++i)
    q.put(i);
}

// Reports the code and duration of each call that must time out.
void time_out_over_stream(int port, actors::queue<int> full,
                          actors::queue<int> empty,
                          actors::queue<std::vector<long>> report) {
  support::use_door(port);
  std::vector<long> r;
  auto timed = [&](auto fn) {
    auto t0 = stream_clock::now();
    auto code = code_of(fn);
    r.push_back(static_cast<long>(code));
    r.push_back(ms_since(t0));
  };
  timed([&] { full.put(2, 300ms); });
  timed([&] { empty.get(300ms); });
  timed([&] { full.put_nowait(3); });
  timed([&] { empty.get_nowait(); });
  report.put(r);
}

void join_over_stream(int port, actors::joinable_queue<int> q,
                      actors::queue<std::vector<int>> report) {
  support::use_door(port);
  std::vector<int> r;
  r.push_back(q.join(100ms)); // two items unfinished
  r.push_back(q.get(10s));
  q.task_done();
  r.push_back(q.get(10s));
  q.task_done();
  r.push_back(q.join(10s));
  r.push_back(static_cast<int>(code_of([&] { q.task_done(); })));
  report.put(r);
}

void put_once_over_stream(int port, actors::queue<std::string> q,
                          actors::queue<int> report) {
  support::use_door(port);
  put_once_reporting(q, report);
}

// Waits in get until the queue closes, then puts until refused; reports
// both errors and how many puts returned.
void see_close_over_stream(int port, actors::queue<int> q,
                           actors::queue<std::vector<int>> report) {
  support::use_door(port);
  auto get_code = code_of([&] { q.get(30s); });
  actors::errc put_code{};
  int count = 0;
  for (auto t0 = stream_clock::now(); stream_clock::now() - t0 < 10s;
       ++count) {
    put_code = code_of([&] { q.put(count); });
    if (put_code != actors::errc{})
      break;
  }
  report.put(
    {static_cast<int>(get_code), static_cast<int>(put_code), count});
}

void consume_forever_over_stream(int port, actors::queue<int> q) {
  support::use_door(port);
  for (;;)
    q.get();
}

void get_then_die_over_stream(int port, actors::queue<int> q) {
  support::use_door(port);
  q.get(30s);
  ::raise(SIGKILL);
}

// A stream client of its own: asks for an item, and dies by SIGKILL the
// moment the item has arrived, before it acknowledges it.
void take_and_die(int port, actors::queue<int> q) {
  auto fd = support::dial(port);
  if (fd < 0)
    ::_exit(3);
  actors::detail::channel ch{fd};
  std::uint64_t req = 1;
  std::uint64_t qid = queue_access::ref(q).actor()->id();
  std::int64_t ns = -1;
  if (ch.put(hub_frame::get, req, qid, ns) || !ch.flush(true))
    ::_exit(4);
  for (;;) {
    if (!ch.fill(true))
      ::_exit(5);
    while (auto f = ch.next())
      if (f->kind == hub_frame::item)
        ::raise(SIGKILL);
  }
}

// Waits in a get on each queue in turn; reports "code ms what" for each.
void wait_until_cut(int port, actors::queue<int> first,
                    actors::queue<int> second,
                    actors::queue<std::string> report) {
  support::use_door(port);
  for (auto* q : {&first, &second}) {
    auto t0 = stream_clock::now();
    actors::errc code{};
    std::string what;
    try {
      if (q == &first)
        q->get();
      else
        q->get(60s);
    } catch (const actors::error& e) {
      code = static_cast<actors::errc>(e.code().value());
      what = e.what();
    }
    report.put(std::to_string(static_cast<int>(code)) + " "
               + std::to_string(ms_since(t0)) + " " + what);
  }
}

// The connector refuses (mode 0) or says the owner is on this host (1).
void connector_decides(actors::queue<int> q, int mode) {
  if (mode == 0) {
    actors::detail::set_remote_hub([](const caf::node_id&) -> int {
      throw actors::error(actors::errc::owner_unreachable,
                          "the queue's owner is on another host and not "
                          "the pool's owner");
    });
    try {
      q.put(1);
    } catch (const actors::error& e) {
      if (e.code() == actors::errc::owner_unreachable
          && std::string{e.what()}.find("pool's owner") != std::string::npos)
        return;
      throw;
    }
    throw std::runtime_error("the connector's refusal did not reach put");
  }
  actors::detail::set_remote_hub([](const caf::node_id&) { return -1; });
  q.put(1);
}

std::string pattern(std::size_t size, int seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

} // namespace

TEST_CASE("over a stream: items of several types and sizes, both ways") {
  support::stream_door door;
  actors::queue<int> ints_in{actors::unbounded};
  actors::queue<int> ints_out{actors::unbounded};
  // Bounded: every put answered, and backpressure across the stream.
  actors::queue<std::string> strs_in{2};
  actors::queue<std::string> strs_out{2};
  actors::queue<std::vector<char>> bytes_in{actors::unbounded};
  actors::queue<std::vector<char>> bytes_out{1};
  actors::queue<actors::queue<int>> handles{actors::unbounded};
  actors::queue<int> sink{actors::unbounded};
  const std::vector<std::size_t> sizes{0,         1,          100,  65536,
                                       300 << 10, (3 << 20) + 7, 17};
  constexpr int ints = 2000;
  auto port = door.port();
  std::vector<actors::process> children;
  children.emplace_back(echo_over_stream<int>, port, ints_in, ints_out,
                        ints);
  children.emplace_back(echo_over_stream<std::string>, port, strs_in,
                        strs_out, static_cast<int>(sizes.size()));
  children.emplace_back(echo_over_stream<std::vector<char>>, port, bytes_in,
                        bytes_out, 2);
  children.emplace_back(put_into_received, port, handles, 10);
  for (auto& c : children)
    c.start();
  handles.put(sink);
  auto big = pattern(8 << 20, 1);
  auto odd = pattern((256 << 10) + 1, 2);
  bytes_in.put({odd.begin(), odd.end()});
  bytes_in.put({big.begin(), big.end()});
  for (int i = 0; i < ints; ++i)
    ints_in.put(i);
  std::thread feeder{[&] {
    for (std::size_t i = 0; i < sizes.size(); ++i)
      strs_in.put(pattern(sizes[i], static_cast<int>(i)), 30s);
  }};
  for (std::size_t i = 0; i < sizes.size(); ++i)
    CHECK(strs_out.get(30s) == pattern(sizes[i], static_cast<int>(i)));
  feeder.join();
  for (int i = 0; i < ints; ++i)
    REQUIRE(ints_out.get(30s) == i);
  CHECK(bytes_out.get(30s) == std::vector<char>(odd.begin(), odd.end()));
  CHECK(bytes_out.get(30s) == std::vector<char>(big.begin(), big.end()));
  for (int i = 0; i < 10; ++i)
    CHECK(sink.get(30s) == i);
  for (auto& c : children) {
    REQUIRE(c.join(30s));
    CHECK(c.exitcode() == 0);
  }
  // Each child used a stream: none reached the hub the local way.
  CHECK(door.accepted() >= 4);
  for (auto* q : {&ints_in, &ints_out, &sink})
    CHECK(q->empty());
}

TEST_CASE("over a stream: put on a full queue and get on an empty one time "
          "out") {
  support::stream_door door;
  actors::queue<int> full{1};
  actors::queue<int> empty{actors::unbounded};
  actors::queue<std::vector<long>> report{actors::unbounded};
  full.put(1);
  actors::process child{time_out_over_stream, door.port(), full, empty,
                        report};
  child.start();
  auto r = report.get(30s);
  REQUIRE(r.size() == 8);
  auto code = [&](int i) { return static_cast<actors::errc>(r[2 * i]); };
  auto ms = [&](int i) { return r[2 * i + 1]; };
  CHECK(code(0) == actors::errc::queue_full);
  CHECK(code(1) == actors::errc::queue_empty);
  CHECK(code(2) == actors::errc::queue_full);
  CHECK(code(3) == actors::errc::queue_empty);
  for (int i : {0, 1}) {
    CHECK(ms(i) >= 300);
    CHECK(ms(i) < 3000);
  }
  for (int i : {2, 3})
    CHECK(ms(i) < 2000);
  // The puts that timed out never land.
  CHECK(full.get_nowait() == 1);
  CHECK(full.empty());
  REQUIRE(child.join(10s));
  CHECK(child.exitcode() == 0);
  CHECK(door.accepted() >= 1);
}

TEST_CASE("over a stream: join and task_done") {
  support::stream_door door;
  actors::joinable_queue<int> q{actors::unbounded};
  actors::queue<std::vector<int>> report{actors::unbounded};
  q.put(1);
  q.put(2);
  actors::process child{join_over_stream, door.port(), q, report};
  child.start();
  CHECK(q.join(30s)); // returns on the child's task_done calls
  auto r = report.get(30s);
  CHECK(r == std::vector<int>{0, 1, 2, 1,
                              static_cast<int>(
                                actors::errc::too_many_task_done)});
  REQUIRE(child.join(10s));
  CHECK(child.exitcode() == 0);
}

TEST_CASE("over a stream: a queue closed before the producer existed "
          "refuses its put") {
  support::stream_door door;
  actors::queue<std::string> q{actors::unbounded};
  actors::queue<int> report{actors::unbounded};
  q.close();
  actors::process child{put_once_over_stream, door.port(), q, report};
  child.start();
  CHECK(static_cast<actors::errc>(report.get(30s)) == actors::errc::closed);
  REQUIRE(child.join(10s));
  CHECK(code_of([&] { q.get_nowait(); }) == actors::errc::closed);
}

TEST_CASE("over a stream: close is seen by a waiting get and by puts") {
  support::stream_door door;
  actors::queue<int> q{actors::unbounded};
  actors::queue<std::vector<int>> report{actors::unbounded};
  actors::process child{see_close_over_stream, door.port(), q, report};
  child.start();
  REQUIRE(queue_reaches(q, [](auto s) { return s.getters == 1; }));
  q.close();
  auto r = report.get(30s);
  REQUIRE(r.size() == 3);
  CHECK(static_cast<actors::errc>(r[0]) == actors::errc::closed);
  CHECK(static_cast<actors::errc>(r[1]) == actors::errc::closed);
  // Every put that returned is there, in order (sent before the report).
  for (int i = 0; i < r[2]; ++i)
    REQUIRE(q.get_nowait() == i);
  CHECK(code_of([&] { q.get_nowait(); }) == actors::errc::closed);
  MESSAGE(r[2] << " puts over the stream returned after the close");
  REQUIRE(child.join(10s));
  CHECK(child.exitcode() == 0);
}

TEST_CASE("over a stream: a getter killed while it waits or before it "
          "acknowledges takes nothing with it") {
  support::stream_door door;
  auto port = door.port();
  SUBCASE("killed while waiting") {
    actors::queue<int> q{actors::unbounded};
    actors::process consumer{consume_forever_over_stream, port, q};
    consumer.start();
    REQUIRE(queue_reaches(q, [](auto s) { return s.getters == 1; }));
    consumer.kill();
    REQUIRE(consumer.join(10s));
    // If the hub has not seen the end yet, the item goes to the dead
    // getter's stream and comes back when it does.
    q.put(7);
    CHECK(q.get(10s) == 7);
  }
  SUBCASE("killed once the item arrived, before it said so") {
    actors::queue<int> q{actors::unbounded};
    for (int i = 100; i < 105; ++i)
      q.put(i);
    for (int round = 0; round < 3; ++round) {
      actors::process taker{take_and_die, port, q};
      taker.start();
      REQUIRE(taker.join(10s));
      // Died of its own SIGKILL: only after an item had arrived.
      REQUIRE(taker.exitcode() == -SIGKILL);
      // The item comes back to the front once the hub sees the end.
      REQUIRE(queue_reaches(q, [](auto s) { return s.size == 5; }));
    }
    std::vector<int> all;
    while (auto x = q.try_get())
      all.push_back(*x);
    CHECK(all == std::vector<int>{100, 101, 102, 103, 104});
  }
  SUBCASE("killed right after get returned: the item is gone with it") {
    actors::queue<int> q{actors::unbounded};
    q.put(200);
    q.put(201);
    actors::process taker{get_then_die_over_stream, port, q};
    taker.start();
    REQUIRE(taker.join(10s));
    REQUIRE(taker.exitcode() == -SIGKILL);
    // It said `taken` before get returned: not handed out again.
    CHECK(q.get(10s) == 201);
    CHECK_FALSE(q.try_get(300ms).has_value());
  }
  CHECK(door.accepted() >= 1);
}

TEST_CASE("over a stream: a call waiting on a stream that is cut fails with "
          "owner_unreachable") {
  support::stream_door door{/*keep=*/true};
  actors::queue<int> first{actors::unbounded};
  actors::queue<int> second{actors::unbounded};
  actors::queue<std::string> report{actors::unbounded};
  actors::process child{wait_until_cut, door.port(), first, second, report};
  child.start();
  for (auto* q : {&first, &second}) {
    // A get without a timeout, then one with: each fails at the cut.
    REQUIRE(queue_reaches(*q, [](auto s) { return s.getters == 1; }));
    door.cut();
    std::istringstream line{report.get(30s)};
    int code = 0;
    long ms = 0;
    std::string what;
    line >> code >> ms;
    std::getline(line, what);
    CHECK(static_cast<actors::errc>(code) == actors::errc::owner_unreachable);
    CHECK(ms < 5000);
    CHECK(what.find("stream") != std::string::npos);
    MESSAGE("after the cut:" << what);
  }
  REQUIRE(child.join(10s));
  CHECK(child.exitcode() == 0);
  // The hub forgot both getters: an item goes to whoever asks here.
  for (auto* q : {&first, &second})
    REQUIRE(queue_reaches(*q, [](auto s) { return s.getters == 0; }));
  first.put(5);
  CHECK(first.get(5s) == 5);
}

namespace {

// The kind of the next frame `ch` receives within 2 s, if any.
std::optional<std::uint8_t> next_kind(actors::detail::channel& ch) {
  timeval tv{2, 0};
  ::setsockopt(ch.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  for (;;) {
    if (auto f = ch.next())
      return f->kind;
    if (!ch.fill(true))
      return std::nullopt;
  }
}

} // namespace

TEST_CASE("over a stream: the hub drops a stream that sends garbage and "
          "keeps serving") {
  support::stream_door door;
  actors::queue<int> q{actors::unbounded};
  auto dial_door = [&] {
    auto fd = support::dial(door.port());
    REQUIRE(fd >= 0);
    return fd;
  };
  std::uint64_t req = 1;
  std::uint64_t qid = queue_access::ref(q).actor()->id();
  SUBCASE("an unknown kind") {
    auto fd = dial_door();
    char frame[9] = {4, 0, 0, 0, 99, 1, 2, 3, 4};
    REQUIRE(::send(fd, frame, sizeof(frame), MSG_NOSIGNAL) == 9);
    CHECK(hung_up(fd, 2s));
    ::close(fd);
  }
  SUBCASE("a request cut short") {
    actors::detail::channel ch{dial_door()};
    REQUIRE_FALSE(ch.put(hub_frame::get, req, qid)); // no deadline
    REQUIRE(ch.flush(true));
    CHECK(hung_up(ch.fd(), 2s));
  }
  SUBCASE("a local client's hello") {
    actors::detail::channel ch{dial_door()};
    auto& hub = actors::detail::queue_hub::local();
    std::uint64_t k0 = hub.key0();
    std::uint64_t k1 = hub.key1();
    std::int32_t area = -1;
    REQUIRE_FALSE(ch.put(hub_frame::hello, k0, k1, area));
    REQUIRE(ch.flush(true));
    CHECK(hung_up(ch.fd(), 2s));
  }
  SUBCASE("a node named after the first frame") {
    actors::detail::channel ch{dial_door()};
    // The framing is right: a sync is answered.
    REQUIRE_FALSE(ch.put(hub_frame::sync, req));
    REQUIRE(ch.flush(true));
    CHECK(next_kind(ch) == hub_frame::ok);
    auto node = actors::detail::runtime::get().system().node();
    REQUIRE_FALSE(ch.put(hub_frame::peer, req, node));
    REQUIRE(ch.flush(true));
    CHECK(hung_up(ch.fd(), 2s));
  }
  SUBCASE("noise announcing a huge frame, then the end") {
    auto fd = dial_door();
    char junk[64];
    for (std::size_t i = 0; i < sizeof(junk); ++i)
      junk[i] = static_cast<char>(i * 37 + 11);
    REQUIRE(::send(fd, junk, sizeof(junk), MSG_NOSIGNAL) == sizeof(junk));
    ::close(fd);
  }
  // Meanwhile and after, a child uses the queue over a stream.
  actors::process producer{produce_over_stream, door.port(), q, 0, 100};
  producer.start();
  for (int i = 0; i < 100; ++i)
    REQUIRE(q.get(10s) == i);
  REQUIRE(producer.join(10s));
  CHECK(producer.exitcode() == 0);
}

TEST_CASE("over a stream: the connector's refusal is the call's error, and "
          "-1 means the local way") {
  actors::queue<int> q{actors::unbounded};
  actors::process refused{connector_decides, q, 0};
  refused.start();
  REQUIRE(refused.join(10s));
  CHECK(refused.exitcode() == 0);
  CHECK(q.empty());
  actors::process local{connector_decides, q, 1};
  local.start();
  CHECK(q.get(10s) == 1);
  REQUIRE(local.join(10s));
  CHECK(local.exitcode() == 0);
}

TEST_CASE("over a stream: when_drained waits for the streams that named a "
          "node, and for no pid of another host") {
  namespace d = actors::detail;
  support::stream_door door;
  auto& hub = d::queue_hub::local();
  // A child of this host waits in get: its local connection stays open.
  actors::queue<int> hold{actors::unbounded};
  actors::process local{consume_forever, hold};
  local.start();
  REQUIRE(queue_reaches(hold, [](auto s) { return s.getters == 1; }));
  // A node of another host whose process has that child's pid.
  caf::node_id::default_data::host_id_type elsewhere;
  elsewhere.fill(0x5a);
  auto remote = caf::make_node_id(static_cast<std::uint32_t>(*local.pid()),
                                  elsewhere);
  std::atomic<bool> first{false};
  hub.when_drained(remote, [&] { first = true; });
  CHECK(support::eventually([&] { return first.load(); }, 10s));
  // A stream that names that node: its end comes after what it sent.
  actors::queue<int> q{actors::unbounded};
  d::channel ch{support::dial(door.port())};
  REQUIRE(ch.fd() >= 0);
  std::uint64_t req = 1;
  REQUIRE_FALSE(ch.put(hub_frame::peer, req, remote));
  REQUIRE(ch.flush(true));
  REQUIRE(next_kind(ch) == hub_frame::ok); // the name was read
  std::uint64_t qid = queue_access::ref(q).actor()->id();
  std::atomic<long> landed{-1};
  hub.when_drained(remote, [&] {
    landed = static_cast<long>(hub.find(qid)->snapshot().size);
  });
  // An absence, so a bounded look: the stream is open.
  CHECK_FALSE(
    support::eventually([&] { return landed.load() >= 0; }, 300ms));
  for (int i = 0; i < 1000; ++i) {
    auto item = d::value::make(i);
    REQUIRE_FALSE(ch.put(hub_frame::put_buffered, qid, item));
  }
  REQUIRE(ch.flush(true));
  ch.shutdown_write();
  REQUIRE(support::eventually([&] { return landed.load() >= 0; }, 10s));
  // Everything it sent had landed when its end was reported.
  CHECK(landed.load() == 1000);
  local.kill();
  REQUIRE(local.join(10s));
}
