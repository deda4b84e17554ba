// S6 — imap and imap_unordered: func(msg) sleeps 4 - msg seconds.
//
// The Python it mirrors (seed, "imap 和 imap_unordered"):
//
//     def func(msg):
//         print("msg: ", msg); time.sleep(4 - msg); return msg
//     pool = mp.Pool(3)
//     for res in pool.imap(func, range(3)):            # 0, 1, 2
//         print("res: ", res)
//     for res in pool.imap_unordered(func, range(3)):  # 2, 1, 0
//         print("res: ", res)
//
// What it shows: imap yields in input order, imap_unordered in completion
// order, and results stream: the first one is printed while other tasks are
// still running (each result line carries the time it was received; each
// task reports when it ended).
//
// Run it: build/demos/s06_pool_imap

#include <iostream>
#include <utility>

#include "actors/all.hpp"
#include "timing.hpp"

// readme: begin tour
// Returns msg and when it ended, in ms on the shared clock.
std::pair<int, long long> func(int msg) {
  std::cout << "msg: " << msg << std::endl;
  demo::sleep_seconds(4 - msg);
  return {msg, demo::now_ms()};
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  actors::pool pool{3};
  std::cout << "imap" << std::endl;
  for (auto [res, ended] : pool.imap(func, actors::range(3)))
    std::cout << "res: " << res << " ended " << ended << " received "
              << demo::now_ms() << std::endl;
  std::cout << "imap_unordered" << std::endl;
  for (auto [res, ended] : pool.imap_unordered(func, actors::range(3)))
    std::cout << "res: " << res << " ended " << ended << " received "
              << demo::now_ms() << std::endl;
  std::cout << "start" << std::endl;
  pool.close();
  pool.join();
  std::cout << "done." << std::endl;
}
// readme: end tour
