// S3 — Pool.map_async over range(5) on two worker processes.
//
// The Python it mirrors (seed, "pool.map_async"):
//
//     def func(msg):
//         print("msg:", msg); time.sleep(2); print("end")
//     pool = mp.Pool(2)
//     pool.map_async(func, range(5))
//     print("start")
//     pool.close(); pool.join()
//     print("done.")
//
// What it shows: the same concurrency bound (two at a time), and results in
// input order. Chunk size 1 so that each item is its own task, as the
// seed's output shows.
//
// Run it: build/demos/s03_pool_map_async

#include <iostream>
#include <vector>

#include "actors/all.hpp"
#include "timing.hpp"

// readme: begin tour
struct span {
  int msg = 0;
  long long start = 0;
  long long end = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, span& x) {
  return f(caf::meta::type_name("span"), x.msg, x.start, x.end);
}

span func(int msg) {
  span s{msg, demo::now_ms(), 0};
  std::cout << "msg: " << msg << std::endl;
  demo::sleep_seconds(2);
  std::cout << "end" << std::endl;
  s.end = demo::now_ms();
  return s;
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  actors::pool pool{2};
  auto results = pool.map_async(func, actors::range(5), 1);
  std::cout << "start" << std::endl;
  pool.close();
  pool.join();
  for (auto& s : results.get())
    std::cout << "result " << s.msg << " ran " << s.start << " " << s.end
              << std::endl;
  std::cout << "done." << std::endl;
}
// readme: end tour
