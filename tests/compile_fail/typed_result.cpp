// Must not compile: a typed stateful actor returning an untyped behavior.
// The library names the mismatch, instead of CAF's conversion error between
// handle types.

#include "actors/all.hpp"

using calculator = caf::typed_actor<caf::replies_to<int, int>::with<int>>;

struct total {
  int sum = 0;
};

// Should return calculator::behavior_type.
caf::behavior add(calculator::stateful_pointer<total> self) {
  return {[=](int a, int b) { return self->state.sum += a + b; }};
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  auto p = actors::spawn(add);
}
