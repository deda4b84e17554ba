// S4 — Pool.starmap_async: a task of several typed arguments.
//
// The Python it mirrors (seed, "pool.starmap_async"):
//
//     def func(msg1, msg2):
//         print("msg1:", msg1, "msg2:", msg2); time.sleep(2); print("end")
//     pool = mp.Pool(2)
//     pool.starmap_async(func, [(1, 1), (2, 2)])
//     print("start"); pool.close(); pool.join(); print("done.")
//
// What it shows: each tuple is unpacked into the function's typed
// parameters (a wrong arity or type is a compile error); results in order.
//
// Run it: build/demos/s04_pool_starmap_async

#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "actors/all.hpp"
#include "timing.hpp"

// readme: begin tour
std::string func(int msg1, std::string msg2) {
  std::cout << "msg1: " << msg1 << " msg2: " << msg2 << std::endl;
  demo::sleep_seconds(2);
  std::cout << "end" << std::endl;
  return std::to_string(msg1) + "+" + msg2;
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  actors::pool pool{2};
  std::vector<std::tuple<int, std::string>> msgs{{1, "one"}, {2, "two"}};
  auto results = pool.starmap_async(func, msgs);
  std::cout << "start" << std::endl;
  pool.close();
  pool.join();
  for (auto& r : results.get())
    std::cout << "result " << r << std::endl;
  std::cout << "done." << std::endl;
}
// readme: end tour
