// Locks passed to tasks on other hosts (issue 8): a worker host on loopback
// (this test binary started with --actors-worker) uses locks made by the
// pool's process through its lock server, as a local worker would use them
// directly.
//
// On loopback a remote worker could map the lock's memory itself; what
// makes these tests exercise the server is the routing rule (a worker of
// another host asks the pool's host), checked through the server's
// statistics. Each fixture parks the pool's one local worker on a lock the
// test holds, so that every other task runs on the worker host.

#include <doctest/doctest.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/all.hpp"
#include "lock/lock_server.hpp"
#include "node/runtime.hpp"
#include "support/error_code.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using actors::detail::lock_server_await;
using actors::detail::lock_server_stats;
using actors::detail::lock_server_statistics;
using support::code_of;

namespace {

using clock_type = std::chrono::steady_clock;

bool remote() {
  return actors::detail::runtime::owner_elsewhere() != nullptr;
}

// -- signals from tasks: lines written to a FIFO the test reads --------------

void say(const std::string& fifo, const std::string& text) {
  auto fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  auto line = text + "\n"; // short: one atomic write
  [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
  ::close(fd);
}

class signals {
public:
  signals() {
    static int made = 0;
    path_ = "/tmp/actors-mhl-" + std::to_string(::getpid()) + "-"
            + std::to_string(++made);
    ::unlink(path_.c_str());
    REQUIRE(::mkfifo(path_.c_str(), 0600) == 0);
    read_ = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    // A writer of our own, so that writers coming and going is no end.
    keep_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(read_ >= 0);
    REQUIRE(keep_ >= 0);
  }
  ~signals() {
    ::close(read_);
    ::close(keep_);
    ::unlink(path_.c_str());
  }
  signals(const signals&) = delete;
  signals& operator=(const signals&) = delete;

  const std::string& path() const {
    return path_;
  }

  // The next line, or nothing within `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    auto until = clock_type::now() + timeout;
    for (;;) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        auto line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - clock_type::now());
      if (left.count() <= 0)
        return std::nullopt;
      pollfd p{read_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count()) + 1) <= 0)
        continue;
      char buf[256];
      auto n = ::read(read_, buf, sizeof(buf));
      if (n > 0)
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
  }

private:
  std::string path_;
  int read_ = -1;
  int keep_ = -1;
  std::string buffer_;
};

// -- tasks --------------------------------------------------------------------

// Keeps its worker busy until the test releases `gate` (the local worker)
// or `gate_remote` (one of the worker host); says where it ran.
int park(actors::lock gate, actors::lock gate_remote, std::string fifo,
         int index) {
  auto here = !remote();
  say(fifo, (here ? "local " : "remote ") + std::to_string(index));
  auto& g = here ? gate : gate_remote;
  g.lock();
  g.unlock();
  return here ? 1 : 0;
}

// How acquire(timeout) went (0 no, 1 yes, 2 previous owner died), how long
// it took (ms), and whether it ran on the worker host; releases what it got.
std::vector<long> try_for(actors::lock l, int ms) {
  auto t0 = clock_type::now();
  auto got = l.acquire(std::chrono::milliseconds{ms});
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                clock_type::now() - t0)
                .count();
  if (got != actors::lock::acquired::no)
    l.unlock();
  return {static_cast<long>(got), static_cast<long>(took), remote() ? 1 : 0};
}

// Says "waiting", waits for the lock without a timeout, says "got",
// releases it.
int lock_and_say(actors::lock l, std::string fifo) {
  say(fifo, "waiting");
  l.lock();
  say(fifo, "got");
  l.unlock();
  return 1;
}

// Adds 1 to the number in `path`, `n` times, by a read-modify-write that
// only the lock makes exact.
void add_one(const std::string& path) {
  auto fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  char buf[32] = {};
  auto n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  long value = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
  sched_yield(); // widen the window a missing exclusion would show in
  auto text = std::to_string(value + 1);
  [[maybe_unused]] auto w = ::pwrite(fd, text.data(), text.size(), 0);
  ::close(fd);
}

int count_under_lock(actors::lock l, std::string path, int n) {
  for (int i = 0; i < n; ++i) {
    std::lock_guard<actors::lock> guard{l};
    add_one(path);
  }
  return remote() ? 1 : 0;
}

int count_under_rlock(actors::rlock r, std::string path, int n) {
  for (int i = 0; i < n; ++i) {
    std::lock_guard<actors::rlock> outer{r};
    std::lock_guard<actors::rlock> inner{r};
    add_one(path);
  }
  return remote() ? 1 : 0;
}

