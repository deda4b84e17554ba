// Built against the installed package: starts one child and reports its code.
#include <actors/all.hpp>
#include <iostream>

int main(int argc, char** argv) {
  actors::init(argc, argv);
  actors::process p{[](int code) { std::exit(code); }, 7};
  p.start();
  p.join();
  std::cout << "consumer child exitcode " << *p.exitcode() << std::endl;
}
