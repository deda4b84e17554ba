// Each demo scenario run as a user would run it, its output checked for the
// behaviour the scenario promises (../shared/SCENARIOS.md).

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <stdlib.h>
#include <unistd.h>

#include "support/subprocess.hpp"

using namespace std::chrono_literals;

namespace {

// Runs a demo at a fifth of the seed's timings (see demos/timing.hpp);
// returns its stdout lines (and its stderr's, with `with_stderr`).
std::vector<std::string> run_demo(const std::string& name, int* exitcode,
                                  bool with_stderr = false) {
  ::setenv("ACTORS_DEMO_SCALE", "0.2", 1);
  support::subprocess demo{std::string{ACTORS_DEMO_DIR} + "/" + name, {},
                           with_stderr};
  std::vector<std::string> lines;
  while (auto line = demo.read_line(30s))
    lines.push_back(*line);
  auto code = demo.wait(10s);
  *exitcode = code ? *code : -1000;
  return lines;
}

// Runs a program of demos/ with `args`, as a user would; returns its stdout
// lines (and its stderr's, with `with_stderr`).
std::vector<std::string> run_program(const std::string& name,
                                     const std::vector<std::string>& args,
                                     int* exitcode, bool with_stderr = false) {
  support::subprocess program{std::string{ACTORS_DEMO_DIR} + "/" + name, args,
                              with_stderr};
  std::vector<std::string> lines;
  while (auto line = program.read_line(30s))
    lines.push_back(*line);
  auto code = program.wait(10s);
  *exitcode = code ? *code : -1000;
  return lines;
}

// The most tasks whose [start, end) intervals overlap at one instant.
int max_overlap(const std::vector<std::pair<long long, long long>>& spans) {
  int most = 0;
  for (auto& [t, unused] : spans) {
    int n = 0;
    for (auto& [start, end] : spans)
      n += start <= t && t < end;
    most = std::max(most, n);
  }
  return most;
}

bool contains(const std::vector<std::string>& lines, const std::string& x) {
  return std::find(lines.begin(), lines.end(), x) != lines.end();
}

} // namespace

TEST_CASE("S2 apply_async: at most two tasks at once, join before close") {
  int code;
  auto lines = run_demo("s02_pool_apply_async", &code);
  REQUIRE(code == 0);
  CHECK(contains(lines, "join before close: pool still running"));
  std::vector<std::pair<long long, long long>> spans;
  for (auto& l : lines) {
    long long start, end;
    if (std::sscanf(l.c_str(), "task %*d ran %lld %lld", &start, &end) == 2)
      spans.emplace_back(start, end);
  }
  REQUIRE(spans.size() == 5);
  CHECK(max_overlap(spans) == 2);
  CHECK(lines.back() == "done.");
}

TEST_CASE("S3 map_async: two at a time, results in input order") {
  int code;
  auto lines = run_demo("s03_pool_map_async", &code);
  REQUIRE(code == 0);
  std::vector<int> order;
  std::vector<std::pair<long long, long long>> spans;
  for (auto& l : lines) {
    int msg;
    long long start, end;
    if (std::sscanf(l.c_str(), "result %d ran %lld %lld", &msg, &start, &end)
        == 3) {
      order.push_back(msg);
      spans.emplace_back(start, end);
    }
  }
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(max_overlap(spans) == 2);
  CHECK(lines.back() == "done.");
}

TEST_CASE("S4 starmap_async: tuples unpacked into typed parameters") {
  int code;
  auto lines = run_demo("s04_pool_starmap_async", &code);
  REQUIRE(code == 0);
  CHECK(contains(lines, "msg1: 1 msg2: one"));
  CHECK(contains(lines, "msg1: 2 msg2: two"));
  auto first = std::find(lines.begin(), lines.end(), "result 1+one");
  auto second = std::find(lines.begin(), lines.end(), "result 2+two");
  CHECK(first != lines.end());
  CHECK(second == first + 1);
  CHECK(lines.back() == "done.");
}

// Outside a terminal, progress bars print plain lines only.
bool has_control_characters(const std::vector<std::string>& lines) {
  for (auto& l : lines)
    if (l.find('\x1b') != std::string::npos || l.find('\r') != std::string::npos)
      return true;
  return false;
}

