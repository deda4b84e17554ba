// Must not compile: wrong number of arguments.
#include <actors/process.hpp>

void f(int, int) {
}

int main() {
  actors::process p{f, 1};
}
