// Actor processes: actors::spawn until the first reply, request/response
// round trips between this program and an actor process (with the CPU time
// of both processes per round trip, and again while two other processes
// burn both cores, then with a fresh actor process per run; by actors::ask,
// and by a caf::scoped_actor's request and receive), and between actors in
// two actor processes; small
// messages one way from an actor in one process to an actor in another,
// counted at the receiver; and, as the limits, the same with a CAF actor in
// this process. Medians over several runs. Peer: peers/actors.py (Python
// multiprocessing, Pipe and Queue, fork start method). Processes are not
// pinned.
// Usage: bench_actors [round_trips]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

#include <caf/all.hpp>

#include "actors/all.hpp"
#include "measure.hpp"

using run_atom = caf::atom_constant<caf::atom("run")>;
using expect_atom = caf::atom_constant<caf::atom("expect")>;

namespace {

constexpr auto timeout = std::chrono::seconds{10};

caf::behavior echo(caf::event_based_actor*) {
  return {[](int x) { return x + 1; }};
}

// Asks `target` `left` more times, one request after the other, then
// delivers the microseconds per round trip since t0.
void ask(caf::event_based_actor* self, caf::actor target, int n, int left,
         clock_type::time_point t0, caf::typed_response_promise<double> rp) {
  self->request(target, timeout, left).then([=](int) mutable {
    if (left > 1)
      ask(self, target, n, left - 1, t0, rp);
    else
      rp.deliver(seconds_since(t0) / n * 1e6);
  });
}

// On "run n", does n round trips to `target`; answers with the
// microseconds per round trip, measured in this actor's process.
caf::behavior caller(caf::event_based_actor* self, caf::actor target) {
  return {[=](run_atom, int n) -> caf::result<double> {
    auto rp = self->make_response_promise<double>();
    ask(self, target, n, n, clock_type::now(), rp);
    return rp;
  }};
}

// Counts the messages it receives: on "expect n", answers once n have
// arrived with the messages per second from the first to the last. The
// messages may come before "expect" does (they come from another process,
// over another link): counted all the same.
caf::behavior counter(caf::event_based_actor* self) {
  struct state {
    int expected = -1;
    int got = 0;
    clock_type::time_point first;
    clock_type::time_point last;
    caf::response_promise done;
  };
  auto st = std::make_shared<state>();
  auto check = [st] {
    if (st->expected < 0 || st->got < st->expected)
      return;
    auto secs = std::chrono::duration<double>(st->last - st->first).count();
    st->done.deliver((st->expected - 1) / secs);
    st->expected = -1;
    st->got = 0;
  };
  return {
    [=](expect_atom, int n) -> caf::result<double> {
      st->expected = n;
      st->done = self->make_response_promise();
      auto rp = st->done;
      check();
      return rp;
    },
    [=](int) {
      auto now = clock_type::now();
      if (st->got++ == 0)
        st->first = now;
      st->last = now;
      check();
    },
  };
}

// On "run n", sends n small messages to `target`, one after the other.
caf::behavior sender(caf::event_based_actor* self, caf::actor target) {
  return {[=](run_atom, int n) {
    for (int i = 0; i < n; ++i)
      self->send(target, i);
    return n;
  }};
}

// Waits for the answer to a request to `h`, of type T.
template <class T, class... Ts>
T ask_and_wait(caf::scoped_actor& self, const caf::actor& h, Ts... xs) {
  T result{};
  self->request(h, timeout, xs...)
      .receive([&](T x) { result = x; },
               [&](caf::error& err) {
                 std::fprintf(stderr, "bench_actors: %s\n",
                              actors::describe(err).c_str());
                 std::exit(1);
               });
  return result;
}

// Microseconds per round trip of `n` requests to `h`: by actors::ask, or
// from `self` (a scoped actor) when given.
double round_trip(caf::scoped_actor* self, const caf::actor& h, int n) {
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i) {
    if (self != nullptr) {
      ask_and_wait<int>(*self, h, i);
      continue;
    }
    auto x = actors::ask<int>(h, timeout, i);
    if (!x) {
      std::fprintf(stderr, "bench_actors: %s\n",
                   actors::describe(x.error()).c_str());
      std::exit(1);
    }
  }
  return seconds_since(t0) / n * 1e6;
}

