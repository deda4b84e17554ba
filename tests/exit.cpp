// The end of a program, whatever of libactors is still alive when it exits
// (returning from main with pools owned by globals, or std::exit with local
// ones), and programs run under low limits on descriptors and processes.
// Each case runs a helper role of this binary as the program and watches it
// from outside: its exit status within a bound, and no process of its
// group left behind.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "actors/all.hpp"
#include "support/proc_stats.hpp"
#include "support/subprocess.hpp"
#include "support/watchdog.hpp"

using namespace std::chrono_literals;

namespace {

int square(int x) {
  return x * x;
}

// -- programs that exit with everything alive ---------------------------------

// What the program leaves alive: owned by globals (destroyed after the
// runtime's exit sequence when main returns: the runtime was made later),
// or by main's locals (never destroyed when the program calls std::exit).
struct alive {
  std::unique_ptr<actors::pool> pool;
  std::unique_ptr<actors::thread_pool> threads;
  std::unique_ptr<actors::queue<int>> queue;
  std::unique_ptr<actors::queue<int>> idle; // stays empty
  std::unique_ptr<actors::process> daemon;
  std::unique_ptr<actors::process> worker;
  std::unique_ptr<actors::actor_process<caf::actor>> actor;
  std::unique_ptr<actors::progress> bar;
  std::unique_ptr<std::pair<actors::connection<int>, actors::connection<int>>>
    pipe;
  std::unique_ptr<actors::lock> lock;
};

alive globals;

// A daemon child: waits on an empty queue forever (ended at exit).
void wait_forever(actors::queue<int> q) {
  for (;;)
    q.get();
}

// A non-daemon child: takes one item and returns (joined at exit).
void take_one(actors::queue<int> q) {
  q.get(10s);
}

caf::behavior echo(caf::event_based_actor*) {
  return {[](int x) { return x; }};
}

// argv: "return" or "exit", then what to leave alive: any of pool,
// thread_pool, process, queue, actor, progress, pipe, lock, or all.
int leave_alive(int argc, char** argv) {
  if (argc < 2)
    return 2;
  bool by_exit = std::strcmp(argv[0], "exit") == 0;
  std::string what = argv[1];
  auto wants = [&](const char* x) { return what == x || what == "all"; };
  alive locals;
  auto& a = by_exit ? locals : globals;
  if (wants("pool")) {
    a.pool = std::make_unique<actors::pool>(2);
    if (a.pool->map(square, std::vector<int>{1, 2, 3, 4})
        != std::vector<int>{1, 4, 9, 16})
      return 3;
  }
  if (wants("thread_pool")) {
    a.threads = std::make_unique<actors::thread_pool>(2);
    if (a.threads->map(square, std::vector<int>{1, 2, 3}, 1)
        != std::vector<int>{1, 4, 9})
      return 3;
  }
  if (wants("queue") || wants("process")) {
    a.queue = std::make_unique<actors::queue<int>>(actors::unbounded);
    a.queue->put(1);
  }
  if (wants("process")) {
    a.idle = std::make_unique<actors::queue<int>>(actors::unbounded);
    a.daemon = std::make_unique<actors::process>(wait_forever, *a.idle);
    a.daemon->daemon(true);
    a.daemon->start();
    a.worker = std::make_unique<actors::process>(take_one, *a.queue);
    a.worker->start();
    a.queue->put(2);
  }
  if (wants("actor")) {
    a.actor = std::make_unique<actors::actor_process<caf::actor>>(
      actors::spawn(echo));
  }
  if (wants("progress")) {
    a.bar = std::make_unique<actors::progress>(100, "left open");
    a.bar->update(7);
  }
  if (wants("pipe")) {
    a.pipe = std::make_unique<
      std::pair<actors::connection<int>, actors::connection<int>>>(
      actors::pipe<int>());
    a.pipe->second.send(5);
  }
  if (wants("lock")) {
    a.lock = std::make_unique<actors::lock>(actors::make_lock());
    a.lock->lock(); // held at exit
  }
  std::printf("ready\n");
  std::fflush(stdout);
  if (by_exit)
    std::exit(0);
  return 0;
}

support::helper_mode leave_alive_mode{"exit-leave-alive", leave_alive};

// The processes of group `pgid` that have not ended (zombies are ended).
std::vector<pid_t> running_in_group(pid_t pgid) {
  std::vector<pid_t> result;
  auto* dir = ::opendir("/proc");
  if (dir == nullptr)
    return result;
  while (auto* e = ::readdir(dir)) {
    auto pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0)
      continue;
    auto stat = support::proc_stat(pid);
    if (stat.pgrp == pgid && stat.state != 'Z' && stat.state != 'X'
        && stat.state != '?')
      result.push_back(pid);
  }
  ::closedir(dir);
  return result;
}