bool has_prefix(const std::vector<std::string>& lines, const std::string& x) {
  for (auto& l : lines)
    if (l.rfind(x, 0) == 0)
      return true;
  return false;
}

TEST_CASE("S5 files: every file of a generated tree processed exactly once") {
  int code;
  auto lines = run_demo("s05_pool_files", &code, true);
  CHECK(code == 0);
  CHECK(contains(lines, "files 500 processed 500 bytes 24750 exactly once 1"));
  // One bar per worker, each complete, advanced from the worker processes.
  CHECK(has_prefix(lines, "worker 1: 100%|"));
  CHECK(has_prefix(lines, "worker 2: 100%|"));
  CHECK_FALSE(has_control_characters(lines));
}

TEST_CASE("S10 thread pool: imap results in order, the bar shows the latest") {
  int code;
  auto lines = run_demo("s10_thread_pool", &code, true);
  REQUIRE(code == 0);
  CHECK(contains(lines, "results: 0 None None 30 None None 60 None None 90"));
  CHECK(has_prefix(lines, "result=90: 100%|"));
  bool complete = false;
  for (auto& l : lines)
    complete |= l.find("| 10/10 [") != std::string::npos;
  CHECK(complete);
  CHECK_FALSE(has_control_characters(lines));
}

TEST_CASE("S6 imap in input order, imap_unordered in completion order") {
  int code;
  auto lines = run_demo("s06_pool_imap", &code);
  REQUIRE(code == 0);
  std::vector<int> ordered, unordered;
  std::vector<long long> ended, received;
  bool second_part = false;
  for (auto& l : lines) {
    int res;
    long long e, r;
    if (l == "imap_unordered")
      second_part = true;
    if (std::sscanf(l.c_str(), "res: %d ended %lld received %lld", &res, &e,
                    &r)
        == 3) {
      (second_part ? unordered : ordered).push_back(res);
      if (second_part) {
        ended.push_back(e);
        received.push_back(r);
      }
    }
  }
  CHECK(ordered == std::vector<int>{0, 1, 2});
  CHECK(unordered == std::vector<int>{2, 1, 0});
  REQUIRE(received.size() == 3);
  // Streaming: the first result was received before the last task ended.
  CHECK(received[0] < ended[2]);
  CHECK(lines.back() == "done.");
}

TEST_CASE("S1 process: two children with their own pids, start then end") {
  int code;
  auto lines = run_demo("s01_process", &code);
  REQUIRE(code == 0);
  REQUIRE(lines.size() == 7);
  long parent = 0;
  REQUIRE(std::sscanf(lines[0].c_str(), "parent pid %ld", &parent) == 1);
  std::set<long> ids, child_pids;
  size_t start_at = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    long id, pid;
    if (lines[i] == "start")
      start_at = i;
    else if (std::sscanf(lines[i].c_str(), "id %ld (pid %ld)", &id, &pid) == 2) {
      ids.insert(id);
      child_pids.insert(pid);
    }
  }
  CHECK(start_at > 0);
  CHECK(ids == std::set<long>{1, 2});
  CHECK(child_pids.size() == 2);
  CHECK(child_pids.count(parent) == 0);
  // Both joined with exit code 0, reported under the pids the children saw.
  std::set<long> joined;
  for (auto& l : lines) {
    char name[64];
    long pid, exitcode;
    if (std::sscanf(l.c_str(), "%63s pid %ld exitcode %ld", name, &pid,
                    &exitcode)
          == 3) {
      CHECK(exitcode == 0);
      joined.insert(pid);
    }
  }
  CHECK(joined == child_pids);
  CHECK(lines.back() == "end");
}

