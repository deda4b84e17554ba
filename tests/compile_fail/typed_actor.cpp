// Must not compile: a typed actor in a child process keeps its interface,
// and a message it does not accept is rejected by the compiler (CAF's own
// diagnostic, "receiver does not accept given message").

#include <caf/all.hpp>

#include "actors/actor_process.hpp"

// readme: begin typed_mismatch
using calculator = caf::typed_actor<caf::replies_to<int, int>::with<int>>;

calculator::behavior_type calculate(calculator::pointer) {
  return {[](int a, int b) { return a + b; }};
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  auto calc = actors::spawn(calculate); // actor_process<calculator>
  caf::scoped_actor self{actors::system()};
  self->send(calc.handle(), std::string{"40"}, 2); // not (int, int)
}

// g++ 12 says, among the notes:
//   caf/mixin/sender.hpp:233:23: error: static assertion failed: receiver
//   does not accept given message
//   ... 'caf::response_type<caf::detail::type_list<>, std::string, int>
//   ::valid' evaluates to false
// readme: end typed_mismatch
