// actors::process across real OS processes: exit-code conventions, waiting,
// argument round trips, misuse, and no leaked descriptors or zombies.

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <future>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "actors/all.hpp"
#include "process/fork_server.hpp" // libactors/src: the server's pid
#include "support/error_code.hpp"
#include "support/proc_stats.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

// -- functions run in children --------------------------------------------------

void returns() {
}

void exits(int code) {
  std::exit(code);
}

void throws(std::string message) {
  throw std::runtime_error(message);
}

struct not_a_std_exception {};

void throws_other() {
  throw not_a_std_exception{};
}

void raises(int signo) {
  std::raise(signo);
}

// A real invalid access (a page without permissions), not a null
// dereference that UBSan would report before the kernel could.
void segfaults() {
  auto* page = static_cast<volatile int*>(
    ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  *page = 1;
}

// Runs until a signal ends it.
void blocks() {
  for (;;)
    ::pause();
}

struct point {
  int x = 0;
  double y = 0;
  std::string label;
  std::vector<int> path;

  friend bool operator==(const point& a, const point& b) {
    return a.x == b.x && a.y == b.y && a.label == b.label && a.path == b.path;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, point& p) {
  return f(caf::meta::type_name("point"), p.x, p.y, p.label, p.path);
}

std::string big_string() {
  std::string s(8 << 20, '\0');
  for (size_t i = 0; i < s.size(); ++i)
    s[i] = static_cast<char>('a' + (i * 7919) % 26);
  return s;
}

std::map<std::string, std::vector<point>> nested() {
  return {{"a", {{1, 1.5, "one", {1, 2, 3}}}},
          {"b", {{-2, -0.25, "", {}}, {3, 1e300, "three", {9}}}}};
}

// The child recomputes the expected values itself and exits 0 only when every
// argument arrived intact: the exit code carries the verdict to the parent.
void check_arguments(int i, unsigned long long u, double d, bool b,
                     std::string s, std::vector<int> v, point p,
                     std::map<std::string, std::vector<point>> m,
                     std::pair<int, std::string> pr, std::string big) {
  int failures = 0;
  failures += i != -42;
  failures += u != 18446744073709551615ull;
  failures += d != 3.25;
  failures += b != true;
  failures += s != std::string{"héllo\n\0world", 13};
  failures += v != std::vector<int>{1, 2, 3, 5, 8};
  failures += !(p == point{7, 0.5, "p", {4, 2}});
  failures += m != nested();
  failures += pr != std::make_pair(5, std::string{"five"});
  failures += big != big_string();
  std::exit(failures == 0 ? 0 : 10 + failures);
}

void write_marker(std::string path, std::string text) {
  auto* f = std::fopen(path.c_str(), "w");
  std::fputs(text.c_str(), f);
  std::fclose(f);
}

// Reads back and removes a marker file ("" if it is missing).
std::string take_marker(const char* path) {
  std::string text;
  if (auto* f = std::fopen(path, "r")) {
    char buf[64] = {};
    if (std::fgets(buf, sizeof(buf), f))
      text = buf;
    std::fclose(f);
  }
  ::unlink(path);
  return text;
}

// Runs `fn` with stderr redirected to a file and returns what it printed.
template <class F>
std::string capture_stderr(F fn) {
  char path[] = "/tmp/actors-stderr-XXXXXX";
  auto fd = ::mkstemp(path);
  ::unlink(path);
  auto saved = ::dup(2);
  ::dup2(fd, 2);
  fn();
  ::dup2(saved, 2);
  ::close(saved);
  std::string out;
  char buf[4096];
  ::lseek(fd, 0, SEEK_SET);
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;)
    out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// "name pid daemon|parent-name parent-pid parent-alive" as the child sees it.
std::string identity() {
  auto me = actors::current_process();
  auto parent = actors::parent_process();
  std::string text = me.name + ' ' + std::to_string(me.pid) + ' '
                     + (me.daemon ? "daemon" : "-") + '|';
  if (parent)
    text += parent->name + ' ' + std::to_string(parent->pid) + ' '
            + (parent->is_alive() ? "alive" : "ended");
  return text;
}

void reports_identity(actors::queue<std::string> out) {
  out.put(identity());
}

// Starts a child of its own, "grandchild", which reports as above.
void starts_reporter(actors::queue<std::string> out) {
  actors::process p{reports_identity, out};
  p.name("grandchild");
  p.start();
  p.join();
}

// Waits briefly for its parent, which lives on; then checks that it cannot
// join itself.
void joins_parent() {
  auto parent = actors::parent_process();
  if (!parent || parent->join(20ms) || !parent->is_alive())
    std::exit(21);
  try {
    actors::current_process().join(20ms);
  } catch (const actors::error& e) {
    std::exit(e.code() == actors::errc::would_deadlock ? 0 : 22);
  }
  std::exit(23);
}

// Python's subclass of Process: state in members, the work in run().
struct sums_to {
  int upto = 0;
  actors::queue<int> out;

  void run() {
    int total = 0;
    for (int i = 1; i <= upto; ++i)
      total += i;
    out.put(total);
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, sums_to& x) {
    return f(caf::meta::type_name("sums_to"), x.upto, x.out);
  }
};

// An object with operator() instead; no handle, so it travels inline.
struct exits_with {
  int code = 0;

  void operator()() const {
    std::exit(code);
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 exits_with& x) {
    return f(caf::meta::type_name("exits_with"), x.code);
  }
};

int run_and_join(actors::process& p) {
  p.start();
  REQUIRE(p.join(10s));
  REQUIRE(p.exitcode().has_value());
  return *p.exitcode();
}

} // namespace

TEST_CASE("exit codes follow Python's conventions") {
  SUBCASE("return gives 0") {
    actors::process p{returns};
    CHECK(run_and_join(p) == 0);
  }
  SUBCASE("exit(n) gives n") {
    actors::process p{exits, 3};
    CHECK(run_and_join(p) == 3);
  }
  SUBCASE("a std::exception gives 1 and names process, type and message") {
    actors::process p{throws, "boom"};
    auto err = capture_stderr([&] { CHECK(run_and_join(p) == 1); });
    CHECK(err.find("Process " + p.name()) != std::string::npos);
    CHECK(err.find("std::runtime_error") != std::string::npos);
    CHECK(err.find("boom") != std::string::npos);
  }
  SUBCASE("any other exception gives 1 and names its type") {
    actors::process p{throws_other};
    auto err = capture_stderr([&] { CHECK(run_and_join(p) == 1); });
    CHECK(err.find("not_a_std_exception") != std::string::npos);
  }
  SUBCASE("a signal gives minus its number") {
    actors::process killed{raises, SIGKILL};
    CHECK(run_and_join(killed) == -SIGKILL);
    actors::process aborted{raises, SIGABRT};
    CHECK(run_and_join(aborted) == -SIGABRT);
  }
  SUBCASE("a segfault gives -SIGSEGV") {
    actors::process p{segfaults};
    CHECK(run_and_join(p) == -SIGSEGV);
  }
  SUBCASE("terminate gives -SIGTERM, kill gives -SIGKILL") {
    actors::process t{blocks};
    t.start();
    CHECK(t.is_alive());
    t.terminate();
    REQUIRE(t.join(10s));
    CHECK(t.exitcode() == -SIGTERM);
    actors::process k{blocks};
    k.start();
    k.kill();
    REQUIRE(k.join(10s));
    CHECK(k.exitcode() == -SIGKILL);
    // Signalling an ended process is a no-op.
    k.kill();
    CHECK(k.exitcode() == -SIGKILL);
  }
}

TEST_CASE("join with a timeout reports whether the process ended") {
  actors::process p{blocks};
  p.start();
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(p.join(100ms));
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 100ms);
  CHECK(waited < 2s);
  CHECK_FALSE(p.join(0ms));
  CHECK(p.is_alive());
  CHECK_FALSE(p.exitcode().has_value());
  p.kill();
  CHECK(p.join(10s));
  CHECK_FALSE(p.is_alive());
}

