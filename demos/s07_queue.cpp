// S7 — Queue: a producer process puts 0..9 and a sentinel; a consumer
// process gets until the sentinel.
//
// The Python it mirrors (seed, "Queue"):
//
//     def producer(q):
//         for i in range(10):
//             q.put(i)
//         q.put(None)
//     def consumer(q):
//         while True:
//             item = q.get()
//             if item is None:
//                 break
//             print(item)
//     q = mp.Queue()
//     p1 = mp.Process(target=producer, args=(q,))
//     p2 = mp.Process(target=consumer, args=(q,))
//
// What it shows: a typed queue of a user struct (Python's None sentinel is
// a flag in it) passed to two processes; a bounded queue blocking its producer; the
// nowait/timeout forms raising Full and Empty; qsize/empty/full.
//
// Run it: build/demos/s07_queue

#include <chrono>
#include <iostream>
#include <unistd.h>

#include "actors/all.hpp"

// readme: begin tour
struct item {
  int value = 0;
  bool sentinel = false; // Python's None
};

// Makes `item` serializable, so that it can cross processes.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, item& x) {
  return f(caf::meta::type_name("item"), x.value, x.sentinel);
}

void producer(actors::queue<item> q) {
  for (int i = 0; i < 10; ++i) {
    q.put(item{i}); // blocks while the queue holds 3 items
    std::cout << "put " << i << std::endl;
  }
  q.put(item{0, true});
}

void consumer(actors::queue<item> q) {
  for (auto x = q.get(); !x.sentinel; x = q.get())
    std::cout << "got " << x.value << " (consumer pid " << getpid() << ")"
              << std::endl;
  std::cout << "consumer saw the sentinel" << std::endl;
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  actors::queue<item> q{3};
  actors::process p1{producer, q};
  actors::process p2{consumer, q};
  p1.start();
  p2.start();
  p1.join();
  p2.join();
  std::cout << "exitcodes " << *p1.exitcode() << " " << *p2.exitcode()
            << std::endl;

  // The forms that do not wait, as Python's put_nowait/get_nowait.
  actors::queue<int> small{1};
  small.put_nowait(1);
  std::cout << "full " << small.full() << " qsize " << small.qsize()
            << std::endl;
  try {
    small.put_nowait(2);
  } catch (const actors::error& e) {
    std::cout << "put_nowait on a full queue: " << e.code().message()
              << std::endl;
  }
  small.get();
  try {
    small.get(std::chrono::milliseconds{100});
  } catch (const actors::error& e) {
    std::cout << "get(100ms) on an empty queue: " << e.code().message()
              << std::endl;
  }
  std::cout << "empty " << small.empty() << std::endl;
}
// readme: end tour
