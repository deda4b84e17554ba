// Actors on other hosts (issue 23): actor_options::hosts places an actor on
// a worker process of a host joined to a pool. Worker hosts are this test
// binary started with --actors-worker and --actors-host-name: on loopback,
// and in netlab's hosts (over TLS) for a host lost by a cut link.

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"
#include "support/error_code.hpp"
#include "support/netlab.hpp"
#include "support/subprocess.hpp"

using namespace std::chrono_literals;
using support::code_of;

using where_atom = caf::atom_constant<caf::atom("where")>;
using fail_atom = caf::atom_constant<caf::atom("fail")>;

namespace {

using steady = std::chrono::steady_clock;

// Answers where it runs: {its pid, its parent's (the worker host's)}, and
// the name the test gave its host (ACTORS_TEST_HOST, in the lab); doubles
// numbers; throws when asked to fail.
caf::behavior placed(caf::event_based_actor*) {
  return {
    [](where_atom) {
      return std::vector<int>{static_cast<int>(::getpid()),
                              static_cast<int>(::getppid())};
    },
    [](where_atom, int) {
      auto* name = std::getenv("ACTORS_TEST_HOST");
      return std::string{name != nullptr ? name : "?"};
    },
    [](int x) { return 2 * x; },
    [](fail_atom) -> int { throw std::runtime_error("asked to fail"); },
  };
}

// Sends twice what it gets on its end of a pipe, and answers with it.
caf::behavior piped(caf::event_based_actor*, actors::connection<int> end) {
  return {[end](int x) mutable {
    end.send(2 * x);
    return x;
  }};
}

// A task: asks the actor registered as "svc" to double `x`; returns the
// answer (-1: none) and the host it ran on (the worker's parent).
std::vector<int> ask_svc(int x) {
  caf::scoped_actor self{actors::system()};
  int answer = -1;
  self->request(actors::whereis("svc"), std::chrono::seconds{5}, x)
    .receive([&](int y) { answer = y; }, [](caf::error&) {});
  return {answer, static_cast<int>(::getppid())};
}

std::string self_exe() {
  char buf[4096] = {};
  auto n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

long ms_since(steady::time_point t0) {
  return static_cast<long>(
    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0)
      .count());
}

// {pid, parent pid} of the actor `who`, empty if it does not answer.
std::vector<int> where(const caf::actor& who) {
  caf::scoped_actor self{actors::system()};
  std::vector<int> at;
  self->request(who, 5s, where_atom::value)
    .receive([&](std::vector<int>& x) { at = std::move(x); },
             [](caf::error&) {});
  return at;
}

// The supervisor's child `id` once it is another than `before` and
// answers; invalid if that takes longer than `bound`.
caf::actor restarted(actors::supervisor& sup, const std::string& id,
                     const caf::actor& before, std::chrono::milliseconds bound) {
  auto deadline = steady::now() + bound;
  while (steady::now() < deadline) {
    auto now = sup.child(id);
    if (now && now != before && !where(now).empty())
      return now;
    std::this_thread::sleep_for(5ms); // a measurement's resolution
  }
  return {};
}

// A pool on loopback with two worker hosts, "a" and "b", of `processes`
// worker processes each, and one local worker.
struct two_hosts {
  std::string key = "/tmp/actors-ra-key-" + std::to_string(::getpid());
  actors::pool pool;
  support::subprocess a;
  support::subprocess b;

  explicit two_hosts(int processes,
                     actors::pool_options opts = actors::pool_options{})
    : pool(1, with_listen(opts, key)),
      a(host("a", processes)),
      b(host("b", processes)) {
    REQUIRE(pool.wait_for_remote_workers(2 * processes, 20s));
  }

  ~two_hosts() {
    ::unlink(key.c_str());
  }

  static actors::pool_options with_listen(actors::pool_options opts,
                                          const std::string& key) {
    ::unlink(key.c_str());
    opts.listen = "127.0.0.1:0";
    opts.key_file = key;
    opts.lost_after = 1000ms;
    return opts;
  }

  support::subprocess host(const std::string& name, int processes) {
    return support::subprocess{self_exe(),
                               {"--actors-worker",
                                "127.0.0.1:" + std::to_string(pool.port()),
                                "--actors-key-file", key, "--actors-host-name",
                                name, "--actors-processes",
                                std::to_string(processes)},
                               true};
  }

  actors::actor_options on(const std::string& name) {
    actors::actor_options opts;
    opts.hosts = &pool;
    opts.host = name;
    return opts;
  }
};

} // namespace

