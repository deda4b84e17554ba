// M2 — Shared memory: a pool squares a 100-million-element array in place.
//
// Not a seed scenario: what Python users do with
// `multiprocessing.shared_memory.SharedMemory` and a numpy array over its
// buffer (demos/python/m02_shared_array.py). The array lives in one named
// block of shared memory; each task gets the block's name and a slice,
// attaches to the block and squares its slice where it lies. Nothing of the
// array is copied: a task carries a name and two numbers.
//
// What it shows: every element squared once (the sum of the squares is
// checked against the formula), each worker did a part, and the block is
// gone after unlink.
//
// Run it: build/demos/m02_shared_array [elements]

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "actors/all.hpp"

// Squares the doubles [first, last) of the block `name` in place; returns
// the worker's pid.
int square_slice(std::string name, std::size_t first, std::size_t last) {
  auto block = actors::shared_memory::attach(name);
  auto cells = block.view<double>();
  for (auto i = first; i < last; ++i)
    cells[i] = cells[i] * cells[i];
  return static_cast<int>(::getpid());
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  std::size_t n = argc > 1 ? std::stoull(argv[1]) : 100000000;
  auto block = actors::shared_memory::create(n * sizeof(double));
  auto cells = block.view<double>();
  for (std::size_t i = 0; i < n; ++i)
    cells[i] = static_cast<double>(i % 1000);
  actors::pool pool{0}; // a worker per core
  std::vector<actors::async_result<int>> parts;
  std::size_t slices = 16;
  for (std::size_t k = 0; k < slices; ++k)
    parts.push_back(pool.apply_async(square_slice, block.name(),
                                     n * k / slices, n * (k + 1) / slices));
  std::set<int> workers;
  for (auto& part : parts)
    workers.insert(part.get());
  // Each full run of 0..999 squared sums to 332,833,500; the rest too.
  double expected = 0;
  for (std::size_t i = 0; i < n % 1000; ++i)
    expected += static_cast<double>(i * i);
  expected += static_cast<double>(n / 1000) * 332833500.0;
  double sum = 0;
  for (double x : cells)
    sum += x;
  std::printf("squared %zu doubles in place in %zu slices\n", n, slices);
  std::printf("sum of squares %s\n", sum == expected ? "right" : "WRONG");
  std::printf("workers that took part: %zu of %zu\n", workers.size(),
              static_cast<std::size_t>(actors::cpu_count()));
  auto name = block.name();
  block.unlink();
  bool gone = true;
  try {
    actors::shared_memory::attach(name);
    gone = false;
  } catch (const actors::error&) {
  }
  std::printf("block %s after unlink\n", gone ? "gone" : "STILL THERE");
  return sum == expected && gone ? 0 : 1;
}
