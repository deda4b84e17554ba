// A3 — Actor programs: a typed actor in a child process.
//
// Not a seed scenario: a CAF `typed_actor` spawned in its own process keeps
// its interface: the handle `actors::spawn` returns is the typed handle, so
// a message the interface does not accept is a compile error (the README
// shows the compiler's message; tests/compile_fail/typed_actor.cpp is that
// program, and a test checks that it does not compile).
//
// What it shows: the calculator runs in another process (its pid differs),
// answers typed requests, reports a division by zero as an error the caller
// receives, and keeps serving.
//
// Run it: build/demos/a03_typed_actor

#include <cstdio>
#include <unistd.h>

#include "actors/all.hpp"

using namespace std::chrono_literals;

// readme: begin typed_actor
using add_atom = caf::atom_constant<caf::atom("add")>;
using div_atom = caf::atom_constant<caf::atom("div")>;
using pid_atom = caf::atom_constant<caf::atom("pid")>;

using calculator =
  caf::typed_actor<caf::replies_to<add_atom, int, int>::with<int>,
                   caf::replies_to<div_atom, int, int>::with<int>,
                   caf::replies_to<pid_atom>::with<int>>;

calculator::behavior_type calculate(calculator::pointer) {
  return {
    [](add_atom, int a, int b) { return a + b; },
    [](div_atom, int a, int b) -> caf::result<int> {
      if (b == 0)
        return actors::make_error(actors::errc::invalid_argument,
                                  "division by zero");
      return a / b;
    },
    [](pid_atom) { return static_cast<int>(getpid()); },
  };
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  auto calc = actors::spawn(calculate); // actors::actor_process<calculator>
  caf::scoped_actor self{actors::system()};
  auto report = [](caf::error& err) {
    std::printf("error: %s\n", actors::describe(err).c_str());
  };
  self->request(calc.handle(), 5s, pid_atom::value)
    .receive([](int pid) { std::printf("calculator in pid %d (main %d)\n",
                                       pid, getpid()); },
             report);
  self->request(calc.handle(), 5s, add_atom::value, 40, 2)
    .receive([](int sum) { std::printf("40 + 2 = %d\n", sum); }, report);
  self->request(calc.handle(), 5s, div_atom::value, 1, 0)
    .receive([](int q) { std::printf("1 / 0 = %d\n", q); }, report);
  self->request(calc.handle(), 5s, div_atom::value, 84, 2)
    .receive([](int q) { std::printf("84 / 2 = %d\n", q); }, report);
  // self->send(calc.handle(), "add", 40, 2); // does not compile
  calc.stop();
  std::printf("exit code %d\n", *calc.exitcode());
}
// readme: end typed_actor