TEST_CASE("loopback: an actor placed on a named host runs in a worker "
          "process of that host and answers and stops like a local one") {
  two_hosts hosts{2};
  auto p = actors::spawn(hosts.on("b"), placed);
  auto at = where(p.handle());
  REQUIRE(at.size() == 2);
  CHECK(at[1] == hosts.b.pid());
  CHECK(p.pid() == at[0]);
  CHECK(p.is_alive());
  caf::scoped_actor self{actors::system()};
  self->request(p.handle(), 5s, 21).receive([](int y) { CHECK(y == 42); },
                                            [](caf::error& err) {
                                              FAIL(actors::describe(err));
                                            });
  self->monitor(p.handle());
  CHECK(p.stop(10s));
  CHECK(p.exitcode() == 0);
  bool down = false;
  self->receive([&](caf::down_msg& dm) {
    down = true;
    CHECK(!actors::errc_of(dm.reason));
  }, caf::after(5s) >> [] {});
  CHECK(down);
  // Its worker takes tasks again, as the other workers of b.
  std::vector<int> xs(200, 1);
  CHECK(hosts.pool.map([](int x) { return x + 1; }, xs)
        == std::vector<int>(200, 2));
}

TEST_CASE("loopback: any host means one actor per host first - a full host "
          "or an unknown host or a pool with a task timeout is a typed error") {
  two_hosts hosts{1};
  auto first = actors::spawn(hosts.on(""), placed);
  auto second = actors::spawn(hosts.on(""), placed);
  auto one = where(first.handle());
  auto two = where(second.handle());
  REQUIRE(one.size() == 2);
  REQUIRE(two.size() == 2);
  CHECK(one[1] != two[1]);
  auto third = [&](const std::string& name) {
    try {
      actors::spawn(hosts.on(name), placed);
    } catch (const actors::error& e) {
      CHECK(e.code() == actors::errc::spawn_failed);
      return std::string{e.what()};
    }
    return std::string{"no error"};
  };
  auto full = third("");
  CHECK_MESSAGE(full.find("runs an actor already") != std::string::npos, full);
  auto named_full = third("a");
  CHECK_MESSAGE(named_full.find("host a runs an actor already")
                  != std::string::npos,
                named_full);
  auto unknown = third("nowhere");
  CHECK_MESSAGE(unknown.find("no host named nowhere serves the pool (joined "
                             "now: ")
                  != std::string::npos,
                unknown);
  first.stop(10s);
  second.stop(10s);
  actors::pool_options timed;
  timed.task_timeout = 10s;
  two_hosts strict{1, timed};
  try {
    actors::spawn(strict.on(""), placed);
    FAIL("spawned on a pool with a task timeout");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::spawn_failed);
    CHECK(std::string{e.what()}.find("task timeout") != std::string::npos);
  }
}

TEST_CASE("loopback: an actor that throws on another host ends with "
          "errc::actor_failed naming the exception and its worker serves on") {
  two_hosts hosts{1};
  auto p = actors::spawn(hosts.on("a"), placed);
  caf::scoped_actor self{actors::system()};
  self->monitor(p.handle());
  self->request(p.handle(), 5s, fail_atom::value)
    .receive([](int) { FAIL("answered"); }, [](caf::error&) {});
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(10s) >> [] { FAIL("no down message"); });
  CHECK(actors::errc_of(reason) == actors::errc::actor_failed);
  CHECK_MESSAGE(actors::describe(reason).find("asked to fail")
                  != std::string::npos,
                actors::describe(reason));
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 1);
  // The same worker (a has one) runs the next actor.
  auto again = actors::spawn(hosts.on("a"), placed);
  auto at = where(again.handle());
  REQUIRE(at.size() == 2);
  CHECK(at[1] == hosts.a.pid());
  again.stop(10s);
}

TEST_CASE("loopback: a worker idle for longer than lost_after runs the next "
          "actor (its connection to this node stays open)") {
  two_hosts hosts{1}; // lost_after 1 s
  for (int round = 0; round < 2; ++round) {
    auto p = actors::spawn(hosts.on("a"), placed);
    auto at = where(p.handle());
    REQUIRE(at.size() == 2);
    CHECK(at[1] == hosts.a.pid());
    CHECK(p.stop(10s));
    // Idle longer than lost_after: the condition under test (CAF's
    // connection timeout, set on the worker alone, closed the worker's
    // node connection after it, and the next actor's "ready" was lost).
    std::this_thread::sleep_for(1500ms);
  }
}