TEST_CASE("S7 queue: the consumer gets 0..9 in order, then the sentinel") {
  int code;
  auto lines = run_demo("s07_queue", &code);
  REQUIRE(code == 0);
  std::vector<long> got;
  std::set<long> consumer_pids;
  size_t sentinel_at = 0, exit_at = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    long value, pid;
    if (std::sscanf(lines[i].c_str(), "got %ld (consumer pid %ld)", &value,
                    &pid)
        == 2) {
      got.push_back(value);
      consumer_pids.insert(pid);
    } else if (lines[i] == "consumer saw the sentinel") {
      sentinel_at = i;
    } else if (lines[i] == "exitcodes 0 0") {
      exit_at = i;
    }
  }
  CHECK(got == std::vector<long>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(consumer_pids.size() == 1);
  CHECK(sentinel_at > 0);
  CHECK(exit_at > sentinel_at);
  auto has = [&](const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
  };
  CHECK(has("full 1 qsize 1"));
  CHECK(has("put_nowait on a full queue: queue full"));
  CHECK(has("get(100ms) on an empty queue: queue empty"));
  CHECK(has("empty 1"));
}

TEST_CASE("S8 pipe: every message received exactly once across 3 processes") {
  int code;
  auto lines = run_demo("s08_pipe", &code);
  REQUIRE(code == 0);
  std::multiset<std::string> i1_got, others_got;
  int exit_zero = 0;
  for (auto& l : lines) {
    char who[16], what[32];
    long exitcode;
    if (std::sscanf(l.c_str(), "%15s recv %31s", who, what) == 2)
      (std::string{who} == "I1" ? i1_got : others_got).insert(what);
    else if (std::sscanf(l.c_str(), "Process-%*d exitcode %ld", &exitcode) == 1
             && exitcode == 0)
      ++exit_zero;
  }
  CHECK(i1_got == std::multiset<std::string>{"I2", "I3"});
  CHECK(others_got == std::multiset<std::string>{"I1_send1", "I1_send2"});
  CHECK(exit_zero == 3);
}

TEST_CASE("S9 pipe poll: poll semantics, one-way misuse, end of pipe") {
  int code;
  auto lines = run_demo("s09_pipe_poll", &code);
  REQUIRE(code == 0);
  REQUIRE(lines.size() == 7);
  CHECK(lines[0] == "conn1.poll() false");
  CHECK(lines[1] == "conn2.poll() true");
  long waited = 0;
  REQUIRE(std::sscanf(lines[2].c_str(),
                      "conn2.recv() A, conn2.poll(2s) false after %ld ms",
                      &waited)
          == 1);
  CHECK(waited >= 1990);
  CHECK(waited < 4000);
  CHECK(lines[3] == "reader.recv() one way");
  CHECK(lines[4] == "reader.send(): wrong direction for a one-way pipe end");
  CHECK(lines[5] == "reader.recv() last");
  CHECK(lines[6] == "reader.recv() after close: end of pipe");
}

TEST_CASE("S11 lock: the locked writers never mix") {
  int code;
  auto lines = run_demo("s11_lock", &code);
  REQUIRE(code == 0);
  int locked = 0;
  for (auto& l : lines) {
    if (l.rfind("locked:", 0) != 0)
      continue;
    ++locked;
    CHECK((l == "locked: hi hi hi hi hi"
           || l == "locked: hello hello hello hello hello"));
  }
  CHECK(locked == 2);
}

// -- the README's own programs -------------------------------------------------

TEST_CASE("first program: a pool of five processes squares 1, 2 and 3") {
  int code;
  auto lines = run_program("first_program", {}, &code);
  CHECK(code == 0);
  CHECK(lines == std::vector<std::string>{"1", "4", "9"});
}

namespace {

namespace fs = std::filesystem;

// A fresh directory tree of `files` text files in nested directories, some
// of whose lines contain "needle"; returns its root and the lines that
// `parallel_grep needle ROOT` must print, in order.
std::pair<std::string, std::vector<std::string>> make_tree(int files) {
  char root[] = "/tmp/actors-grep-XXXXXX";
  REQUIRE(::mkdtemp(root) != nullptr);
  fs::create_directories(fs::path{root} / "empty" / "dir");
  std::vector<std::tuple<std::string, int, std::string>> matches;
  for (int i = 0; i < files; ++i) {
    auto dir = fs::path{root} / ("d" + std::to_string(i % 6))
               / ("s" + std::to_string(i % 4));
    fs::create_directories(dir);
    auto path = (dir / ("f" + std::to_string(i) + ".txt")).string();
    std::ofstream out{path};
    for (int line = 1; line <= 20; ++line) {
      auto text = (i * 7 + line) % 37 == 0
                    ? "a needle in file " + std::to_string(i)
                    : "hay " + std::to_string(line);
      out << text << (line < 20 || i % 2 ? "\n" : ""); // some end unfinished
      if (text.find("needle") != std::string::npos)
        matches.emplace_back(path, line, text);
    }
  }
  std::sort(matches.begin(), matches.end());
  std::vector<std::string> expected;
  for (auto& [path, line, text] : matches)
    expected.push_back(path + ":" + std::to_string(line) + ":" + text);
  return {root, expected};
}

} // namespace

