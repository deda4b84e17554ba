// A2 — Actor programs: a supervised worker process that crashes.
//
// Not a seed scenario: Erlang/OTP supervision of actor processes
// (actors/supervisor.hpp).
//
// What it shows: a worker actor runs in its own process under a
// `one_for_one` supervisor that allows 3 restarts in 10 s. A poison message
// makes it segfault, then another makes it throw: each time the reason is
// printed (the signal, the exception) and a fresh process takes its place
// (a new pid). Then a burst of poison goes beyond the intensity: the
// supervisor stops its children and ends with `errc::escalated`.
//
// Run it: build/demos/a02_supervisor

#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <unistd.h>

#include "actors/all.hpp"

using namespace std::chrono_literals;

// readme: begin supervisor
using segv_atom = caf::atom_constant<caf::atom("segv")>;
using throw_atom = caf::atom_constant<caf::atom("throw")>;
using hello_atom = caf::atom_constant<caf::atom("hello")>;

// Says hello with its pid to `watcher` when it starts; poison kills it.
caf::behavior worker(caf::event_based_actor* self, caf::actor watcher) {
  self->send(watcher, hello_atom::value, static_cast<int>(getpid()));
  return {
    [](segv_atom) { std::raise(SIGSEGV); },
    [](throw_atom) { throw std::runtime_error("poison"); },
  };
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  caf::scoped_actor self{actors::system()};
  actors::child_spec spec;
  spec.id = "worker";
  spec.start = [watcher = caf::actor{self}] {
    return actors::spawn(actors::actor_options{"worker"}, worker, watcher)
      .handle();
  };
  actors::supervisor sup{{actors::strategy::one_for_one, 3, 10s}, {spec}};
  // At each (re)start the worker says hello; the supervisor, busy with
  // the restart until the new worker runs, then knows its handle.
  caf::actor current;
  auto await_start = [&] {
    self->receive(
      [&](hello_atom, int pid) {
        current = sup.child("worker");
        std::printf("worker running in pid %d\n", pid);
      },
      caf::after(10s) >> [] { std::printf("no worker started\n"); });
  };
  auto poison = [&](auto atom) {
    self->monitor(current);
    self->send(current, atom);
    self->receive(
      [](caf::down_msg& dm) {
        std::printf("worker ended: %s\n", actors::describe(dm.reason).c_str());
      },
      caf::after(10s) >> [] { std::printf("the worker did not end\n"); });
  };
  await_start();
  poison(segv_atom::value);
  await_start();
  poison(throw_atom::value);
  await_start();
  std::printf("restarts so far: %d\n", sup.restarts());
  std::printf("a burst of poison:\n");
  poison(segv_atom::value); // the third restart in 10 s: still allowed
  await_start();
  poison(segv_atom::value); // a fourth: beyond the intensity
  if (sup.wait(10s))
    std::printf("supervisor ended: %s\n",
                actors::describe(*sup.reason()).c_str());
}
// readme: end supervisor
