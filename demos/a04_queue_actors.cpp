// A4 — S7 with actors: the producer and the consumer of a bounded queue are
// actors, each in a process of its own, and no thread ever blocks on the
// queue.
//
// The Python it mirrors is S7's (seed, "Queue"): a producer puts 0..9 and
// a sentinel, a consumer gets until the sentinel; here the queue holds at
// most 3 items.
//
// What it shows (actors/mailbox.hpp):
// - `actors::put(self, q, x)`: a put that is a request, answered once the
//   item is in the queue; the producer sends the next one from the answer,
//   so a full queue holds the producer back without blocking its thread;
// - `actors::subscribe(self, q, on_item, on_end)`: the consumer's mailbox
//   is the queue's consumer side, taking one item at a time (credit 1);
// - the consumer stops at the sentinel and ends its subscription; the
//   producer closes the queue once it has put everything.
//
// Run it: build/demos/a04_queue_actors

#include <iostream>
#include <memory>
#include <unistd.h>

#include "actors/all.hpp"

// readme: begin queue_actors
struct item {
  int value = 0;
  bool sentinel = false; // Python's None
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item& x) {
  return f(caf::meta::type_name("item"), x.value, x.sentinel);
}

// Puts 0..9, each once the queue took the one before, then the sentinel.
caf::behavior producer(caf::event_based_actor* self, actors::queue<item> q) {
  auto put_from = std::make_shared<std::function<void(int)>>();
  *put_from = [=](int i) {
    auto x = i < 10 ? item{i} : item{0, true};
    actors::put(self, q, x).then(
      [=] {
        if (i == 10) {
          self->quit(); // everything is in the queue
          return;
        }
        std::cout << "put " << i << std::endl;
        (*put_from)(i + 1);
      },
      [=](caf::error& e) {
        std::cout << "put failed: " << actors::describe(e) << std::endl;
        self->quit(e);
      });
  };
  (*put_from)(0);
  return {[](caf::unit_t) {}};
}

// Takes items until the sentinel.
caf::behavior consumer(caf::event_based_actor* self, actors::queue<item> q) {
  auto sub = std::make_shared<actors::subscription>();
  *sub = actors::subscribe(
    self, q,
    [=](item x) {
      if (x.sentinel) {
        std::cout << "consumer saw the sentinel" << std::endl;
        sub->cancel();
        self->quit();
        return;
      }
      std::cout << "got " << x.value << " (consumer pid " << getpid() << ")"
                << std::endl;
    },
    [=](const actors::error& e) {
      std::cout << "queue ended: " << e.what() << std::endl;
      self->quit();
    },
    /*credit=*/1);
  return {[](caf::unit_t) {}};
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  actors::queue<item> q{3};
  auto c = actors::spawn(consumer, q);
  auto p = actors::spawn(producer, q);
  std::cout << "producer pid " << p.pid() << ", consumer pid " << c.pid()
            << std::endl;
  p.join();
  c.join();
  std::cout << "exitcodes " << *p.exitcode() << " " << *c.exitcode()
            << std::endl;
}
// readme: end queue_actors
