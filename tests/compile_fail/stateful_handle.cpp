// Must not compile: a typed stateful actor whose self pointer names the
// interface (a handle type) where CAF wants its actor class. The library
// says so, instead of claiming that the first parameter is no self pointer.

#include "actors/all.hpp"

using calculator = caf::typed_actor<caf::replies_to<int, int>::with<int>>;

struct total {
  int sum = 0;
};

// Should be calculator::stateful_pointer<total>.
calculator::behavior_type add(caf::stateful_actor<total, calculator>*) {
  return {[](int a, int b) { return a + b; }};
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  auto p = actors::spawn(add);
}
