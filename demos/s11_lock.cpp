// S11 — threading.Lock: two threads overwrite a shared 5-element list.
//
// The Python it mirrors (seed, "threading"):
//
//     lock = threading.Lock()
//     global_resource = [None] * 5
//     def change_resource(para, sleep):
//         lock.acquire()
//         for i in range(len(global_resource)):
//             global_resource[i] = para
//             time.sleep(sleep)
//         print("修改全局变量为：", global_resource)
//         lock.release()
//     threading.Thread(target=change_resource, args=('hi', 2)).start()
//     threading.Thread(target=change_resource, args=('hello', 1)).start()
//
// What it shows: with the lock, each thread prints a list that is all its
// own ('hi' x5 or 'hello' x5, in either order); without it (shown after, not
// guaranteed) the two writers mix.
//
// Run it: build/demos/s11_lock

#include <array>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "actors/all.hpp"
#include "timing.hpp"

// readme: begin tour
std::array<std::string, 5> global_resource;
std::mutex print_mtx; // keeps lines whole; it is not what is demonstrated

void print(const char* label) {
  std::lock_guard<std::mutex> guard{print_mtx};
  std::cout << label;
  for (auto& x : global_resource)
    std::cout << " " << x;
  std::cout << std::endl;
}

void change_resource(actors::lock* l, std::string para, double sleep) {
  if (l)
    l->lock();
  for (auto& x : global_resource) {
    x = para;
    demo::sleep_seconds(sleep);
  }
  print(l ? "locked:" : "unlocked:");
  if (l)
    l->unlock();
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  auto lock = actors::make_lock();
  for (actors::lock* l : {&lock, static_cast<actors::lock*>(nullptr)}) {
    // Each thread gets its own handle: the holder is the calling thread.
    auto mine = l ? *l : actors::lock{};
    auto theirs = l ? *l : actors::lock{};
    std::thread hi{change_resource, l ? &mine : nullptr, "hi", 2.0};
    std::thread hello{change_resource, l ? &theirs : nullptr, "hello", 1.0};
    hi.join();
    hello.join();
  }
}
// readme: end tour