template <class F>
int code(F fn) {
  try {
    fn();
    return 0;
  } catch (const actors::error& e) {
    return e.code().value();
  }
}

int as_int(actors::errc c) {
  return static_cast<int>(c);
}

// Misuse of a lock, and an rlock taken three times: held until `go` can be
// taken (the test says "held" by releasing it), then released; the codes
// of each step.
std::vector<int> misuse_and_recursion(actors::lock l, actors::rlock r,
                                      actors::lock go, std::string fifo) {
  std::vector<int> out;
  out.push_back(code([&] { l.unlock(); }));          // not_owner
  out.push_back(code([&] { l.lock(); }));            // 0
  out.push_back(code([&] { l.lock(); }));            // would_deadlock
  // Asking again without waiting forever: false, at once (-1: true).
  auto t0 = clock_type::now();
  out.push_back(code([&] { out.push_back(l.try_lock() ? -1 : 0); }));
  out.push_back(code([&] { out.push_back(l.try_lock_for(5s) ? -1 : 0); }));
  out.push_back(code([&] {
    out.push_back(l.acquire(0s) == actors::lock::acquired::no ? 0 : -1);
  }));
  out.push_back(clock_type::now() - t0 < 2s ? 0 : -1);
  out.push_back(code([&] { l.unlock(); }));          // 0
  out.push_back(code([&] { l.unlock(); }));          // not_owner
  r.lock();
  out.push_back(r.try_lock() ? 1 : 0);                      // 1
  out.push_back( // 1 (a timeout of ages: as good as none)
    r.acquire(actors::rlock::duration::max()) == actors::rlock::acquired::yes
      ? 1
      : 0);
  say(fifo, "held");
  go.lock();
  go.unlock();
  for (int i = 0; i < 3; ++i)
    out.push_back(code([&] { r.unlock(); })); // 0 0 0
  out.push_back(code([&] { r.unlock(); }));   // not_owner
  out.push_back(remote() ? 1 : 0);
  return out;
}

// Takes a lock and an rlock (twice), says "held", and waits to be killed.
int hold_forever(actors::lock l, actors::rlock r, std::string fifo) {
  l.lock();
  r.lock();
  r.lock();
  say(fifo, "held");
  for (;;)
    ::pause();
}

// A thread of the task takes the lock and ends holding it.
int thread_ends_holding(actors::lock l) {
  std::thread t{[l]() mutable { l.lock(); }};
  t.join();
  return remote() ? 1 : 0;
}

// Takes `held`, then waits for `l`; the code and text of what failed.
std::pair<int, std::string> wait_for_lock(actors::lock held, actors::lock l,
                                          std::string fifo) {
  held.lock();
  say(fifo, "waiting");
  try {
    l.lock();
    l.unlock();
    return {0, ""};
  } catch (const actors::error& e) {
    return {e.code().value(), e.what()};
  }
}

// Holds `l`, then forks: the copy must not speak on this thread's
// connection (there it would be the holder, and release the lock), it gets
// one of its own (so it does not hold the lock); then this thread's
// connection still works. The copy's exit code: 0 not_owner, 1 released,
// 3 other.
std::vector<int> fork_while_holding(actors::lock l) {
  l.lock();
  std::fflush(nullptr);
  auto pid = ::fork();
  if (pid == 0) {
    int rc = 3;
    try {
      l.unlock();
      rc = 1;
    } catch (const actors::error& e) {
      rc = e.code() == actors::errc::not_owner ? 0 : 3;
    }
    ::_exit(rc);
  }
  int status = -1;
  ::waitpid(pid, &status, 0);
  std::vector<int> out{WIFEXITED(status) ? WEXITSTATUS(status) : -1};
  out.push_back(code([&] { l.unlock(); }));
  out.push_back(remote() ? 1 : 0);
  return out;
}

// A lock of its own stays here: made, taken, released; then one made by a
// process that has ended is reachable from nowhere.
std::vector<int> own_and_unreachable(actors::lock gone) {
  auto mine = actors::make_lock();
  std::vector<int> out;
  out.push_back(code([&] { mine.lock(); }));
  out.push_back(code([&] { mine.unlock(); }));
  out.push_back(code([&] { gone.try_lock(); }));
  return out;
}

// Makes a lock, hands it over, ends.
void makes_lock(actors::queue<actors::lock> out) {
  out.put(actors::make_lock());
}

// -- the fixture --------------------------------------------------------------