TEST_CASE("state: pid, name, is_alive and exitcode before and after") {
  actors::process p{returns};
  CHECK_FALSE(p.pid().has_value());
  CHECK_FALSE(p.exitcode().has_value());
  CHECK_FALSE(p.is_alive());
  CHECK(p.name().rfind("Process-", 0) == 0);
  p.name("worker");
  CHECK(p.name() == "worker");
  p.start();
  REQUIRE(p.pid().has_value());
  CHECK(*p.pid() != ::getpid());
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
  CHECK_FALSE(p.is_alive());
}

TEST_CASE("arguments of every supported kind arrive intact") {
  actors::process p{check_arguments,
                    -42,
                    18446744073709551615ull,
                    3.25,
                    true,
                    std::string{"héllo\n\0world", 13},
                    std::vector<int>{1, 2, 3, 5, 8},
                    point{7, 0.5, "p", {4, 2}},
                    nested(),
                    std::make_pair(5, std::string{"five"}),
                    big_string()};
  CHECK(run_and_join(p) == 0);
}

TEST_CASE("a lambda without captures runs in a child") {
  char path[] = "/tmp/actors-lambda-XXXXXX";
  ::close(::mkstemp(path));
  actors::process p{[](std::string file, int n) {
                      write_marker(file, std::to_string(n * 2));
                    },
                    std::string{path}, 21};
  CHECK(run_and_join(p) == 0);
  CHECK(take_marker(path) == "42");
}