// The process group of the program being watched: killed if the watchdog
// ends this test run (a program that hangs would outlive it otherwise).
std::atomic<pid_t> watched_group{0};

void kill_watched_group() {
  if (auto group = watched_group.load(); group > 0)
    ::kill(-group, SIGKILL);
}

// Starts the helper `mode` with `args` in a process group of its own, which
// the watchdog kills if it fires.
support::subprocess start_watched(const std::string& mode,
                                  const std::vector<std::string>& args,
                                  support::subprocess::options opts) {
  static bool hooked = (support::at_watchdog_exit(kill_watched_group), true);
  (void) hooked;
  opts.own_group = true;
  auto program = support::subprocess::helper(mode, args, opts);
  watched_group = program.pid();
  return program;
}

// Runs the program leaving `what` alive, ending by `how`: it must end with
// status 0 within 10 s, and nothing of its group may run on.
void check_exit(const std::string& how, const std::string& what) {
  CAPTURE(how);
  CAPTURE(what);
  auto program = start_watched("exit-leave-alive", {how, what}, {});
  REQUIRE(program.read_line(20s) == "ready");
  auto t0 = std::chrono::steady_clock::now();
  program.read_all(10s); // until its processes closed their output
  auto status = program.wait(1s);
  watched_group = 0;
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - t0);
  CHECK(status == 0);
  MESSAGE(how << " with " << what << " alive: status "
              << (status ? std::to_string(*status) : "none (hung)")
              << " after " << took.count() << " ms");
  auto pgid = program.pid();
  CHECK(support::eventually([&] { return running_in_group(pgid).empty(); },
                            2000ms));
  ::kill(-pgid, SIGKILL); // whatever is left does not outlive the test
}

// A program whose main throws with a pool, a queue and a child alive.
int throw_from_main(int, char**) {
  actors::pool pool{1};
  actors::queue<int> q{actors::unbounded};
  actors::process child{take_one, q};
  child.start();
  if (pool.apply(square, 3) != 9)
    return 3;
  std::printf("ready\n");
  std::fflush(stdout);
  throw actors::error(actors::errc::invalid_argument, "thrown from main");
}

support::helper_mode throw_mode{"exit-throw-from-main", throw_from_main};

// A program started with its standard output closed: a queue between two
// children, then one line on stderr (descriptor 2 is still there).
void put_ten(actors::queue<int> q) {
  for (int i = 0; i < 10; ++i)
    q.put(i);
}

int closed_stdout(int, char**) {
  actors::queue<int> q{actors::unbounded};
  actors::process producer{put_ten, q};
  producer.start();
  int sum = 0;
  for (int i = 0; i < 10; ++i)
    sum += q.get(10s);
  producer.join();
  std::printf("printed into /dev/null, not into a socket\n");
  std::fflush(stdout);
  std::fprintf(stderr, "sum %d\n", sum);
  return 0;
}

support::helper_mode closed_stdout_mode{"exit-closed-stdout", closed_stdout};

} // namespace

TEST_CASE("an exception leaving main ends the program with status 1 and its "
          "message, not abort(), and nothing of it runs on") {
  support::subprocess::options opts;
  opts.with_stderr = true;
  auto program = start_watched("exit-throw-from-main", {}, opts);
  REQUIRE(program.read_line(20s) == "ready");
  auto rest = program.read_all(10s);
  auto status = program.wait(1s);
  watched_group = 0;
  CHECK(status == 1);
  CHECK(rest.find("uncaught exception, exiting with 1: actors::error: "
                  "thrown from main")
        != std::string::npos);
  MESSAGE(rest);
  auto pgid = program.pid();
  CHECK(support::eventually([&] { return running_in_group(pgid).empty(); },
                            2000ms));
  ::kill(-pgid, SIGKILL);
}

