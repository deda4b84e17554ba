// The README's first program: the first example of Python's multiprocessing
// documentation (demos/python/first_program.py), a pool of five worker
// processes squaring 1, 2 and 3.
//
// Run it: build/demos/first_program

#include <actors/all.hpp>
#include <iostream>
#include <vector>

int f(int x) {
  return x * x;
}

int main(int argc, char** argv) {
  actors::init(argc, argv); // first, always: the workers run this program too
  actors::pool p{5};        // ends with its scope, as `with Pool(5) as p:`
  for (int y : p.map(f, std::vector<int>{1, 2, 3}))
    std::cout << y << '\n';
}