TEST_CASE("current_process and parent_process: this process, its parent, in "
          "a child and a grandchild") {
  auto me = actors::current_process();
  CHECK(me.name == "MainProcess");
  CHECK(me.pid == ::getpid());
  CHECK_FALSE(me.daemon);
  CHECK(me.is_alive());
  CHECK_FALSE(actors::parent_process().has_value());
  auto self = std::to_string(::getpid());
  actors::queue<std::string> out{0};
  actors::process child{reports_identity, out};
  child.name("reporter");
  child.daemon(true);
  child.start();
  CHECK(out.get(10s)
        == "reporter " + std::to_string(*child.pid()) + " daemon|MainProcess "
             + self + " alive");
  REQUIRE(child.join(10s));
  actors::process parent{starts_reporter, out};
  parent.start();
  auto line = out.get(10s);
  CHECK(line.rfind("grandchild ", 0) == 0);
  CHECK(line.substr(line.find('|'))
        == "|" + parent.name() + ' ' + std::to_string(*parent.pid())
             + " alive");
  REQUIRE(parent.join(10s));
  CHECK(parent.exitcode() == 0);
  // Without a handle among its arguments the task travels inline in the fork
  // request, the other path a child learns who it is by.
  actors::process light{[](std::string parent_pid) {
                          auto me = actors::current_process();
                          auto parent = actors::parent_process();
                          std::exit(me.name == "light" && !me.daemon && parent
                                        && parent->name == "MainProcess"
                                        && std::to_string(parent->pid)
                                             == parent_pid
                                      ? 0
                                      : 24);
                        },
                        self};
  light.name("light");
  CHECK(run_and_join(light) == 0);
  actors::process waits{joins_parent};
  CHECK(run_and_join(waits) == 0);
  CHECK(code_of([] { actors::current_process().join(1ms); })
        == actors::errc::would_deadlock);
}

TEST_CASE("a process made from an object runs its run() or its operator()") {
  actors::queue<int> out{0};
  actors::process p{sums_to{100, out}};
  p.start();
  CHECK(out.get(10s) == 5050);
  CHECK(p.join(10s));
  CHECK(p.exitcode() == 0);
  actors::process q{exits_with{7}};
  CHECK(run_and_join(q) == 7);
}

TEST_CASE("close: refused while the child runs, afterwards the handle "
          "refuses all but its name") {
  actors::process p{blocks};
  p.start();
  CHECK(code_of([&] { p.close(); }) == actors::errc::already_running);
  p.kill();
  REQUIRE(p.join(10s));
  p.close();
  p.close(); // twice is harmless
  CHECK(p.name().rfind("Process-", 0) == 0);
  CHECK(code_of([&] { p.join(); }) == actors::errc::closed);
  CHECK(code_of([&] { (void) p.is_alive(); }) == actors::errc::closed);
  CHECK(code_of([&] { (void) p.pid(); }) == actors::errc::closed);
  CHECK(code_of([&] { (void) p.exitcode(); }) == actors::errc::closed);
  CHECK(code_of([&] { (void) p.sentinel(); }) == actors::errc::closed);
  CHECK(code_of([&] { p.terminate(); }) == actors::errc::closed);
  CHECK(code_of([&] { p.start(); }) == actors::errc::closed);
  actors::process never{returns};
  never.close();
  CHECK(code_of([&] { never.start(); }) == actors::errc::closed);
}

