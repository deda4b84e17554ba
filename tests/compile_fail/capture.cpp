// Must not compile: a lambda with captures cannot cross a process boundary.
#include <actors/process.hpp>

int main() {
  int n = 1;
  actors::process p{[n] { (void) n; }};
}
