// S10 — ThreadPool with a tqdm progress bar.
//
// The Python it mirrors (seed, "线程池"):
//
//     def func(num):
//         time.sleep(0.1)
//         if num % 3 == 0:
//             return num * 10
//     with ThreadPool(2) as pool:
//         results = pool.imap(func=func, iterable=range(10))
//         pbar = tqdm(results, total=10, ncols=100)
//         for result in pbar:
//             pbar.desc = f'{result=}'
//         pbar.close()
//
// What it shows: the pool's API served by two threads of this process (the
// task may capture: here, a multiplier), and a bar on standard error that
// advances as results stream in, its description showing the latest result.
// The results, in input order, are printed on standard output at the end:
// 0 None None 30 None None 60 None None 90.
//
// Run it: build/demos/s10_thread_pool

#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "actors/all.hpp"
#include "timing.hpp"

// readme: begin tour
int main(int argc, char** argv) {
  actors::init(argc, argv);
  const int factor = 10; // captured: a thread pool takes any callable
  auto func = [factor](long long num) -> std::optional<long long> {
    demo::sleep_seconds(0.1);
    if (num % 3 == 0)
      return num * factor;
    return std::nullopt; // Python's None
  };
  std::vector<std::string> shown;
  {
    actors::thread_pool pool{2};
    auto results = pool.imap(func, actors::range(10));
    actors::progress pbar{10};
    for (auto& result : pbar.wrap(results)) {
      auto text = result ? std::to_string(*result) : std::string{"None"};
      pbar.description("result=" + text);
      shown.push_back(text);
    }
    pbar.close();
  }
  std::cout << "results:";
  for (auto& x : shown)
    std::cout << " " << x;
  std::cout << std::endl;
}
// readme: end tour