std::string self_exe() {
  char buf[4096] = {};
  auto n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

// A pool on loopback with one local worker, parked, and a worker host of
// `processes` worker processes that runs every task.
struct remote_pool {
  std::string key;
  actors::lock gate = actors::make_lock();
  signals said;
  std::unique_ptr<actors::pool> pool;
  std::optional<support::subprocess> host;
  std::optional<actors::async_result<int>> parked;

  explicit remote_pool(int processes) {
    static int made = 0;
    key = "/tmp/actors-mhl-key-" + std::to_string(::getpid()) + "-"
          + std::to_string(++made);
    ::unlink(key.c_str());
    gate.lock();
    actors::pool_options opts;
    opts.listen = "127.0.0.1:0";
    opts.key_file = key;
    opts.retries = 0;        // a task lost with its host fails, not reruns
    opts.task_timeout = 1h;  // and each worker takes one task at a time
    opts.lost_after = 2s;
    pool = std::make_unique<actors::pool>(1, opts);
    host.emplace(self_exe(),
                 std::vector<std::string>{
                   "--actors-worker", "127.0.0.1:" + std::to_string(pool->port()),
                   "--actors-key-file", key, "--actors-processes",
                   std::to_string(processes)},
                 true);
    REQUIRE(pool->wait_for_remote_workers(static_cast<std::size_t>(processes),
                                          20s));
    // One task per worker (the task timeout makes each take one at a
    // time), all parked: the local worker's stays, the others go. Given
    // one by one: given at once, a task can wait for a busy worker while
    // another is idle (the pool rings a worker it rang already).
    auto gate_remote = actors::make_lock();
    gate_remote.lock();
    std::vector<actors::async_result<int>> tasks;
    constexpr auto none = static_cast<std::size_t>(-1);
    auto local = none;
    for (int i = 0; i <= processes; ++i) {
      tasks.push_back(
        pool->apply_async(park, gate, gate_remote, said.path(), i));
      auto where = said.next(20s);
      INFO("parked so far: " << i << " of " << processes + 1);
      REQUIRE(where);
      if (*where == "local " + std::to_string(i)) {
        REQUIRE(local == none);
        local = static_cast<std::size_t>(i);
      } else {
        REQUIRE(*where == "remote " + std::to_string(i));
      }
    }
    REQUIRE(local != none);
    parked = tasks[local];
    gate_remote.unlock();
    for (std::size_t i = 0; i < tasks.size(); ++i)
      if (i != local)
        REQUIRE(tasks[i].get(20s) == 0);
  }

  // Lets the local worker go, and ends the pool and (unless it was killed)
  // the host.
  void finish(bool host_killed = false) {
    gate.unlock();
    CHECK(parked->get(20s) == 1);
    pool->close();
    pool->join();
    auto code = host->wait(20s);
    if (host_killed)
      CHECK(code == -SIGKILL);
    else
      CHECK(code == 0);
  }

  ~remote_pool() {
    pool.reset(); // terminates a pool not joined
    ::unlink(key.c_str());
  }
};

bool idle_server(const lock_server_stats& s) {
  return s.active == 0 && s.waiting == 0;
}

} // namespace

TEST_CASE("a remote task waits for a lock the owner holds, times out, and "
          "gets it once released") {
  remote_pool rp{1};
  auto& p = *rp.pool;
  auto before = lock_server_statistics();
  auto l = actors::make_lock();
  l.lock();
  // Held here: a try and a bounded wait on the other host give up on time.
  auto tried = p.apply_async(try_for, l, 0).get(20s);
  CHECK(tried[0] == 0);
  CHECK(tried[2] == 1);
  auto waited = p.apply_async(try_for, l, 300).get(20s);
  CHECK(waited[0] == 0);
  CHECK(waited[1] >= 300);
  CHECK(waited[1] < 300 + 3000);
  // An unbounded wait there ends when it is released here.
  auto r = p.apply_async(lock_and_say, l, rp.said.path());
  CHECK(rp.said.next(20s) == std::optional<std::string>{"waiting"});
  REQUIRE(lock_server_await([](auto& s) { return s.waiting == 1; }, 20s));
  CHECK_FALSE(rp.said.next(300ms)); // still waiting
  l.unlock();
  CHECK(rp.said.next(20s) == std::optional<std::string>{"got"});
  CHECK(r.get(20s) == 1);
  // Free: taken there at once, and released, so free here too.
  auto got = p.apply_async(try_for, l, 5000).get(20s);
  CHECK(got[0] == 1);
  CHECK(got[1] < 3000);
  CHECK(l.try_lock());
  l.unlock();
  // All of it went through the lock server of this process.
  auto after = lock_server_statistics();
  MESSAGE("lock server: " << after.connections << " connections, "
                          << after.requests - before.requests
                          << " requests of the test");
  CHECK(after.connections >= 1);
  CHECK(after.requests - before.requests >= 6);
  rp.finish();
  CHECK(lock_server_await(idle_server, 10s));
}

