// Thread pool task rates (each the median of 5 runs), lock
// acquire/release rates, a shared value incremented under its lock and a
// shared array squared in place by a pool, a manager's dict and list, side
// by side with peers/threads_locks.py (multiprocessing.pool.ThreadPool(2),
// threading.Lock, multiprocessing.Lock, Value, shared_memory, Manager).
// Usage: bench_threads_locks

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <numeric>
#include <string>
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

// Adds 1 to `v` `n` times, each under its lock.
void add_under_lock(actors::value<long> v, int n) {
  for (int i = 0; i < n; ++i) {
    std::lock_guard<actors::rlock> guard{v.get_lock()};
    v.set(v.get() + 1);
  }
}

// Squares the doubles [first, last) of the shared memory block `name`.
std::size_t square_part(std::string name, std::size_t first,
                        std::size_t last) {
  auto block = actors::shared_memory::attach(name);
  auto cells = block.view<double>();
  for (auto i = first; i < last; ++i)
    cells[i] = cells[i] * cells[i];
  return last - first;
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
  auto counter = actors::make_value<long>(0);
  actors::process va{add_under_lock, counter, n / 2},
    vb{add_under_lock, counter, n / 2};
  t0 = clock_type::now();
  va.start();
  vb.start();
  va.join();
  vb.join();
  report("value += 1 under its lock, 2 processes", n / seconds_since(t0),
         "increments/s");
  if (counter.get() != n)
    std::printf("libactors note: the shared value is %ld, not %d\n",
                counter.get(), n);
  // Ten million doubles in one named block; a pool of two squares one half
  // each, in place (Python: memoryview over SharedMemory, no numpy).
  const std::size_t cells = 10000000;
  auto block = actors::shared_memory::create(cells * sizeof(double));
  auto view = block.view<double>();
  for (std::size_t i = 0; i < cells; ++i)
    view[i] = static_cast<double>(i % 1000);
  {
    actors::pool p{2};
    p.apply(square_part, block.name(), std::size_t{0}, std::size_t{0});
    t0 = clock_type::now();
    auto a = p.apply_async(square_part, block.name(), std::size_t{0},
                           cells / 2);
    auto b = p.apply_async(square_part, block.name(), cells / 2, cells);
    auto done = a.get() + b.get();
    report("shared array square in place", done / seconds_since(t0),
           "elements/s");
  }
  block.unlink();
  // A manager's dict and list, called from this process: each call one
  // round trip to the manager's process (Python: Manager()).
  actors::manager m;
  auto d = m.dict<int, int>();
  auto list = m.list<int>();
  const int calls = 5000;
  d.set(0, 0);
  report("manager dict set+get", median_rate(calls, [&] {
           for (int i = 0; i < calls; ++i) {
             d.set(i, i);
             if (d.get(i) != i)
               std::printf("libactors note: the dict lost %d\n", i);
           }
         }),
         "pairs/s");
  report("manager list append", median_rate(calls, [&] {
           for (int i = 0; i < calls; ++i)
             list.append(i);
         }),
         "appends/s");
}