TEST_CASE("loopback: an actor on another host takes a pipe end as an "
          "argument and sends on it") {
  two_hosts hosts{1};
  auto [mine, theirs] = actors::pipe<int>();
  auto p = actors::spawn(hosts.on("b"), piped, theirs);
  theirs.close(); // handed over: the actor's end works on
  caf::scoped_actor self{actors::system()};
  for (int i = 0; i < 20; ++i) {
    self->request(p.handle(), 5s, i).receive([&](int y) { CHECK(y == i); },
                                             [](caf::error& err) {
                                               FAIL(actors::describe(err));
                                             });
    CHECK(mine.recv(10s) == 2 * i);
  }
  CHECK(p.stop(10s));
}

TEST_CASE("loopback: kill() of an actor on another host ends its worker "
          "process with exit code -9 and errc::process_died") {
  two_hosts hosts{1};
  auto p = actors::spawn(hosts.on("b"), placed);
  auto pid = p.pid();
  caf::scoped_actor self{actors::system()};
  self->monitor(p.handle());
  p.kill();
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == -SIGKILL);
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(10s) >> [] { FAIL("no down message"); });
  CHECK_MESSAGE(actors::errc_of(reason) == actors::errc::process_died,
                actors::describe(reason));
  // The worker process is gone (its host reaps it; not a child of this
  // process, so polled, bounded); its host starts a fresh one in its place.
  auto deadline = steady::now() + 10s;
  while (::kill(pid, 0) == 0 && steady::now() < deadline)
    std::this_thread::sleep_for(5ms);
  CHECK(::kill(pid, 0) != 0);
  CHECK(hosts.pool.wait_for_remote_workers(2, 20s));
}

TEST_CASE("loopback: a killed host's actor ends with errc::connection_lost "
          "and its supervisor restarts it on the other host where a task of "
          "another process finds it by name") {
  two_hosts hosts{2};
  actors::child_spec spec;
  spec.id = "svc";
  spec.registered = true;
  spec.start = [&hosts] {
    return actors::spawn(hosts.on(""), placed).handle();
  };
  actors::supervisor sup{{actors::strategy::one_for_one, 3, 10s}, {spec}};
  auto before = sup.child("svc");
  auto at = where(before);
  REQUIRE(at.size() == 2);
  auto& doomed = at[1] == hosts.a.pid() ? hosts.a : hosts.b;
  auto& other = at[1] == hosts.a.pid() ? hosts.b : hosts.a;
  caf::scoped_actor self{actors::system()};
  self->monitor(before);
  auto t0 = steady::now();
  doomed.kill(SIGKILL);
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(10s) >> [] { FAIL("no down message"); });
  auto noticed = ms_since(t0);
  CHECK_MESSAGE(actors::errc_of(reason) == actors::errc::connection_lost,
                actors::describe(reason));
  auto now = restarted(sup, "svc", before, 10s);
  auto back = ms_since(t0);
  MESSAGE("a killed host's actor: down after " << noticed
                                               << " ms, answering on the "
                                                  "other host after "
                                               << back << " ms");
  REQUIRE(now);
  auto there = where(now);
  REQUIRE(there.size() == 2);
  CHECK(there[1] == other.pid());
  CHECK(sup.restarts() == 1);
  // Names across hosts: tasks on other processes (this host's worker, and
  // the other host's free one) find it and ask it.
  std::vector<int> xs(200);
  for (int i = 0; i < 200; ++i)
    xs[i] = i;
  auto rs = hosts.pool.map(ask_svc, xs, 1);
  int from_other_host = 0, from_here = 0;
  for (int i = 0; i < 200; ++i) {
    REQUIRE(rs[i].size() == 2);
    CHECK(rs[i][0] == 2 * i);
    from_other_host += rs[i][1] == other.pid();
    from_here += rs[i][1] == ::getpid();
  }
  MESSAGE("asked by name from the other host " << from_other_host
                                               << " times, from this host's "
                                                  "worker "
                                               << from_here << " times");
  CHECK(from_other_host > 0);
  CHECK(from_here > 0);
  sup.stop();
}