TEST_CASE("a program started with standard output closed runs as usual") {
  support::subprocess::options opts;
  opts.stdout_closed = true;
  auto program = start_watched("exit-closed-stdout", {}, opts);
  auto out = program.read_all(20s);
  auto status = program.wait(1s);
  watched_group = 0;
  CHECK(status == 0);
  CHECK(out == "sum 45\n");
  ::kill(-program.pid(), SIGKILL);
}

TEST_CASE("a program returning from main with a pool owned by a global ends") {
  check_exit("return", "pool");
}

TEST_CASE("a program calling std::exit with a local pool ends") {
  check_exit("exit", "pool");
}

TEST_CASE("a program exits with everything of libactors still alive") {
  for (auto how : {"return", "exit"})
    for (auto what : {"thread_pool", "process", "queue", "actor", "progress",
                      "pipe", "lock", "all"})
      check_exit(how, what);
}

// -- programs under low limits ------------------------------------------------

namespace {

// The child of "pipe": sends 7 on its end.
void send_seven(actors::connection<int> end) {
  end.send(7);
}

// What the program under limits does (argv[0]): "pool", a pool of 8 runs a
// map; "queue", an item goes through a queue; "process", a child runs;
// "pipe", a child sends on the end it was given, which the program closed
// after start. Then it ends: prints "ok", or the error's code and text,
// then "end".
void use(const std::string& what) {
  if (what == "pool") {
    actors::pool p{8};
    std::vector<int> xs(100);
    for (int i = 0; i < 100; ++i)
      xs[static_cast<std::size_t>(i)] = i;
    auto ys = p.map(square, xs, 1);
    if (ys.size() != xs.size() || ys[99] != 99 * 99)
      throw std::runtime_error("wrong results");
  } else if (what == "queue") {
    actors::queue<int> q{actors::unbounded};
    q.put(7);
    if (q.get(10s) != 7)
      throw std::runtime_error("wrong item");
  } else if (what == "pipe") {
    auto [mine, theirs] = actors::pipe<int>();
    actors::process child{send_seven, theirs};
    child.start();
    theirs.close();
    // A child that could not start never holds its end: the pipe ends
    // (end_of_pipe) rather than wait for it (timeout: the bug).
    try {
      if (mine.recv(20s) != 7)
        throw std::runtime_error("wrong message");
    } catch (const actors::error& e) {
      if (e.code() != actors::errc::end_of_pipe || child.join(10s) == false
          || child.exitcode() == 0)
        throw;
    }
    if (!child.join(10s))
      throw std::runtime_error("the child did not end");
  } else {
    // The child has the same limits: it may fail in its turn, which its
    // exit code tells.
    actors::process child{square, 3};
    child.start();
    if (!child.join(10s))
      throw std::runtime_error("the child did not end");
  }
}

int under_limits(int argc, char** argv) {
  if (argc < 1)
    return 2;
  try {
    use(argv[0]);
    std::printf("ok\n");
  } catch (const actors::error& e) {
    std::printf("error %d %s\n", e.code().value(), e.what());
  } catch (const std::exception& e) {
    std::printf("failed: %s\n", e.what());
  }
  std::printf("end\n");
  std::fflush(stdout);
  return 0;
}

support::helper_mode under_limits_mode{"exit-under-limits", under_limits};

// Runs the program using `what` with `opts` (its limits): it must say what
// became of it (done, or a typed error among `allowed`), and end with
// status 0 within 30 s, leaving no process behind.
void check_under_limits(const std::string& what,
                        support::subprocess::options opts,
                        const std::vector<actors::errc>& allowed) {
  CAPTURE(what);
  opts.with_stderr = true;
  // In sanitized builds, the sanitizers need threads and descriptors too:
  // LeakSanitizer's check at exit, UBSan's vptr check (it probes memory
  // through a pipe, and reports a false error without one). Under the
  // limits, those are off. UBSan reads its suppression file when it first
  // reports, which fails with no descriptor left and ends the program: under
  // the limits it has none (a report then only prints).
  auto relaxed = [](const char* name, const char* extra) {
    std::string result = std::string{name} + "=";
    if (auto* given = std::getenv(name))
      result += std::string{given} + ":";
    return result + extra;
  };
  opts.env = {relaxed("ASAN_OPTIONS", "detect_leaks=0"),
              relaxed("UBSAN_OPTIONS", "halt_on_error=0:suppressions=")};
  auto program = start_watched("exit-under-limits", {what}, opts);
  // Read while it runs (a sanitized build may say much): until every
  // process of it has closed its output, at the latest after 30 s.
  auto t0 = std::chrono::steady_clock::now();
  auto out = program.read_all(30s);
  auto status = program.wait(1s);
  watched_group = 0;
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - t0);
  MESSAGE("status " << (status ? std::to_string(*status) : "none (hung)")
                    << " after " << took.count() << " ms, output:\n"
                    << out);
  CHECK(status == 0);
  // The program's verdict: the line before its "end".
  std::vector<std::string> lines;
  std::istringstream in{out};
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  auto end = std::find(lines.begin(), lines.end(), "end");
  REQUIRE(end != lines.end());
  REQUIRE(end != lines.begin());
  auto verdict = *(end - 1);
  if (verdict.rfind("error ", 0) == 0) {
    auto code = static_cast<actors::errc>(std::atoi(verdict.c_str() + 6));
    CHECK(std::find(allowed.begin(), allowed.end(), code) != allowed.end());
  } else {
    CHECK(verdict == "ok");
  }
  auto pgid = program.pid();
  CHECK(support::eventually([&] { return running_in_group(pgid).empty(); },
                            2000ms));
  ::kill(-pgid, SIGKILL); // whatever is left does not outlive the test
}

