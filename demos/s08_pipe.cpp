// S8 — Pipe: one end held by process I1, the other shared by I2 and I3.
//
// The Python it mirrors (seed, "Pipe"):
//
//     def func_pipe1(conn, p_id):          # I1
//         conn.send(f"{p_id}_send1"); conn.send(f"{p_id}_send2")
//         print(conn.recv()); print(conn.recv())
//     def func_pipe2(conn, p_id):          # I2 and I3
//         conn.send(p_id)
//         print(conn.recv())
//     conn1, conn2 = mp.Pipe()
//     mp.Process(target=func_pipe1, args=(conn1, "I1")), ...(conn2, "I2"),
//     ...(conn2, "I3")
//
// What it shows: a duplex pipe whose ends live in different processes, one
// end shared by two processes; every message is received exactly once: I1
// gets "I2" and "I3", and I2 and I3 each get one of I1's two messages.
//
// Run it: build/demos/s08_pipe

#include <iostream>
#include <string>

#include "actors/all.hpp"

// readme: begin tour
using conn = actors::connection<std::string>;

void func_pipe1(conn c, std::string id) {
  c.send(id + "_send1");
  std::cout << id << " send1" << std::endl;
  c.send(id + "_send2");
  std::cout << id << " send2" << std::endl;
  std::cout << id << " recv " << c.recv() << std::endl;
  std::cout << id << " recv " << c.recv() << std::endl;
}

void func_pipe2(conn c, std::string id) {
  c.send(id);
  std::cout << id << " send" << std::endl;
  std::cout << id << " recv " << c.recv() << std::endl;
}

int main(int argc, char** argv) {
  actors::init(argc, argv);
  auto [conn1, conn2] = actors::pipe<std::string>();
  actors::process procs[] = {actors::process{func_pipe1, conn1, "I1"},
                             actors::process{func_pipe2, conn2, "I2"},
                             actors::process{func_pipe2, conn2, "I3"}};
  for (auto& p : procs)
    p.start();
  for (auto& p : procs)
    p.join();
  for (auto& p : procs)
    std::cout << p.name() << " exitcode " << *p.exitcode() << std::endl;
}
// readme: end tour
