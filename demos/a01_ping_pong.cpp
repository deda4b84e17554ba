// A1 — Actor programs: ping-pong between two actor processes.
//
// Not a seed scenario: the other face of libactors, the program's own actors
// each in an OS process of its own (actors/actor_process.hpp).
//
// What it shows: two user-defined actors, each spawned in its own process
// (three different pids: the program's and the two actors'), play three
// rounds with a registered message type; `ping` reaches `pong` through the
// handle it was given, and the answers go straight back. Both then stop on
// request, and their processes exit with code 0.
//
// Run it: build/demos/a01_ping_pong

#include <cstdio>
#include <unistd.h>

#include "actors/all.hpp"

// readme: begin ping_pong
// A message type of this program: an inspect overload, registered in init.
struct ball {
  int hits = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ball& x) {
  return f(caf::meta::type_name("ball"), x.hits);
}

using done_atom = caf::atom_constant<caf::atom("done")>;

caf::behavior pong(caf::event_based_actor*) {
  return {[](ball b) {
    std::printf("pong (pid %d) got ball %d\n", getpid(), b.hits);
    std::fflush(stdout);
    return ball{b.hits + 1};
  }};
}

// Plays the ball it gets (the first from main, then each answer) until the
// rounds are played.
caf::behavior ping(caf::event_based_actor* self, caf::actor partner,
                   int rounds, caf::actor done) {
  return {[=](ball b) {
    if (b.hits >= rounds) {
      self->send(done, done_atom::value, b.hits);
      return;
    }
    std::printf("ping (pid %d) sends ball %d\n", getpid(), b.hits);
    std::fflush(stdout);
    self->request(partner, std::chrono::seconds{5}, b)
      .then([=](ball back) { self->send(self, back); });
  }};
}

int main(int argc, char** argv) {
  actors::init(argc, argv, actors::message_types<ball>{});
  std::printf("main (pid %d)\n", getpid());
  caf::actor_system& sys = actors::system();
  caf::scoped_actor self{sys};
  auto pong_process = actors::spawn(pong);
  auto ping_process = actors::spawn(ping, pong_process.handle(), 3,
                                    caf::actor{self});
  std::printf("spawned pong in pid %d, ping in pid %d\n", pong_process.pid(),
              ping_process.pid());
  std::fflush(stdout);
  self->send(ping_process.handle(), ball{0});
  self->receive(
    [](done_atom, int hits) { std::printf("done after %d hits\n", hits); },
    caf::after(std::chrono::seconds{10}) >> [] { std::printf("timeout\n"); });
  ping_process.stop();
  pong_process.stop();
  std::printf("exit codes: ping %d, pong %d\n", *ping_process.exitcode(),
              *pong_process.exitcode());
}
// readme: end ping_pong