// Runs the program using each of `uses` under limits of `resource` from 8
// to 64: `allowed` are the errors it may report.
void sweep(int resource, const std::vector<std::string>& uses,
           const std::vector<actors::errc>& allowed) {
  static long run = 0;
  std::vector<unsigned long> limits;
  for (unsigned long n = 8; n <= 24; ++n) // each step fails somewhere else
    limits.push_back(n);
  limits.insert(limits.end(), {32ul, 64ul});
  for (auto n : limits) {
    CAPTURE(n);
    for (auto& what : uses) {
      support::subprocess::options opts;
      opts.limits = {{resource, n}};
      // RLIMIT_NPROC counts the processes of a user: a user of its own for
      // each run, so that no other process counts against the limit (nor a
      // zombie of the run before, which counts until reaped).
      if (resource == RLIMIT_NPROC)
        opts.uid = 1000000 + ::getpid() * 64L + run++;
      check_under_limits(what, opts, allowed);
    }
  }
}

bool can_limit_processes() {
  if (::geteuid() == 0)
    return true;
  MESSAGE("skipped: RLIMIT_NPROC binds only a user other than root, and "
          "only root can start a program as another user");
  return false;
}

} // namespace

TEST_CASE("with few descriptors a pool fails with a typed error, and the "
          "program still ends") {
  sweep(RLIMIT_NOFILE, {"pool"},
        {actors::errc::spawn_failed, actors::errc::pool_broken});
}

TEST_CASE("with few descriptors a queue, a process or a pipe fails with a "
          "typed error, and the program still ends") {
  sweep(RLIMIT_NOFILE, {"queue", "process", "pipe"},
        {actors::errc::spawn_failed});
}

TEST_CASE("with few processes allowed a pool fails with a typed error, and "
          "the program still ends") {
  if (can_limit_processes())
    sweep(RLIMIT_NPROC, {"pool"},
          {actors::errc::spawn_failed, actors::errc::pool_broken});
}

TEST_CASE("with few processes allowed a queue, a process or a pipe fails "
          "with a typed error, and the program still ends") {
  if (can_limit_processes())
    sweep(RLIMIT_NPROC, {"queue", "process", "pipe"},
          {actors::errc::spawn_failed});
}