TEST_CASE("parallel_grep: every matching line of a tree, sorted, with a bar") {
  auto [root, expected] = make_tree(240);
  REQUIRE(expected.size() > 50);
  int code;
  auto lines = run_program("parallel_grep", {"needle", root}, &code, true);
  CHECK(code == 0);
  std::vector<std::string> printed;
  for (auto& l : lines)
    if (l.rfind(root, 0) == 0)
      printed.push_back(l);
  CHECK(printed == expected);
  // The bar on stderr: complete, counting files, showing the matches found.
  auto bar = std::to_string(expected.size()) + " matches: 100%|";
  CHECK(has_prefix(lines, bar));
  bool complete = false;
  for (auto& l : lines)
    complete |= l.rfind(bar, 0) == 0 && l.find("| 240/240 [") != std::string::npos;
  CHECK(complete);
  CHECK_FALSE(has_control_characters(lines));

  // As grep: 1 when nothing matches, 2 on an error.
  lines = run_program("parallel_grep", {"no such text anywhere", root}, &code);
  CHECK(code == 1);
  CHECK(lines.empty());
  lines = run_program("parallel_grep", {"needle", root + "/missing"}, &code,
                      true);
  CHECK(code == 2);
  CHECK(has_prefix(lines, "parallel_grep: "));
  fs::remove_all(root);
}

TEST_CASE("A1 ping-pong: two actor processes with their own pids play three rounds") {
  int code;
  auto lines = run_demo("a01_ping_pong", &code);
  REQUIRE(code == 0);
  long main_pid = 0, pong_pid = 0, ping_pid = 0;
  REQUIRE(lines.size() >= 2);
  REQUIRE(std::sscanf(lines[0].c_str(), "main (pid %ld)", &main_pid) == 1);
  REQUIRE(std::sscanf(lines[1].c_str(), "spawned pong in pid %ld, ping in pid %ld",
                      &pong_pid, &ping_pid)
          == 2);
  CHECK(std::set<long>{main_pid, pong_pid, ping_pid}.size() == 3);
  std::vector<long> sent, got;
  for (auto& l : lines) {
    long pid, n;
    if (std::sscanf(l.c_str(), "ping (pid %ld) sends ball %ld", &pid, &n) == 2) {
      CHECK(pid == ping_pid);
      sent.push_back(n);
    } else if (std::sscanf(l.c_str(), "pong (pid %ld) got ball %ld", &pid, &n)
               == 2) {
      CHECK(pid == pong_pid);
      got.push_back(n);
    }
  }
  CHECK(sent == std::vector<long>{0, 1, 2});
  CHECK(got == std::vector<long>{0, 1, 2});
  CHECK(lines[lines.size() - 2] == "done after 3 hits");
  CHECK(lines.back() == "exit codes: ping 0, pong 0");
}

TEST_CASE("A2 supervisor: poison restarts the worker as a new process, a burst escalates") {
  int code;
  auto lines = run_demo("a02_supervisor", &code);
  REQUIRE(code == 0);
  std::vector<long> pids;
  std::vector<std::string> ends;
  for (auto& l : lines) {
    long pid;
    if (std::sscanf(l.c_str(), "worker running in pid %ld", &pid) == 1)
      pids.push_back(pid);
    else if (l.rfind("worker ended: ", 0) == 0)
      ends.push_back(l);
  }
  REQUIRE(pids.size() == 4);
  CHECK(std::set<long>(pids.begin(), pids.end()).size() == 4);
  REQUIRE(ends.size() == 4);
  CHECK(ends[0].find("actor process " + std::to_string(pids[0])
                     + " (worker) killed by signal 11 (SIGSEGV)")
        != std::string::npos);
  CHECK(ends[1].find("actor failed (std::runtime_error: poison)")
        != std::string::npos);
  CHECK(ends[3].find("killed by signal 11") != std::string::npos);
  CHECK(std::find(lines.begin(), lines.end(), "restarts so far: 2")
        != lines.end());
  CHECK(lines.back().rfind("supervisor ended: actors: supervisor escalated "
                           "(more than 3 restarts within 10000 ms; last: "
                           "child worker ended",
                           0)
        == 0);
}