namespace {

// The owner of the lab case: ra-owner KEY_FILE. A supervisor with two
// children on any host; the test cuts the link of left's host.
int lab_owner(int argc, char** argv) {
  if (argc < 1)
    return 2;
  actors::pool_options opts;
  opts.listen = support::netlab::owner_address() + ":0";
  opts.key_file = argv[0];
  opts.lost_after = 2000ms;
  actors::pool p{1, opts};
  std::printf("port %u\n", static_cast<unsigned>(p.port()));
  std::fflush(stdout);
  if (!p.wait_for_remote_workers(4, 30s))
    return 3;
  auto host_of = [](const caf::actor& who) {
    caf::scoped_actor self{actors::system()};
    std::string name;
    self->request(who, 5s, where_atom::value, 0)
      .receive([&](std::string& x) { name = std::move(x); },
               [](caf::error&) {});
    return name;
  };
  std::vector<actors::child_spec> children(2);
  children[0].id = "left";
  children[1].id = "right";
  for (auto& c : children)
    c.start = [&p] {
      actors::actor_options where;
      where.hosts = &p;
      return actors::spawn(where, placed).handle();
    };
  actors::supervisor sup{{actors::strategy::one_for_one, 3, 20s}, children};
  auto before = sup.child("left");
  auto left = host_of(before);
  auto right = host_of(sup.child("right"));
  std::printf("left %s\nright %s\ncut %s now\n", left.c_str(), right.c_str(),
              left.c_str());
  std::fflush(stdout);
  auto t0 = steady::now();
  auto now = restarted(sup, "left", before, 20s);
  if (!now) {
    std::printf("left not back within 20 s: restarts %d, supervisor %s\n",
                sup.restarts(),
                sup.reason() ? actors::describe(*sup.reason()).c_str()
                             : "running");
    std::fflush(stdout);
    return 4;
  }
  std::printf("back after %ld ms on %s\n", ms_since(t0), host_of(now).c_str());
  std::printf("right on %s\nrestarts %d\n", host_of(sup.child("right")).c_str(),
              sup.restarts());
  std::fflush(stdout);
  sup.stop();
  std::printf("done\n");
  std::fflush(stdout);
  // The cut host's workers are lost; the pool ends with the others.
  p.terminate();
  return 0;
}

support::helper_mode lab_owner_mode{"ra-owner", lab_owner};

} // namespace

TEST_CASE("netns: actors on two hosts under a supervisor over TLS - a cut "
          "link restarts the child on the other host within lost_after") {
  support::netlab::skip_if_unavailable();
  support::netlab lab{3};
  auto key = "/tmp/actors-ra-lab-key-" + std::to_string(::getpid());
  ::unlink(key.c_str());
  auto owner = lab.helper(0, "ra-owner", {key}, {}, true);
  std::vector<std::string> said;
  auto next = [&](const std::string& prefix) -> std::string {
    while (auto line = owner.read_line(60s)) {
      said.push_back(*line);
      if (line->rfind(prefix, 0) == 0)
        return line->substr(prefix.size());
    }
    return "(none)";
  };
  auto port = next("port ");
  REQUIRE(port != "(none)");
  std::vector<support::subprocess> workers;
  for (int h = 1; h <= 2; ++h) {
    auto name = "h" + std::to_string(h);
    workers.push_back(lab.run(h, self_exe(),
                              {"--actors-worker",
                               support::netlab::owner_address() + ":" + port,
                               "--actors-key-file", key, "--actors-host-name",
                               name, "--actors-processes", "2"},
                              {"ACTORS_TEST_HOST=" + name}, true));
  }
  auto left = next("left ");
  auto right = next("right ");
  auto transcript = [&] {
    std::string all;
    for (auto& line : said)
      all += line + "\n";
    return all;
  };
  INFO(transcript());
  REQUIRE((left == "h1" || left == "h2"));
  CHECK(right == (left == "h1" ? "h2" : "h1"));
  REQUIRE(next("cut ") == left + " now");
  lab.cut(left == "h1" ? 1 : 2);
  auto back = next("back after ");
  REQUIRE(back != "(none)");
  long ms = std::stol(back);
  MESSAGE("a cut host's child answered on the other host " << ms
                                                           << " ms after "
                                                              "the cut "
                                                              "(lost_after "
                                                              "2000 ms)");
  CHECK(back.substr(back.find(" on ") + 4) == right);
  // lost_after, a keepalive probe's interval (1 s), and the restart.
  CHECK(ms < 2000 + 1000 + 1500);
  CHECK(next("right on ") == right);
  CHECK(next("restarts ") == "1");
  CHECK(next("done") == "");
  CHECK(owner.wait(20s) == 0);
  ::unlink(key.c_str());
}
