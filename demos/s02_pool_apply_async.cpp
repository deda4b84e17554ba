// S2 — Pool.apply_async: five tasks on a pool of two worker processes.
//
// The Python it mirrors (seed, "pool.apply_async"):
//
//     def func(msg):
//         print("msg:", msg); time.sleep(1); print("end")
//     pool = mp.Pool(processes=2)
//     for i in range(5):
//         pool.apply_async(func, ("hello %d" % i,))
//     print("start")
//     pool.close()
//     pool.join()   # join before close is an error
//     print("done.")
//
// What it shows: at most two tasks run at once (each task reports when it
// ran, on a clock all processes share); join before close is a clear error.
//
// Run it: build/demos/s02_pool_apply_async

#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "actors/all.hpp"
#include "timing.hpp"

// readme: begin tour
// Returns when it started and ended, in ms on the shared clock.
std::pair<long long, long long> func(std::string msg) {
  auto start = demo::now_ms();
  std::cout << "msg: " << msg << std::endl;
  demo::sleep_seconds(1);
  std::cout << "end" << std::endl;
  return {start, demo::now_ms()};
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  actors::pool pool{2};
  std::vector<actors::async_result<std::pair<long long, long long>>> results;
  for (int i = 0; i < 5; ++i)
    results.push_back(pool.apply_async(func, "hello " + std::to_string(i)));
  std::cout << "start" << std::endl;
  try {
    pool.join();
  } catch (const actors::error& e) {
    std::cout << "join before close: " << e.code().message() << std::endl;
  }
  pool.close();
  pool.join();
  for (int i = 0; i < 5; ++i) {
    auto [start, end] = results[i].get();
    std::cout << "task " << i << " ran " << start << " " << end << std::endl;
  }
  std::cout << "done." << std::endl;
}
// readme: end tour
