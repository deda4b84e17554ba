// The actor systems' scheduler (node/scheduler.hpp): its clock fires every
// kind of timeout on time, and a timed request does not wake its thread.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include <dirent.h>

#include <caf/all.hpp>

#include "node/scheduler.hpp"

using namespace std::chrono_literals;

namespace {

using early_atom = caf::atom_constant<caf::atom("early")>;
using late_atom = caf::atom_constant<caf::atom("late")>;
using idle_atom = caf::atom_constant<caf::atom("idle")>;

using clock_type = std::chrono::steady_clock;

struct system_with_our_scheduler {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  system_with_our_scheduler()
    : sys((cfg.load<actors::detail::scheduler>(),
           cfg.set("scheduler.max-threads", size_t{2}), cfg)) {
    // nop
  }
};

// The thread of this process named `name` (0 if none).
long thread_named(const std::string& name) {
  long found = 0;
  if (auto* dir = ::opendir("/proc/self/task")) {
    while (auto* e = ::readdir(dir)) {
      std::ifstream comm{std::string{"/proc/self/task/"} + e->d_name
                         + "/comm"};
      std::string line;
      if (std::getline(comm, line) && line == name)
        found = std::atol(e->d_name);
    }
    ::closedir(dir);
  }
  return found;
}

// How often thread `tid` of this process went to sleep.
long sleeps_of(long tid) {
  std::ifstream status{"/proc/self/task/" + std::to_string(tid) + "/status"};
  for (std::string line; std::getline(status, line);)
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0)
      return std::atol(line.c_str() + 24);
  return -1;
}

long long ms_since(clock_type::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           clock_type::now() - t0)
    .count();
}

} // namespace

TEST_CASE("the scheduler's clock fires an earlier deadline filed after a "
          "later one, request timeouts and behavior timeouts") {
  system_with_our_scheduler s;
  caf::scoped_actor self{s.sys};
  // Delayed messages: the 10 s one first, then one in 50 ms.
  auto t0 = clock_type::now();
  self->delayed_send(self, 10s, late_atom::value);
  self->delayed_send(self, 50ms, early_atom::value);
  bool early = false;
  self->receive([&](early_atom) { early = true; },
                [&](late_atom) { FAIL_CHECK("the late one came first"); },
                caf::after(5s) >> [] { FAIL_CHECK("nothing came"); });
  CHECK(early);
  CHECK(ms_since(t0) >= 50);
  CHECK(ms_since(t0) < 2000);
  // A request nobody answers ends at its timeout.
  auto silent = s.sys.spawn([](caf::event_based_actor* a) -> caf::behavior {
    return {[=](int) { return a->make_response_promise<int>(); }};
  });
  t0 = clock_type::now();
  caf::error err;
  self->request(silent, 80ms, 1).receive([](int) { FAIL_CHECK("answered"); },
                                         [&](caf::error& e) { err = e; });
  CHECK(err == caf::sec::request_timeout);
  CHECK(ms_since(t0) >= 80);
  CHECK(ms_since(t0) < 2000);
  // A behavior's timeout (after), set again after each message.
  auto report = caf::actor{self};
  t0 = clock_type::now();
  auto idle = s.sys.spawn([=](caf::event_based_actor* a) -> caf::behavior {
    return {[](int) {},
            caf::after(30ms) >> [=] { a->send(report, idle_atom::value); }};
  });
  self->receive([](idle_atom) {},
                caf::after(5s) >> [] { FAIL_CHECK("no idle timeout"); });
  CHECK(ms_since(t0) >= 30);
  caf::anon_send_exit(silent, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(idle, caf::exit_reason::user_shutdown);
}

TEST_CASE("a timed request does not wake the scheduler's clock thread") {
  system_with_our_scheduler s;
  caf::scoped_actor self{s.sys};
  auto echo = s.sys.spawn([]() -> caf::behavior {
    return {[](int x) { return x; }};
  });
  auto ask = [&](int x) {
    self->request(echo, 30s, x).receive([](int) {},
                                        [](caf::error&) { FAIL("failed"); });
  };
  ask(0); // the first deadline wakes it: it sleeps for that one after
  // The thread names itself once it runs, which the answer need not wait
  // for: look for it for up to 10 s.
  long tid = 0;
  auto give_up = clock_type::now() + 10s;
  while ((tid = thread_named("actors.clock")) == 0
         && clock_type::now() < give_up)
    std::this_thread::yield();
  REQUIRE(tid != 0);
  auto before = sleeps_of(tid);
  for (int i = 1; i <= 500; ++i)
    ask(i);
  auto woken = sleeps_of(tid) - before;
  MESSAGE("the clock thread slept " << woken << " times in 500 requests");
  CHECK(woken <= 5); // CAF 0.17's own clock: once per request
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}
