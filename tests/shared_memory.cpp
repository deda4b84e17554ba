// actors::value, actors::array and actors::shared_memory across real
// processes and pool workers.

#include <doctest/doctest.h>

#include <cstring>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actors/all.hpp"
#include "support/error_code.hpp"
#include "support/proc_stats.hpp"

using namespace std::chrono_literals;
using support::code_of;

namespace {

struct point {
  double x;
  double y;
};

// Adds 1 to the counter `n` times, each under its lock.
void add(actors::value<long> counter, int n) {
  for (int i = 0; i < n; ++i) {
    std::lock_guard<actors::rlock> guard{counter.get_lock()};
    counter.set(counter.get() + 1);
  }
}

// Squares the elements [first, last) in place.
int square_slice(actors::array<double> a, std::size_t first,
                 std::size_t last) {
  for (auto i = first; i < last; ++i)
    a[i] = a[i] * a[i];
  return static_cast<int>(last - first);
}

// Writes `text` into the block `name`, then closes its mapping.
void write_named(std::string name, std::string text) {
  auto block = actors::shared_memory::attach(name);
  std::memcpy(block.buf(), text.data(), text.size());
}

// Creates a block `name` and exits without unlinking it.
void create_and_exit(std::string name) {
  auto block = actors::shared_memory::create(4096, name);
  block.buf()[0] = std::byte{1};
}

// Creates a block `name`, says so, and waits to be killed.
void create_and_wait(std::string name, actors::queue<int> ready,
                     actors::event never) {
  auto block = actors::shared_memory::create(4096, name);
  ready.put(static_cast<int>(::getpid()));
  never.wait(60s);
}

// The pids of the trackers (processes run with --actors-shm-tracker)
// whose parent is `parent`, now.
std::vector<pid_t> trackers_now(pid_t parent) {
  std::vector<pid_t> found;
  auto* dir = ::opendir("/proc");
  REQUIRE(dir != nullptr);
  while (auto* e = ::readdir(dir)) {
    auto pid = std::atoi(e->d_name);
    if (pid <= 0)
      continue;
    std::ifstream cmd{"/proc/" + std::string{e->d_name} + "/cmdline"};
    std::string all{std::istreambuf_iterator<char>{cmd}, {}};
    if (all.find("--actors-shm-tracker") == std::string::npos)
      continue;
    if (support::proc_stat(pid).ppid == parent)
      found.push_back(pid);
  }
  ::closedir(dir);
  return found;
}

// The trackers of `parent`, once there is one: a process just started
// shows its arguments in /proc a moment after its parent went on (10 s at
// most).
std::vector<pid_t> trackers_of(pid_t parent) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  auto found = trackers_now(parent);
  while (found.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms); // polling /proc: a bounded wait
    found = trackers_now(parent);
  }
  return found;
}

// Whether `pid` has ended (gone, or a zombie nobody reaped yet).
bool ended(pid_t pid) {
  auto state = support::process_state(pid);
  return state == '?' || state == 'Z' || state == 'X';
}

bool exists(const std::string& name) {
  struct stat st;
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

} // namespace

TEST_CASE("a value: get, set, its lock, and a raw one without") {
  auto v = actors::make_value<int>(7);
  CHECK(v.get() == 7);
  v.set(8);
  CHECK(*v.data() == 8);
  {
    std::lock_guard<actors::rlock> guard{v.get_lock()};
    v.set(v.get() + 1); // get and set take the rlock again: re-entrant
  }
  CHECK(v.get() == 9);
  auto p = actors::make_value(point{1.5, 2.5});
  CHECK(p.get().y == 2.5);
  auto raw = actors::make_raw_value<long>(3);
  CHECK(raw.get() == 3);
  CHECK(code_of([&] { raw.get_lock(); }) == actors::errc::invalid_argument);
  actors::value<int> empty;
  CHECK(code_of([&] { empty.get(); }) == actors::errc::invalid_argument);
}

TEST_CASE("4 processes add 1000 each to a value under its lock") {
  auto counter = actors::make_value<long>(0);
  std::vector<actors::process> procs;
  for (int i = 0; i < 4; ++i) {
    procs.emplace_back(add, counter, 1000);
    procs.back().start();
  }
  for (auto& p : procs) {
    REQUIRE(p.join(60s));
    CHECK(p.exitcode() == 0);
  }
  CHECK(counter.get() == 4000);
}

TEST_CASE("an array: checked and locked access, and raw slices") {
  auto a = actors::make_array<int>(std::vector<int>{1, 2, 3});
  CHECK(a.size() == 3);
  CHECK(a.get(2) == 3);
  a.set(0, 10);
  CHECK(a[0] == 10);
  CHECK(a.to_vector() == std::vector<int>{10, 2, 3});
  CHECK(code_of([&] { a.get(3); }) == actors::errc::invalid_argument);
  CHECK(code_of([&] { a.set(3, 0); }) == actors::errc::invalid_argument);
  auto zeros = actors::make_raw_array<double>(1000);
  CHECK(std::accumulate(zeros.begin(), zeros.end(), 0.0) == 0.0);
  CHECK(code_of([&] { zeros.get_lock(); }) == actors::errc::invalid_argument);
  auto none = actors::make_array<char>(0);
  CHECK(none.size() == 0);
  CHECK(none.to_vector().empty());
}

