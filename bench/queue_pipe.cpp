// Queue and pipe between two processes: small-message and 1 MiB throughput
// through a queue, one 256 MiB item through a queue (from the producer's
// start until get returns: what bad_input.cpp checks), ping-pong round trip
// (also while two other processes burn both cores) and 1 MiB one-way
// throughput through a pipe. Peer: peers/queue_pipe.py.
// Processes are not pinned.
// Usage: bench_queue_pipe [small_count]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "actors/all.hpp"
#include "measure.hpp"

namespace {

void queue_producer(actors::queue<int> q, int n) {
  for (int i = 0; i < n; ++i)
    q.put(i);
}

void queue_big_producer(actors::queue<std::string> q, int n) {
  std::string mib(1 << 20, 'x');
  for (int i = 0; i < n; ++i)
    q.put(mib);
}

void queue_huge_producer(actors::queue<std::string> q) {
  q.put(std::string(std::size_t{256} << 20, 'x'));
}

void pong(actors::connection<int> c, int n) {
  for (int i = 0; i < n; ++i)
    c.send(c.recv());
}

void pipe_big_sender(actors::connection<int> c, int n) {
  std::vector<char> mib(1 << 20, 'x');
  for (int i = 0; i < n; ++i)
    c.send_bytes(mib);
}

// Round trips through a pipe to a child that sends each message back.
void pipe_ping_pong(int n, const char* workload) {
  auto [a, b] = actors::pipe<int>();
  actors::process p{pong, b, n};
  p.start();
  a.send(0); // warm-up round trip, includes the child's start
  a.recv();
  auto t0 = clock_type::now();
  for (int i = 1; i < n; ++i) {
    a.send(i);
    a.recv();
  }
  auto s = seconds_since(t0);
  p.join();
  std::printf("libactors %s: %.1f us per round trip\n", workload,
              s / (n - 1) * 1e6);
}

} // namespace

int main(int argc, char** argv) {
  actors::init(argc, argv);
  int small = argc > 1 ? std::atoi(argv[1]) : 20000;
  {
    actors::queue<int> q{actors::unbounded};
    actors::process p{queue_producer, q, small};
    auto t0 = clock_type::now();
    p.start();
    for (int i = 0; i < small; ++i)
      q.get();
    auto s = seconds_since(t0);
    p.join();
    std::printf("libactors queue small: %.0f msgs/s\n", small / s);
  }
  {
    constexpr int n = 200;
    actors::queue<std::string> q{actors::unbounded};
    actors::process p{queue_big_producer, q, n};
    auto t0 = clock_type::now();
    p.start();
    for (int i = 0; i < n; ++i)
      q.get();
    auto s = seconds_since(t0);
    p.join();
    std::printf("libactors queue 1 MiB: %.2f GB/s\n", n * 1048576.0 / s / 1e9);
  }
  {
    actors::queue<std::string> q{actors::unbounded};
    actors::process p{queue_huge_producer, q};
    auto t0 = clock_type::now();
    p.start();
    auto item = q.get();
    auto s = seconds_since(t0);
    p.join();
    if (item.size() != std::size_t{256} << 20)
      return 1;
    std::printf("libactors queue 256 MiB item: %.0f ms\n", s * 1e3);
  }
  pipe_ping_pong(2000, "pipe ping-pong");
  {
    cores_busy burn{2};
    pipe_ping_pong(500, "pipe ping-pong, cores busy");
  }
  {
    constexpr int n = 200;
    auto [a, b] = actors::pipe<int>(false);
    actors::process p{pipe_big_sender, b, n};
    auto t0 = clock_type::now();
    p.start();
    for (int i = 0; i < n; ++i)
      a.recv_bytes();
    auto s = seconds_since(t0);
    p.join();
    std::printf("libactors pipe 1 MiB one-way: %.2f GB/s\n",
                n * 1048576.0 / s / 1e9);
  }
}
