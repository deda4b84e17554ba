// Must not compile: the argument does not convert to the parameter type.
#include <actors/process.hpp>
#include <string>

void f(int) {
}

int main() {
  actors::process p{f, std::string{"not an int"}};
}