namespace {

// `count(handle, path, n)` in 2 tasks on the worker host and 2 threads here
// at once; the number the file ends with.
template <class Handle>
long contend(actors::pool& p, Handle h,
             int (*count)(Handle, std::string, int), int n) {
  char path[] = "/tmp/actors-mhl-count-XXXXXX";
  ::close(::mkstemp(path));
  std::vector<actors::async_result<int>> tasks;
  for (int i = 0; i < 2; ++i)
    tasks.push_back(p.apply_async(count, h, std::string{path}, n));
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([=] { count(h, path, n); });
  for (auto& t : threads)
    t.join();
  for (auto& t : tasks)
    CHECK(t.get(30s) == 1);
  long total = -1;
  std::FILE* f = std::fopen(path, "r");
  REQUIRE(std::fscanf(f, "%ld", &total) == 1);
  std::fclose(f);
  ::unlink(path);
  return total;
}

} // namespace

TEST_CASE("owner threads and remote tasks contending: a read-modify-write "
          "guarded by a lock or an rlock is exact") {
  remote_pool rp{2};
  auto& p = *rp.pool;
  constexpr int n = 200;
  auto before = lock_server_statistics();
  CHECK(contend(p, actors::make_lock(), count_under_lock, n) == 4 * n);
  auto between = lock_server_statistics();
  // The rlock's holders take it twice per round.
  CHECK(contend(p, actors::make_rlock(), count_under_rlock, n) == 4 * n);
  auto after = lock_server_statistics();
  // Each remote round: an acquire and a release (the rlock: two of each).
  CHECK(between.requests - before.requests >= 2 * 2 * n);
  CHECK(after.requests - between.requests >= 2 * 4 * n);
  rp.finish();
}

TEST_CASE("remotely: an rlock is re-entrant and exclusive, and misuse is typed "
          "(not_owner, would_deadlock)") {
  remote_pool rp{1};
  auto& p = *rp.pool;
  auto l = actors::make_lock();
  auto r = actors::make_rlock();
  auto go = actors::make_lock();
  go.lock();
  auto task = p.apply_async(misuse_and_recursion, l, r, go, rp.said.path());
  REQUIRE(rp.said.next(20s) == std::optional<std::string>{"held"});
  // Held three times over there: not here, not even after a while.
  CHECK_FALSE(r.try_lock());
  CHECK(r.acquire(200ms) == actors::rlock::acquired::no);
  CHECK(l.try_lock()); // the lock was released there
  l.unlock();
  go.unlock();
  auto out = task.get(20s);
  std::vector<int> expected{as_int(actors::errc::not_owner),
                            0,
                            as_int(actors::errc::would_deadlock),
                            0, // try_lock: false
                            0,
                            0, // try_lock_for: false
                            0,
                            0, // acquire(0s): no
                            0,
                            0, // at once
                            0,
                            as_int(actors::errc::not_owner),
                            1,
                            1,
                            0,
                            0,
                            0,
                            as_int(actors::errc::not_owner),
                            1};
  CHECK(out == expected);
  // Released entirely there.
  CHECK(r.acquire(5s) == actors::rlock::acquired::yes);
  r.unlock();
  rp.finish();
}

TEST_CASE("the remote holder's host killed: the owner's next acquire is told "
          "previous_owner_died") {
  remote_pool rp{1};
  auto& p = *rp.pool;
  auto l = actors::make_lock();
  auto r = actors::make_rlock();
  auto task = p.apply_async(hold_forever, l, r, rp.said.path());
  REQUIRE(rp.said.next(20s) == std::optional<std::string>{"held"});
  CHECK_FALSE(l.try_lock());
  CHECK_FALSE(r.try_lock());
  auto t0 = clock_type::now();
  rp.host->kill(SIGKILL);
  CHECK(l.acquire(10s) == actors::lock::acquired::previous_owner_died);
  CHECK(r.acquire(10s) == actors::rlock::acquired::previous_owner_died);
  auto took = clock_type::now() - t0;
  MESSAGE("told after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
          << " ms");
  CHECK(took < 5s);
  // Taken over whole: the rlock's two acquisitions went with their holder.
  l.unlock();
  r.unlock();
  std::thread other{[l, r]() mutable {
    CHECK(l.acquire(1s) == actors::lock::acquired::yes);
    CHECK(r.acquire(1s) == actors::rlock::acquired::yes);
    l.unlock();
    r.unlock();
  }};
  other.join();
  CHECK(code_of([&] { task.get(20s); }) == actors::errc::worker_lost);
  CHECK(lock_server_await(idle_server, 10s));
  rp.finish(true);
}

