// Supervisors of actor processes: the three strategies, the three restart
// types, restart intensity and escalation, registered children, and the
// order in which children stop.

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <stdexcept>
#include <string>
#include <unistd.h>

#include <caf/all.hpp>

#include "actors/actor_process.hpp"
#include "actors/supervisor.hpp"
#include "subprocess.hpp"

using namespace std::chrono_literals;

namespace {

using pid_atom = caf::atom_constant<caf::atom("pid")>;
using segv_atom = caf::atom_constant<caf::atom("segv")>;
using throw_atom = caf::atom_constant<caf::atom("throw")>;
using quit_atom = caf::atom_constant<caf::atom("quit")>;
using bye_atom = caf::atom_constant<caf::atom("bye")>;

// A child: answers with its pid, fails as told, says goodbye when stopped.
caf::behavior worker(caf::event_based_actor* self, std::string id,
                     caf::actor report) {
  self->set_exit_handler([=](caf::exit_msg& em) {
    if (report)
      self->send(report, bye_atom::value, id);
    self->quit(em.reason);
  });
  return {
    [](pid_atom) { return static_cast<int>(::getpid()); },
    [](segv_atom) { std::raise(SIGSEGV); },
    [](throw_atom) { throw std::runtime_error("poison"); },
    [=](quit_atom) { self->quit(); },
  };
}

caf::actor_system& sys() {
  return actors::system();
}

actors::child_spec spec(std::string id,
                        actors::restart type = actors::restart::permanent,
                        caf::actor report = {}) {
  actors::child_spec s;
  s.id = id;
  s.type = type;
  s.start = [id, report] {
    actors::actor_options opts;
    opts.name = id;
    return actors::spawn(opts, worker, id, report).handle();
  };
  return s;
}

// The pid of a running child, or 0.
int pid_of(const caf::actor& h) {
  if (!h)
    return 0;
  caf::scoped_actor self{sys()};
  int pid = 0;
  self->request(h, 10s, pid_atom::value)
    .receive([&](int p) { pid = p; }, [](caf::error&) {});
  return pid;
}

// Waits until the supervisor has handled the end of `old`, the handle of
// child `id`: it then holds a new handle for `id`, or none. Returns the pid
// of the new one, or 0.
int restarted(actors::supervisor& sup, const std::string& id,
              const caf::actor& old) {
  caf::actor now = old;
  // The supervisor learns of the end from its own down message: there is
  // no event for this test to wait on, so it asks until the answer changes.
  CHECK(support::eventually(
    [&] {
      now = sup.child(id);
      return now != old;
    },
    20000ms));
  return pid_of(now);
}

std::vector<int> pids(actors::supervisor& sup,
                      const std::vector<std::string>& ids) {
  std::vector<int> result;
  for (auto& id : ids)
    result.push_back(pid_of(sup.child(id)));
  return result;
}

} // namespace

TEST_CASE("one_for_one restarts only the child that crashed, as a new process") {
  actors::supervisor sup{{actors::strategy::one_for_one, 5, 10s},
                         {spec("a"), spec("b"), spec("c")}};
  auto before = pids(sup, {"a", "b", "c"});
  for (auto pid : before)
    CHECK(pid > 0);
  auto b = sup.child("b");
  caf::anon_send(b, segv_atom::value);
  auto new_b = restarted(sup, "b", b);
  CHECK(new_b > 0);
  CHECK(new_b != before[1]);
  CHECK(support::wait_ended(before[1], 5000ms));
  auto after = pids(sup, {"a", "b", "c"});
  CHECK(after[0] == before[0]);
  CHECK(after[2] == before[2]);
  // An uncaught exception too.
  b = sup.child("b");
  caf::anon_send(b, throw_atom::value);
  CHECK(restarted(sup, "b", b) > 0);
  CHECK(sup.restarts() == 2);
}

TEST_CASE("one_for_all restarts every child") {
  actors::supervisor sup{{actors::strategy::one_for_all, 5, 10s},
                         {spec("a"), spec("b"), spec("c")}};
  auto before = pids(sup, {"a", "b", "c"});
  auto b = sup.child("b");
  caf::anon_send(b, segv_atom::value);
  restarted(sup, "b", b);
  auto after = pids(sup, {"a", "b", "c"});
  for (size_t i = 0; i < 3; ++i) {
    CHECK(after[i] > 0);
    CHECK(after[i] != before[i]);
    CHECK(support::wait_ended(before[i], 5000ms));
  }
}

TEST_CASE("rest_for_one restarts the child and those started after it") {
  actors::supervisor sup{{actors::strategy::rest_for_one, 5, 10s},
                         {spec("a"), spec("b"), spec("c")}};
  auto before = pids(sup, {"a", "b", "c"});
  auto b = sup.child("b");
  caf::anon_send(b, segv_atom::value);
  restarted(sup, "b", b);
  auto after = pids(sup, {"a", "b", "c"});
  CHECK(after[0] == before[0]);
  CHECK(after[1] != before[1]);
  CHECK(after[2] != before[2]);
  CHECK(after[1] > 0);
  CHECK(after[2] > 0);
}