TEST_CASE("A4 queue actors: the consumer actor gets 0..9 in order, then "
          "the sentinel, and the producer is held back by the bound") {
  int code;
  auto lines = run_demo("a04_queue_actors", &code);
  REQUIRE(code == 0);
  std::vector<long> got, put;
  std::set<long> consumer_pids;
  long producer_pid = 0, consumer_pid = 0;
  size_t sentinel_at = 0, exit_at = 0, put9_at = 0, got6_at = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    long value, pid;
    if (std::sscanf(lines[i].c_str(), "got %ld (consumer pid %ld)", &value,
                    &pid)
        == 2) {
      got.push_back(value);
      consumer_pids.insert(pid);
      if (value == 6)
        got6_at = i;
    } else if (std::sscanf(lines[i].c_str(), "put %ld", &value) == 1) {
      put.push_back(value);
      if (value == 9)
        put9_at = i;
    } else if (std::sscanf(lines[i].c_str(),
                           "producer pid %ld, consumer pid %ld",
                           &producer_pid, &consumer_pid)
               == 2) {
      // pids
    } else if (lines[i] == "consumer saw the sentinel") {
      sentinel_at = i;
    } else if (lines[i] == "exitcodes 0 0") {
      exit_at = i;
    }
  }
  std::vector<long> ten{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  CHECK(got == ten);
  CHECK(put == ten);
  CHECK(consumer_pids == std::set<long>{consumer_pid});
  CHECK(producer_pid != consumer_pid);
  CHECK(producer_pid != static_cast<long>(::getpid()));
  // At most 3 items in the queue and 1 in flight to the consumer: the put
  // of 9 is answered once 7 and 8 are all the queue holds, so 6 was handed
  // out, after the consumer took 5, after it printed 4: causally before
  // the producer printed "put 9".
  auto at = [&](const std::string& line) {
    return static_cast<size_t>(
      std::find(lines.begin(), lines.end(), line) - lines.begin());
  };
  CHECK(put9_at > at("got 4 (consumer pid " + std::to_string(consumer_pid)
                     + ")"));
  CHECK(got6_at > 0);
  CHECK(sentinel_at > got6_at);
  CHECK(exit_at > sentinel_at);
}

TEST_CASE("A5 pipe actors: every message received exactly once by the "
          "actors holding the ends") {
  int code;
  auto lines = run_demo("a05_pipe_actors", &code);
  REQUIRE(code == 0);
  std::multiset<std::string> i1_got, others_got;
  std::set<std::string> receivers;
  int exit_zero = 0;
  for (auto& l : lines) {
    char who[16], what[32];
    long exitcode;
    if (std::sscanf(l.c_str(), "%15s recv %31s", who, what) == 2) {
      (std::string{who} == "I1" ? i1_got : others_got).insert(what);
      if (std::string{who} != "I1")
        receivers.insert(who);
    } else if (std::sscanf(l.c_str(), "I%*d exitcode %ld", &exitcode) == 1
               && exitcode == 0) {
      ++exit_zero;
    }
  }
  CHECK(i1_got == std::multiset<std::string>{"I2", "I3"});
  CHECK(others_got == std::multiset<std::string>{"I1_send1", "I1_send2"});
  CHECK(receivers == std::set<std::string>{"I2", "I3"});
  CHECK(exit_zero == 3);
}

TEST_CASE("A3 typed actor: a calculator in another process answers typed requests") {
  int code;
  auto lines = run_demo("a03_typed_actor", &code);
  REQUIRE(code == 0);
  REQUIRE(lines.size() == 5);
  long calc_pid = 0, main_pid = 0;
  REQUIRE(std::sscanf(lines[0].c_str(), "calculator in pid %ld (main %ld)",
                      &calc_pid, &main_pid)
          == 2);
  CHECK(calc_pid != main_pid);
  CHECK(lines[1] == "40 + 2 = 42");
  CHECK(lines[2] == "error: actors: invalid argument (division by zero)");
  CHECK(lines[3] == "84 / 2 = 42");
  CHECK(lines[4] == "exit code 0");
}