// Prints the median round trip to actor process `p` (as WORKLOAD) and the
// CPU time of both processes per round trip (as "WORKLOAD CPU"), over five
// runs. With `p` null each run has a fresh actor process of its own
// (started before it, stopped after it, neither timed), as each run of the
// Python peer's cores-busy rows has a fresh child: which cores Linux gives
// a pair of processes once the cores are busy is drawn once per pair and
// sticks (one core: 25-30 us a round trip; two: 60-170 us), so five runs
// of one pair measure one draw, five pairs five.
using echo_process = decltype(actors::spawn(echo));

void report_round_trip(caf::scoped_actor* self, echo_process* p, int n,
                       const char* workload) {
  std::vector<double> cpu;
  auto us = median_of(5, [&] {
    std::optional<echo_process> fresh;
    auto* q = p;
    if (q == nullptr)
      q = &fresh.emplace(actors::spawn(echo));
    round_trip(self, q->handle(), 100); // warm-up
    auto c0 = cpu_seconds_self() + cpu_seconds(q->pid());
    auto x = round_trip(self, q->handle(), n);
    cpu.push_back((cpu_seconds_self() + cpu_seconds(q->pid()) - c0) / n
                  * 1e6);
    if (fresh)
      fresh->stop();
    return x;
  });
  std::sort(cpu.begin(), cpu.end());
  std::printf("libactors %s: median %.1f us\n", workload, us);
  std::printf("libactors %s CPU: median %.1f us\n", workload,
              cpu[cpu.size() / 2]);
}

} // namespace

int main(int argc, char** argv) {
  actors::init(argc, argv);
  int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  caf::scoped_actor self{actors::system()};
  {
    // The first spawns bring the runtime up (the fork server, the
    // connections): not counted.
    for (int i = 0; i < 3; ++i)
      actors::spawn(echo).stop();
    auto ms = median_of(51, [&] {
      auto t0 = clock_type::now();
      auto p = actors::spawn(echo);
      ask_and_wait<int>(self, p.handle(), 0);
      auto s = seconds_since(t0);
      p.stop(); // not timed
      return s * 1e3;
    });
    std::printf("libactors actor spawn+first reply: median %.3f ms\n", ms);
    ms = median_of(51, [&] {
      auto t0 = clock_type::now();
      auto a = actors::system().spawn(echo);
      ask_and_wait<int>(self, a, 0);
      auto s = seconds_since(t0);
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
      return s * 1e3;
    });
    std::printf("limit in-process actor spawn+first reply: median %.4f ms\n",
                ms);
  }
  {
    auto p = actors::spawn(echo);
    report_round_trip(nullptr, &p, n, "actor round trip");
    report_round_trip(&self, &p, n, "actor round trip, scoped_actor");
    p.stop();
    {
      // Fresh actor processes per run (see report_round_trip), as the
      // Python peer has.
      cores_busy burn{2};
      report_round_trip(nullptr, nullptr, n / 4,
                        "actor round trip, cores busy");
      report_round_trip(&self, nullptr, n / 4,
                        "actor round trip, scoped_actor, cores busy");
    }
    auto a = actors::system().spawn(echo);
    double us;
    round_trip(&self, a, 100);
    us = median_of(5, [&] { return round_trip(&self, a, n); });
    std::printf("limit in-process actor round trip: median %.2f us\n", us);
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
  {
    // The caller's process times its round trips to the echo's process,
    // over the link between the two (made when the caller first sends).
    auto b = actors::spawn(echo);
    auto a = actors::spawn(caller, b.handle());
    ask_and_wait<double>(self, a.handle(), run_atom::value, 100); // warm-up
    auto us = median_of(5, [&] {
      return ask_and_wait<double>(self, a.handle(), run_atom::value, n);
    });
    std::printf("libactors actor round trip between processes: median %.1f "
                "us\n",
                us);
    a.stop();
    b.stop();
  }
  {
    // Small messages one way, actor to actor in another process, counted
    // at the receiver from the first to the last.
    constexpr int messages = 20000;
    auto b = actors::spawn(counter);
    auto a = actors::spawn(sender, b.handle());
    auto rate = median_of(3, [&] {
      caf::scoped_actor waiter{actors::system()};
      auto done = waiter->request(b.handle(), std::chrono::seconds{60},
                                  expect_atom::value, messages);
      ask_and_wait<int>(self, a.handle(), run_atom::value, messages);
      double x = 0;
      std::move(done).receive([&](double r) { x = r; },
                              [&](caf::error& err) {
                                std::fprintf(stderr, "bench_actors: %s\n",
                                             actors::describe(err).c_str());
                                std::exit(1);
                              });
      return x;
    });
    std::printf("libactors actor messages one-way: median %.0f msgs/s\n",
                rate);
    a.stop();
    b.stop();
  }
}