TEST_CASE("a pool squares a shared array in place, each task a slice") {
  constexpr std::size_t n = 100000;
  auto a = actors::make_raw_array<double>(n);
  for (std::size_t i = 0; i < n; ++i)
    a[i] = static_cast<double>(i);
  actors::pool p{2};
  std::vector<actors::async_result<int>> parts;
  for (std::size_t first = 0; first < n; first += n / 4)
    parts.push_back(p.apply_async(square_slice, a, first, first + n / 4));
  int done = 0;
  for (auto& r : parts)
    done += r.get(60s);
  CHECK(done == static_cast<int>(n));
  bool right = true;
  for (std::size_t i = 0; i < n; ++i)
    right = right && a[i] == static_cast<double>(i) * static_cast<double>(i);
  CHECK(right);
}

TEST_CASE("shared memory by name: create, attach in a process, unlink") {
  auto block = actors::shared_memory::create(64);
  CHECK(block.size() == 64);
  CHECK(block.name().rfind("actors_", 0) == 0);
  CHECK(exists(block.name()));
  actors::process writer{write_named, block.name(), std::string{"hello"}};
  writer.start();
  REQUIRE(writer.join(30s));
  CHECK(writer.exitcode() == 0);
  CHECK(std::string(reinterpret_cast<const char*>(block.buf()), 5) == "hello");
  auto view = block.view<std::uint32_t>();
  CHECK(view.size() == 16);
  // A second name alike is refused; attaching a missing one too.
  CHECK(code_of([&] { actors::shared_memory::create(8, block.name()); })
        == actors::errc::invalid_argument);
  CHECK(code_of([] { actors::shared_memory::attach("actors_no_such_block"); })
        == actors::errc::invalid_argument);
  CHECK(code_of([] { actors::shared_memory::create(0); })
        == actors::errc::invalid_argument);
  CHECK(code_of([] { actors::shared_memory::attach("a/b"); })
        == actors::errc::invalid_argument);
  auto again = actors::shared_memory::attach(block.name());
  block.unlink();
  CHECK_FALSE(exists(block.name()));
  CHECK(code_of([&] { block.unlink(); }) == actors::errc::invalid_argument);
  // Mapped memory outlives the name.
  CHECK(static_cast<char>(again.buf()[0]) == 'h');
  block.close();
  CHECK(code_of([&] { block.buf(); }) == actors::errc::invalid_argument);
  block.close(); // twice: nothing
}

TEST_CASE("a block created by a process that exits is unlinked by it") {
  auto name = "actors_test_" + std::to_string(::getpid());
  actors::process p{create_and_exit, name};
  p.start();
  REQUIRE(p.join(30s));
  CHECK(p.exitcode() == 0);
  CHECK_FALSE(exists(name));
  // Untracked, it stays until unlinked.
  auto kept = actors::shared_memory::create(16, name, /*track=*/false);
  kept.close();
  CHECK(exists(name));
  actors::shared_memory::attach(name).unlink();
  CHECK_FALSE(exists(name));
}

TEST_CASE("a block whose creator is killed by SIGKILL is unlinked by its "
          "tracker, which then ends") {
  auto name = "actors_test_killed_" + std::to_string(::getpid());
  actors::queue<int> ready{actors::unbounded};
  auto never = actors::make_event();
  actors::process p{create_and_wait, name, ready, never};
  p.start();
  auto pid = static_cast<pid_t>(ready.get(30s));
  CHECK(exists(name));
  auto trackers = trackers_of(pid);
  REQUIRE(trackers.size() == 1);
  p.kill();
  REQUIRE(p.join(30s));
  // The tracker reads the end of its pipe at once; bounded by 10 s here.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((exists(name) || !ended(trackers[0]))
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms); // polling a file: a bounded wait
  CHECK_FALSE(exists(name));
  CHECK(ended(trackers[0]));
}

TEST_CASE("a killed tracker costs its creator nothing: later blocks are "
          "still made and unlinked") {
  auto first = actors::shared_memory::create(64);
  auto trackers = trackers_of(::getpid());
  REQUIRE(trackers.size() == 1);
  ::kill(trackers[0], SIGKILL);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!ended(trackers[0]) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms); // polling /proc: a bounded wait
  REQUIRE(ended(trackers[0]));
  // No SIGPIPE: this process goes on, and unlinks its blocks itself.
  auto second = actors::shared_memory::create(64);
  auto name = second.name();
  second.unlink();
  CHECK_FALSE(exists(name));
  first.unlink();
}