TEST_CASE("misuse is a clear, typed error") {
  actors::process p{returns};
  CHECK(code_of([&] { p.join(); }) == actors::errc::not_started);
  CHECK(code_of([&] { p.terminate(); }) == actors::errc::not_started);
  CHECK(code_of([&] { p.kill(); }) == actors::errc::not_started);
  p.daemon(true);
  p.start();
  CHECK(code_of([&] { p.start(); }) == actors::errc::already_started);
  CHECK(code_of([&] { p.daemon(false); }) == actors::errc::already_running);
  CHECK(p.join(10s));
}

TEST_CASE("200 sequential and 20 concurrent processes leak nothing") {
  // The first process brings up the runtime (actor system, listener, reaper):
  // fixed costs, counted before the baseline.
  actors::process warm_up{returns};
  CHECK(run_and_join(warm_up) == 0);
  auto fds = support::count_fds();
  auto children = support::list_children().size();
  for (int i = 0; i < 200; ++i) {
    actors::process p{exits, i % 7};
    p.start();
    REQUIRE(p.join(10s));
    REQUIRE(p.exitcode() == i % 7);
  }
  std::vector<actors::process> batch;
  for (int i = 0; i < 20; ++i)
    batch.emplace_back(exits, i);
  for (auto& p : batch)
    p.start();
  for (int i = 0; i < 20; ++i) {
    REQUIRE(batch[i].join(10s));
    CHECK(batch[i].exitcode() == i);
  }
  batch.clear();
  // The owner's end of each child's connection is closed by the middleman
  // when it sees the hang-up, which may trail the exit by a moment; a leak
  // would leave hundreds behind.
  CHECK(support::eventually([&] { return support::count_fds() <= fds; }, 5s));
  CHECK(support::list_children().size() == children);
}

TEST_CASE("a dropped handle leaves neither an orphan killed nor a zombie") {
  char path[] = "/tmp/actors-dropped-XXXXXX";
  ::close(::mkstemp(path));
  ::unlink(path);
  pid_t pid;
  {
    actors::process p{write_marker, std::string{path}, std::string{"done"}};
    p.start();
    pid = *p.pid();
  }
  // The child runs on after its handle is gone and is reaped when it ends:
  // it leaves no zombie behind (the process table entry disappears).
  CHECK(support::eventually([&] { return !support::process_exists(pid); },
                            10s));
  CHECK(take_marker(path) == "done");
}

namespace {

// A child that starts a grandchild and passes its exit code on, plus one.
void starts_grandchild(int code) {
  actors::process grandchild{exits, code};
  grandchild.start();
  if (!grandchild.join(std::chrono::seconds{10}))
    std::exit(100);
  std::exit(*grandchild.exitcode() + 1);
}

// A child that starts a non-daemon grandchild and returns at once: the child's
// exit must wait for it, as Python's does.
void leaves_grandchild(std::string path) {
  actors::process grandchild{write_marker, path, std::string{"grandchild"}};
  grandchild.start();
}

} // namespace

TEST_CASE("a child can start and join processes of its own") {
  actors::process p{starts_grandchild, 5};
  CHECK(run_and_join(p) == 6);
}

TEST_CASE("a child's exit joins its non-daemon children") {
  char path[] = "/tmp/actors-grandchild-XXXXXX";
  ::close(::mkstemp(path));
  actors::process p{leaves_grandchild, std::string{path}};
  CHECK(run_and_join(p) == 0);
  // The child ended only after its own child had written the file.
  CHECK(take_marker(path) == "grandchild");
}

// -- exit of the owner ---------------------------------------------------------

