// Thread pool task rates (each the median of 5 runs) and lock
// acquire/release rates, side by side with peers/threads_locks.py
// (multiprocessing.pool.ThreadPool(2), threading.Lock and
// multiprocessing.Lock).
// Usage: bench_threads_locks

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <thread>
#include <vector>

#include "actors/all.hpp"
#include "measure.hpp"

namespace {

void report(const char* what, double per_second, const char* unit) {
  std::printf("libactors %s: %.0f %s\n", what, per_second, unit);
}

// The median rate of `n` items per run of `run`, over 5 runs.
template <class F>
double median_rate(std::size_t n, F run) {
  std::vector<double> rates;
  for (int i = 0; i < 5; ++i) {
    auto t0 = clock_type::now();
    run();
    rates.push_back(static_cast<double>(n) / seconds_since(t0));
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

void sections(actors::lock l, int n) {
  for (int i = 0; i < n; ++i) {
    l.lock();
    l.unlock();
  }
}

} // namespace

int main(int argc, char** argv) {
  actors::init(argc, argv);
  {
    actors::thread_pool tp{2};
    int offset = 1; // captured, as thread pools allow
    auto trivial = [offset](int x) { return x + offset; };
    tp.map(trivial, std::vector<int>(100, 0)); // warm up
    std::vector<int> big(100000), small(20000);
    std::iota(big.begin(), big.end(), 0);
    std::iota(small.begin(), small.end(), 0);
    report("thread_pool map 100k default chunksize",
           median_rate(big.size(), [&] { tp.map(trivial, big); }), "tasks/s");
    report("thread_pool map chunksize 1",
           median_rate(small.size(), [&] { tp.map(trivial, small, 1); }),
           "tasks/s");
    report("thread_pool imap chunksize 1", median_rate(small.size(), [&] {
             for (int x : tp.imap(trivial, small, 1))
               (void) x;
           }),
           "tasks/s");
    report("thread_pool apply_async x 20k", median_rate(small.size(), [&] {
             std::vector<actors::async_result<int>> rs;
             for (int x : small)
               rs.push_back(tp.apply_async(trivial, x));
             for (auto& r : rs)
               r.get();
           }),
           "tasks/s");
  }
  auto l = actors::make_lock();
  const int n = 20000;
  sections(l, 100); // warm up
  auto t0 = clock_type::now();
  sections(l, n);
  report("lock uncontended, one thread", n / seconds_since(t0),
         "acquire+release/s");
  t0 = clock_type::now();
  {
    std::thread a{sections, l, n / 2}, b{sections, l, n / 2};
    a.join();
    b.join();
  }
  report("lock contended, two threads", n / seconds_since(t0),
         "acquire+release/s");
  actors::process pa{sections, l, n / 2}, pb{sections, l, n / 2};
  t0 = clock_type::now();
  pa.start();
  pb.start();
  pa.join();
  pb.join();
  report("lock contended, two processes", n / seconds_since(t0),
         "acquire+release/s");
}
