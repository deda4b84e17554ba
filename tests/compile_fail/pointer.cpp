// Must not compile: a pointer cannot be sent to another process.
#include <actors/process.hpp>

void f(int*) {
}

int main() {
  int x = 0;
  actors::process p{f, &x};
}
