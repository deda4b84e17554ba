// S9 — Pipe duplex and poll.
//
// The Python it mirrors (seed, "Pipe", second part):
//
//     conn1, conn2 = Pipe(duplex=True)
//     conn1.send('A')
//     print(conn1.poll())                 # False: nothing for conn1
//     print(conn2.poll())                 # True: 'A' waits for conn2
//     print(conn2.recv(), conn2.poll(2))  # 'A False', after waiting 2 s
//
// What it shows: poll() answers at once, poll(2 s) waits up to 2 s; a
// one-way pipe (duplex=False) rejects a send on its read end with a clear
// error; recv after the other end closed and the pipe drained raises the
// end-of-pipe error (Python's EOFError).
//
// Run it: build/demos/s09_pipe_poll

#include <chrono>
#include <iostream>
#include <string>

#include "actors/all.hpp"

// readme: begin tour
int main(int argc, char** argv) {
  actors::init(argc, argv);
  std::cout << std::boolalpha;

  auto [conn1, conn2] = actors::pipe<std::string>(/*duplex=*/true);
  conn1.send("A");
  std::cout << "conn1.poll() " << conn1.poll() << std::endl;
  std::cout << "conn2.poll() " << conn2.poll() << std::endl;
  auto received = conn2.recv();
  auto t0 = std::chrono::steady_clock::now();
  auto ready = conn2.poll(std::chrono::seconds{2});
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - t0);
  std::cout << "conn2.recv() " << received << ", conn2.poll(2s) " << ready
            << " after " << waited.count() << " ms" << std::endl;

  auto [reader, writer] = actors::pipe<std::string>(/*duplex=*/false);
  writer.send("one way");
  std::cout << "reader.recv() " << reader.recv() << std::endl;
  try {
    reader.send("back");
  } catch (const actors::error& e) {
    std::cout << "reader.send(): " << e.code().message() << std::endl;
  }

  writer.send("last");
  writer.close();
  std::cout << "reader.recv() " << reader.recv() << std::endl;
  try {
    reader.recv();
  } catch (const actors::error& e) {
    std::cout << "reader.recv() after close: " << e.code().message()
              << std::endl;
  }
}
// readme: end tour