namespace {

// An owner that starts a daemon and a non-daemon child, reports both pids
// and returns from main: the runtime must terminate the daemon and join the
// other (which ends on its own once the owner has printed).
int owner_exits(int, char**) {
  actors::process daemon{blocks};
  daemon.daemon(true);
  daemon.start();
  actors::process regular{exits, 0};
  regular.start();
  std::printf("%d %d\n", static_cast<int>(*daemon.pid()),
              static_cast<int>(*regular.pid()));
  std::fflush(stdout);
  return 0;
}

support::helper_mode owner_exits_mode{"owner-exits", owner_exits};

// An owner that starts three children that never end, reports their pids and
// waits to be killed.
int owner_waits(int, char**) {
  std::vector<actors::process> children;
  for (int i = 0; i < 3; ++i) {
    children.emplace_back(blocks);
    children.back().start();
  }
  for (auto& c : children)
    std::printf("%d ", static_cast<int>(*c.pid()));
  std::printf("\n");
  std::fflush(stdout);
  for (;;)
    ::pause();
}

support::helper_mode owner_waits_mode{"owner-waits", owner_waits};

// Whether `pid` was started by exec of this binary (its command line names
// the child role) rather than forked by the fork server.
bool started_by_exec(pid_t pid) {
  std::string cmdline;
  if (std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/cmdline").c_str(), "r")) {
    for (int c; (c = std::fgetc(f)) != EOF;)
      cmdline += c == 0 ? ' ' : static_cast<char>(c);
    std::fclose(f);
  }
  return cmdline.find("--actors-child") != std::string::npos;
}

void reports_cwd(actors::queue<std::string> out) {
  char buf[4096];
  out.put(::getcwd(buf, sizeof(buf)) ? buf : "");
}

// With ACTORS_FORK_SERVER=0: prints whether a child was exec'd, and the exit
// code of one that calls exit(3).
int exec_path(int, char**) {
  actors::process p{blocks};
  p.start();
  auto exec = started_by_exec(*p.pid());
  p.kill();
  p.join();
  actors::process q{exits, 3};
  q.start();
  q.join();
  std::printf("%d %d\n", exec ? 1 : 0, q.exitcode().value_or(-1));
  return 0;
}

support::helper_mode exec_path_mode{"exec-path", exec_path};

// Pins the calling thread to CPU 0 and exits 0 if that is what this very
// thread then reports (a thread glibc mistakes for another would pin that
// other one).
void pins_itself() {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one) != 0)
    std::exit(2);
  std::string allowed;
  if (std::FILE* f = std::fopen("/proc/thread-self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f))
      if (std::strncmp(line, "Cpus_allowed_list:", 18) == 0)
        allowed = line + 18;
    std::fclose(f);
  }
  std::exit(allowed.find_first_not_of(" \t0\n") == std::string::npos
                && allowed.find('0') != std::string::npos
              ? 0
              : 1);
}

int thread_count() {
  int n = 0;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), f))
      if (std::sscanf(line, "Threads: %d", &n) == 1)
        break;
    std::fclose(f);
  }
  return n;
}

// Exits with 10 if it started with at most three threads (the process's
// first, the one running this task and the lifeline's: no actor system,
// whose scheduler, timer and middleman add more; a child exec'd without the
// fork server always has one), plus 1 if a queue made afterwards works (the
// actor system started on first use).
void starts_light() {
  auto before = thread_count();
  int code = before <= 3 || started_by_exec(::getpid()) ? 10 : 0;
  actors::queue<int> q{0};
  q.put(5);
  if (q.get(10s) == 5 && thread_count() > before + 2)
    code += 1;
  std::exit(code);
}

// The fork server: a child of this process (0 if none). Asked of the
// library: the server names itself actors-fork-srv only once it runs.
pid_t find_fork_server() {
  return std::max<pid_t>(0, actors::detail::fork_server::pid());
}

int own_pid(int) {
  return static_cast<int>(::getpid());
}

} // namespace

TEST_CASE("at exit, daemon children are terminated and the others joined") {
  auto owner = support::subprocess::helper("owner-exits");
  auto line = owner.read_line(10s);
  REQUIRE(line);
  int daemon_pid = 0, regular_pid = 0;
  REQUIRE(std::sscanf(line->c_str(), "%d %d", &daemon_pid, &regular_pid) == 2);
  CHECK(owner.wait(10s) == 0);
  CHECK_FALSE(support::process_exists(daemon_pid));
  CHECK_FALSE(support::process_exists(regular_pid));
}

TEST_CASE("children exit within a second when their owner is SIGKILLed") {
  auto owner = support::subprocess::helper("owner-waits");
  auto line = owner.read_line(10s);
  REQUIRE(line);
  auto pids = support::parse_pids(*line);
  REQUIRE(pids.size() == 3);
  for (auto pid : pids)
    REQUIRE(support::process_running(pid));
  owner.kill(SIGKILL);
  REQUIRE(owner.wait(5s) == -SIGKILL);
  // Orphans are reparented to init; each counts as gone once it has ended
  // (whether or not init has reaped it yet).
  auto t0 = std::chrono::steady_clock::now();
  auto deadline = t0 + 1s;
  for (auto pid : pids) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    CHECK(support::wait_ended(pid, std::max(left, 0ms)));
    CHECK_FALSE(support::process_running(pid));
  }
  MESSAGE("children gone after "
          << std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now() - t0)
               .count()
          << " ms");
}

