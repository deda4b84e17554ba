// S1 — Process: two child OS processes run func(1) and func(2).
//
// The Python it mirrors (seed, "Process"):
//
//     def func(id):
//         print(f'id {id}\n')
//     process = [mp.Process(target=func, args=(1,)),
//                mp.Process(target=func, args=(2,))]
//     [p.start() for p in process]
//     print("start")
//     [p.join() for p in process]
//     print("end")
//
// What it shows: each call runs in its own OS process (the pids differ from
// each other and from the parent's), "start" is printed while they run, and
// "end" comes after both joined with exit code 0.
//
// Run it: build/demos/s01_process

#include <iostream>
#include <unistd.h>

#include "actors/all.hpp"

// readme: begin tour
void func(int id) {
  std::cout << "id " << id << " (pid " << getpid() << ")" << std::endl;
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  std::cout << "parent pid " << getpid() << std::endl;
  actors::process procs[] = {actors::process{func, 1},
                             actors::process{func, 2}};
  for (auto& p : procs)
    p.start();
  std::cout << "start" << std::endl;
  for (auto& p : procs)
    p.join();
  for (auto& p : procs)
    std::cout << p.name() << " pid " << *p.pid() << " exitcode "
              << *p.exitcode() << std::endl;
  std::cout << "end" << std::endl;
}
// readme: end tour