TEST_CASE("restart types: permanent, transient and temporary") {
  using actors::restart;
  actors::supervisor sup{{actors::strategy::one_for_one, 10, 10s},
                         {spec("perm", restart::permanent),
                          spec("trans", restart::transient),
                          spec("temp", restart::temporary)}};
  // A normal end: only the permanent child comes back.
  for (auto id : {"perm", "trans", "temp"}) {
    auto h = sup.child(id);
    caf::anon_send(h, quit_atom::value);
    restarted(sup, id, h);
  }
  CHECK(pid_of(sup.child("perm")) > 0);
  CHECK_FALSE(sup.child("trans"));
  CHECK_FALSE(sup.child("temp"));
  CHECK(sup.restarts() == 1);
  // A crash brings back the transient child too, but not a temporary one.
  actors::supervisor sup2{{actors::strategy::one_for_one, 10, 10s},
                          {spec("trans", restart::transient),
                           spec("temp", restart::temporary)}};
  auto t = sup2.child("trans");
  caf::anon_send(t, segv_atom::value);
  CHECK(restarted(sup2, "trans", t) > 0);
  auto tmp = sup2.child("temp");
  caf::anon_send(tmp, segv_atom::value);
  CHECK(restarted(sup2, "temp", tmp) == 0);
  CHECK(sup2.restarts() == 1);
}

TEST_CASE("more restarts than the intensity allows escalate") {
  caf::scoped_actor watcher{sys()};
  actors::supervisor sup{{actors::strategy::one_for_one, 2, 10s},
                         {spec("a"), spec("b")}};
  watcher->monitor(sup.handle());
  auto a_pid = pid_of(sup.child("a"));
  for (int i = 0; i < 2; ++i) {
    auto b = sup.child("b");
    caf::anon_send(b, segv_atom::value);
    CHECK(restarted(sup, "b", b) > 0);
  }
  auto b = sup.child("b");
  auto b_pid = pid_of(b);
  caf::anon_send(b, segv_atom::value);
  REQUIRE(sup.wait(20s));
  auto reason = *sup.reason();
  CHECK(actors::errc_of(reason) == actors::errc::escalated);
  auto text = actors::describe(reason);
  MESSAGE(text);
  CHECK(text.find("more than 2 restarts within 10000 ms") != std::string::npos);
  CHECK(text.find("child b ended") != std::string::npos);
  CHECK(text.find("SIGSEGV") != std::string::npos);
  // The supervisor stopped the other child before it ended.
  CHECK(support::wait_ended(a_pid, 1000ms));
  CHECK(support::wait_ended(b_pid, 1000ms));
  caf::error seen;
  watcher->receive([&](caf::down_msg& dm) { seen = dm.reason; },
                   caf::after(10s) >> [] { FAIL_CHECK("no down message"); });
  CHECK(actors::errc_of(seen) == actors::errc::escalated);
}

TEST_CASE("a registered child is found by name after each restart") {
  auto s = spec("named");
  s.registered = true;
  actors::supervisor sup{{}, {s}};
  auto first = actors::whereis("named");
  CHECK(first == sup.child("named"));
  auto pid = pid_of(first);
  caf::anon_send(first, segv_atom::value);
  restarted(sup, "named", first);
  CHECK(support::eventually(
    [&] {
      auto now = actors::whereis("named");
      return now && now != first;
    },
    5000ms));
  CHECK(pid_of(actors::whereis("named")) != pid);
}

TEST_CASE("stop ends the children in reverse order, then the supervisor") {
  caf::scoped_actor self{sys()};
  std::vector<int> child_pids;
  {
    actors::supervisor sup{{},
                           {spec("a", actors::restart::permanent, self),
                            spec("b", actors::restart::permanent, self),
                            spec("c", actors::restart::permanent, self)}};
    child_pids = pids(sup, {"a", "b", "c"});
    sup.stop();
    CHECK(sup.reason() == caf::exit_reason::user_shutdown);
  }
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i)
    self->receive([&](bye_atom, std::string& id) { order.push_back(id); },
                  caf::after(10s) >> [] { FAIL_CHECK("no goodbye"); });
  CHECK(order == std::vector<std::string>{"c", "b", "a"});
  for (auto pid : child_pids)
    CHECK(support::wait_ended(pid, 5000ms));
}

TEST_CASE("a child that does not start fails the supervisor's start") {
  actors::child_spec broken;
  broken.id = "broken";
  broken.start = []() -> caf::actor { throw std::runtime_error("no luck"); };
  std::vector<int> started;
  caf::scoped_actor self{sys()};
  try {
    actors::supervisor sup{{},
                           {spec("a", actors::restart::permanent, self),
                            broken}};
    FAIL_CHECK("started");
  } catch (const actors::error& e) {
    CHECK(e.code() == actors::errc::spawn_failed);
    CHECK(std::string{e.what()}.find(
            "child broken did not start: std::runtime_error: no luck")
          != std::string::npos);
  }
  // The child started before it was stopped.
  self->receive([](bye_atom, std::string& id) { CHECK(id == "a"); },
                caf::after(10s) >> [] { FAIL_CHECK("a was not stopped"); });
  CHECK_THROWS_AS((actors::supervisor{{}, {spec("x"), spec("x")}}),
                  actors::error);
}

TEST_CASE("a child that cannot be restarted counts against the intensity, then escalates") {
  auto starts = std::make_shared<std::atomic<int>>(0);
  actors::child_spec once;
  once.id = "once";
  once.start = [starts] {
    if (++*starts > 1)
      throw std::runtime_error("start " + std::to_string(starts->load()));
    return actors::spawn(worker, std::string{"once"}, caf::actor{}).handle();
  };
  actors::supervisor sup{{actors::strategy::one_for_one, 3, 10s}, {once}};
  caf::anon_send(sup.child("once"), segv_atom::value);
  REQUIRE(sup.wait(20s));
  auto text = actors::describe(*sup.reason());
  CHECK(actors::errc_of(*sup.reason()) == actors::errc::escalated);
  CHECK(text.find("child once did not start: std::runtime_error: start 4")
        != std::string::npos);
  // Restarts: after the crash (1), after the failed starts 2 and 3 (2, 3),
  // and after the failed start 4 one too many.
  CHECK(starts->load() == 4);
}