TEST_CASE("children come from the fork server: children of the owner, in its current directory") {
  actors::process p{blocks};
  p.start();
  CHECK_FALSE(started_by_exec(*p.pid()));
  CHECK(support::proc_stat(*p.pid()).ppid == ::getpid());
  p.kill();
  p.join();
  // The directory of the moment, not the one at actors::init.
  char here[4096];
  REQUIRE(::getcwd(here, sizeof(here)));
  char dir[] = "/tmp/actors-cwd-XXXXXX";
  REQUIRE(::mkdtemp(dir));
  REQUIRE(::chdir(dir) == 0);
  actors::queue<std::string> out{0};
  actors::process q{reports_cwd, out};
  q.start();
  CHECK(out.get(10s) == dir);
  q.join();
  REQUIRE(::chdir(here) == 0);
  ::rmdir(dir);
}

TEST_CASE("without the fork server (ACTORS_FORK_SERVER=0) children are started by exec") {
  ::setenv("ACTORS_FORK_SERVER", "0", 1);
  auto owner = support::subprocess::helper("exec-path");
  ::unsetenv("ACTORS_FORK_SERVER");
  auto line = owner.read_line(10s);
  REQUIRE(line);
  CHECK(*line == "1 3");
  CHECK(owner.wait(10s) == 0);
}

TEST_CASE("a child whose arguments hold no handle starts without an actor system, until it needs one") {
  actors::process p{starts_light};
  p.start();
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 11);
}

TEST_CASE("a killed fork server is replaced by exec: children still start") {
  auto server = find_fork_server();
  REQUIRE(server > 0);
  ::kill(server, SIGKILL);
  REQUIRE(::waitpid(server, nullptr, 0) == server);
  actors::process p{exits, 4};
  p.start();
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 4);
  actors::process q{blocks};
  q.start();
  CHECK(started_by_exec(*q.pid()));
  q.kill();
  q.join();
}

TEST_CASE("in a child the thread API acts on the calling thread") {
  actors::process p{pins_itself};
  p.start();
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
}

TEST_CASE("a stopped fork server: start keeps its promise, a pool replaces a "
          "killed worker, and no child comes twice") {
  auto server = find_fork_server();
  REQUIRE(server > 0);
  CHECK(support::proc_stat(server).ppid == ::getpid());
  actors::pool pool{1};
  auto worker = pool.map(own_pid, std::vector<int>{0}).at(0);
  REQUIRE(::kill(server, SIGSTOP) == 0);
  // Resumed however the case ends.
  struct resume {
    pid_t pid;
    ~resume() {
      ::kill(pid, SIGCONT);
    }
  } resumed{server};
  REQUIRE(support::eventually(
    [&] { return support::process_state(server) == 'T'; }, 5s));
  // The pool's feeder asks the server for a fresh worker, and so does
  // start: each must get one within process.hpp's promise (10 s).
  REQUIRE(::kill(worker, SIGKILL) == 0);
  actors::process p{blocks};
  auto t0 = std::chrono::steady_clock::now();
  auto started = std::async(std::launch::async, [&] { p.start(); });
  auto in_time = started.wait_for(10s) == std::future_status::ready;
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - t0);
  MESSAGE("start returned after " << took.count() << " ms");
  CHECK(in_time);
  auto replaced = pool.map_async(own_pid, std::vector<int>{1});
  int fresh = 0;
  CHECK_NOTHROW(fresh = replaced.get(10s).at(0));
  CHECK(fresh != worker);
  CHECK(fresh > 0);
  // Given up on (and said so on stderr): children are exec'd from now on.
  CHECK(actors::detail::fork_server::pid() == -1);
  // A server that resumes must not fork a child for a request it was
  // given up on: it is gone, and the only children running are the pool's
  // worker and p.
  ::kill(server, SIGCONT);
  started.get();
  CHECK(support::wait_ended(server, 5s));
  std::set<pid_t> running;
  for (auto pid : support::list_children())
    if (support::process_running(pid))
      running.insert(pid);
  auto listed = [](const std::set<pid_t>& pids) {
    std::string text;
    for (auto pid : pids)
      text += std::to_string(pid) + " ";
    return text;
  };
  CHECK(listed(running)
        == listed(std::set<pid_t>{*p.pid(), static_cast<pid_t>(fresh)}));
  p.kill();
  p.join();
  pool.close();
  pool.join();
}