TEST_CASE("M1 manager: a pool fills a shared dict and list, counts exactly") {
  int code;
  auto lines = run_demo("m01_manager", &code);
  REQUIRE(code == 0);
  REQUIRE(lines.size() == 5);
  long manager_pid = 0, main_pid = 0;
  REQUIRE(std::sscanf(lines[0].c_str(), "manager process %ld, this one %ld",
                      &manager_pid, &main_pid)
          == 2);
  CHECK(manager_pid != main_pid);
  // Insertion order is the order the pool reached the words: check the set.
  auto dict = lines[1];
  REQUIRE(dict.rfind("dict: ", 0) == 0);
  std::set<std::string> entries;
  std::istringstream in{dict.substr(6)};
  for (std::string e; in >> e;)
    entries.insert(e);
  CHECK(entries
        == std::set<std::string>{"actors=6", "pool=4", "queue=5", "pipe=4",
                                 "lock=4", "manager=7", "dict=4"});
  unsigned entries_n = 0, workers_n = 0;
  REQUIRE(std::sscanf(lines[2].c_str(), "list: %u entries from %u workers",
                      &entries_n, &workers_n)
          == 2);
  CHECK(entries_n == 8);
  CHECK(workers_n >= 1);
  CHECK(workers_n <= 2);
  CHECK(lines[3] == "counted: 8");
  CHECK(lines[4] == "after shutdown: process_died");
}

TEST_CASE("M2 shared array: a pool squares 100 million doubles in place") {
  int code;
  auto lines = run_demo("m02_shared_array", &code);
  REQUIRE(code == 0);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "squared 100000000 doubles in place in 16 slices");
  CHECK(lines[1] == "sum of squares right");
  unsigned took_part = 0, cores = 0;
  REQUIRE(std::sscanf(lines[2].c_str(), "workers that took part: %u of %u",
                      &took_part, &cores)
          == 2);
  CHECK(took_part >= 1);
  CHECK(took_part <= cores);
  CHECK(lines[3] == "block gone after unlink");
}

TEST_CASE("H2 actors across hosts: one child per host and the killed "
          "host's child back on the other") {
  int code;
  auto lines = run_demo("h02_actors_across_hosts", &code);
  CHECK(code == 0);
  REQUIRE(lines.size() == 7);
  CHECK(lines[0].rfind("started worker host east: ", 0) == 0);
  CHECK(lines[1].rfind("started worker host west: ", 0) == 0);
  // Spread: one child on each host.
  auto spread = lines[2] == "left runs on east, right on west"
                || lines[2] == "left runs on west, right on east";
  CHECK_MESSAGE(spread, lines[2]);
  auto gone = lines[2].substr(13, 4); // left's host
  auto other = gone == "east" ? "west" : "east";
  CHECK(lines[3] == "killed host " + gone);
  CHECK(lines[4].rfind("left is back on " + std::string{other} + " after ", 0)
        == 0);
  CHECK(lines[5] == "right still runs on " + std::string{other});
  CHECK(lines[6] == "restarts: 1");
}

TEST_CASE("H1 word count over hosts: exact counts, every host counted some") {
  int code;
  auto lines = run_demo("h01_word_count", &code);
  CHECK(code == 0);
  CHECK(contains(lines, "4 remote workers joined"));
  CHECK(contains(lines, "total words: 800000 (expected 800000)"));
  long sum = 0;
  int hosts = 0;
  for (auto& line : lines) {
    auto at = line.rfind(": ");
    if (line.rfind("documents counted by ", 0) == 0) {
      auto docs = std::stol(line.substr(at + 2));
      CHECK(docs > 0);
      sum += docs;
      ++hosts;
    }
  }
  CHECK(hosts == 3); // this host and the two worker hosts
  CHECK(sum == 400);
  CHECK(std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
          return l.rfind("worker host ", 0) == 0
                 && l.find(" exited with 0") != std::string::npos;
        })
        == 2);
}