TEST_CASE("a remote thread that ends holding a lock: the next acquirer is "
          "told, as for a local thread") {
  remote_pool rp{1};
  auto& p = *rp.pool;
  auto l = actors::make_lock();
  CHECK(p.apply_async(thread_ends_holding, l).get(20s) == 1);
  CHECK(l.acquire(10s) == actors::lock::acquired::previous_owner_died);
  l.unlock();
  CHECK(l.acquire(1s) == actors::lock::acquired::yes);
  l.unlock();
  rp.finish();
}

TEST_CASE("a remote waiter whose host dies stops waiting and does not take "
          "the lock") {
  remote_pool rp{1};
  auto& p = *rp.pool;
  auto l = actors::make_lock();
  l.lock();
  auto task = p.apply_async(lock_and_say, l, rp.said.path());
  REQUIRE(rp.said.next(20s) == std::optional<std::string>{"waiting"});
  REQUIRE(lock_server_await([](auto& s) { return s.waiting == 1; }, 20s));
  rp.host->kill(SIGKILL);
  // The server gives the wait up although the lock is still held here.
  CHECK(lock_server_await(idle_server, 5s));
  l.unlock();
  CHECK(l.acquire(1s) == actors::lock::acquired::yes); // not "died"
  l.unlock();
  CHECK(code_of([&] { task.get(20s); }) == actors::errc::worker_lost);
  rp.finish(true);
}

TEST_CASE("a remote waiter whose connection is cut gets owner_unreachable, "
          "and its next call connects again") {
  remote_pool rp{1};
  auto& p = *rp.pool;
  auto l = actors::make_lock();
  auto held = actors::make_lock();
  l.lock();
  auto task = p.apply_async(wait_for_lock, held, l, rp.said.path());
  REQUIRE(rp.said.next(20s) == std::optional<std::string>{"waiting"});
  REQUIRE(lock_server_await([](auto& s) { return s.waiting == 1; }, 20s));
  actors::detail::lock_server_cut_all();
  auto [failed, what] = task.get(20s);
  MESSAGE(what);
  CHECK(failed == as_int(actors::errc::owner_unreachable));
  CHECK(what.find("lost") != std::string::npos);
  // What the cut thread held there counts as left by a dead holder.
  CHECK(held.acquire(10s) == actors::lock::acquired::previous_owner_died);
  held.unlock();
  // Held here all along (nothing was taken for the cut waiter); the next
  // call there connects again.
  l.unlock();
  auto got = p.apply_async(try_for, l, 5000).get(20s);
  CHECK(got[0] == 1);
  rp.finish();
}

TEST_CASE("a remote process's own lock stays local, and a lock reachable from "
          "no host is owner_unreachable") {
  remote_pool rp{1};
  auto& p = *rp.pool;
  actors::queue<actors::lock> out{actors::unbounded};
  actors::process maker{makes_lock, out};
  maker.start();
  auto gone = out.get(10s);
  REQUIRE(maker.join(10s)); // its lock's memory went with it
  auto before = lock_server_statistics();
  auto codes = p.apply_async(own_and_unreachable, gone).get(20s);
  CHECK(codes == std::vector<int>{0, 0, as_int(actors::errc::owner_unreachable)});
  // One request: the unreachable lock; the task's own lock never left it.
  auto after = lock_server_statistics();
  CHECK(after.requests - before.requests == 1);
  rp.finish();
}

TEST_CASE("a process forked by a remote task gets a connection of its own") {
  remote_pool rp{1};
  auto& p = *rp.pool;
  auto l = actors::make_lock();
  auto before = lock_server_statistics();
  CHECK(p.apply_async(fork_while_holding, l).get(20s)
        == std::vector<int>{0, 0, 1});
  CHECK(lock_server_statistics().connections - before.connections == 1);
  CHECK(l.try_lock());
  l.unlock();
  rp.finish();
}
