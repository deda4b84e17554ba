// A5 — S8 with actors: the ends of a pipe are held by actors, each in a
// process of its own; one end is shared by two of them.
//
// The Python it mirrors is S8's (seed, "Pipe"): I1 holds conn1, sends twice
// and receives twice; I2 and I3 both hold conn2, each sends once and
// receives once.
//
// What it shows (actors/mailbox.hpp): `actors::subscribe(self, end, ...)`
// makes a pipe end's messages the actor's messages. I2 and I3 each take
// one message (credit 1) and end; a message that was on its way to one of
// them as it ended goes back to the pipe for the other, so every message
// is received exactly once.
//
// Run it: build/demos/a05_pipe_actors

#include <iostream>
#include <memory>
#include <string>

#include "actors/all.hpp"

using conn = actors::connection<std::string>;

// Receives `n` messages from `c`, printing each, then ends.
void receive(caf::event_based_actor* self, conn c, std::string id, int n) {
  auto left = std::make_shared<int>(n);
  auto sub = std::make_shared<actors::subscription>();
  *sub = actors::subscribe(
    self, c,
    [=](std::string msg) {
      std::cout << id << " recv " << msg << std::endl;
      if (--*left == 0) {
        sub->cancel();
        self->quit();
      }
    },
    [=](const actors::error& e) {
      std::cout << id << " pipe ended: " << e.what() << std::endl;
      self->quit();
    },
    /*credit=*/1);
}

caf::behavior pipe1(caf::event_based_actor* self, conn c, std::string id) {
  c.send(id + "_send1"); // a pipe is unbounded: send never waits
  std::cout << id << " send1" << std::endl;
  c.send(id + "_send2");
  std::cout << id << " send2" << std::endl;
  receive(self, c, id, 2);
  return {[](caf::unit_t) {}};
}

caf::behavior pipe2(caf::event_based_actor* self, conn c, std::string id) {
  c.send(id);
  std::cout << id << " send" << std::endl;
  receive(self, c, id, 1);
  return {[](caf::unit_t) {}};
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  auto [conn1, conn2] = actors::pipe<std::string>();
  actors::actor_options i1, i2, i3;
  i1.name = "I1";
  i2.name = "I2";
  i3.name = "I3";
  auto a1 = actors::spawn(i1, pipe1, conn1, std::string{"I1"});
  auto a2 = actors::spawn(i2, pipe2, conn2, std::string{"I2"});
  auto a3 = actors::spawn(i3, pipe2, conn2, std::string{"I3"});
  for (auto* a : {&a1, &a2, &a3})
    a->join();
  for (auto* a : {&a1, &a2, &a3})
    std::cout << a->name() << " exitcode " << *a->exitcode() << std::endl;
}
