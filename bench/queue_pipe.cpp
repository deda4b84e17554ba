// Queue and pipe between two processes: small-message and 1 MiB throughput
// through a queue, one 256 MiB item through a queue (from the producer's
// start until get returns: what bad_input.cpp checks), ping-pong round trip
// (also while two other processes burn both cores) and 1 MiB one-way
// throughput through a pipe. Then S7's own shape: a queue of this process
// (which only waits) between children, small items from a producer child
// to one or three consumer children, unbounded, bounded (maxsize 100) and
// with the cores busy, and a pipe ping-pong between two children; and an
// event-based actor in a child as the consumer (a subscription); each
// with the CPU time of every process per item or round trip ("... CPU",
// every child writing its own total into a shared array at its end).
// Peer: peers/queue_pipe.py. Processes are not pinned.
// Usage: bench_queue_pipe [small_count]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
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

// Microseconds per round trip of n - 1 after a first one (which waits for
// the other end to start).
double timed_pings(actors::connection<int>& c, int n) {
  c.send(0);
  c.recv();
  auto t0 = clock_type::now();
  for (int i = 1; i < n; ++i) {
    c.send(i);
    c.recv();
  }
  return seconds_since(t0) / (n - 1) * 1e6;
}

// Round trips through a pipe to a child that sends each message back.
void pipe_ping_pong(int n, const char* workload) {
  auto [a, b] = actors::pipe<int>();
  actors::process p{pong, b, n};
  p.start();
  auto us = timed_pings(a, n);
  p.join();
  std::printf("libactors %s: %.1f us per round trip\n", workload, us);
}

// -- between children --------------------------------------------------------

// Each child writes the CPU seconds it has used into its slot at its end.
void producer_child(actors::queue<int> q, int n, actors::array<double> cpu,
                    std::size_t slot) {
  queue_producer(q, n);
  cpu[slot] = cpu_seconds_self();
}

void consumer_child(actors::queue<int> q, int n, actors::array<double> cpu,
                    std::size_t slot) {
  for (int i = 0; i < n; ++i)
    q.get();
  cpu[slot] = cpu_seconds_self();
}

// `n` items from one producer child to `consumers` consumer children through
// a queue of this process, which only starts and joins them.
void child_to_child(const char* workload, int n, long maxsize, int consumers) {
  actors::queue<int> q{maxsize};
  auto cpu = actors::make_raw_array<double>(1 + consumers);
  std::vector<actors::process> ps;
  ps.emplace_back(producer_child, q, n, cpu, std::size_t{0});
  for (int c = 0; c < consumers; ++c)
    ps.emplace_back(consumer_child, q, n / consumers, cpu,
                    static_cast<std::size_t>(1 + c));
  auto c0 = cpu_seconds_self();
  auto t0 = clock_type::now();
  for (auto& p : ps)
    p.start();
  for (auto& p : ps)
    p.join();
  auto s = seconds_since(t0);
  auto total = cpu_seconds_self() - c0;
  for (double x : cpu)
    total += x;
  std::printf("libactors %s: %.0f msgs/s\n", workload, n / s);
  std::printf("libactors %s CPU: %.2f us\n", workload, total / n * 1e6);
}

// An event-based actor subscribed to `q` (actors/mailbox.hpp): takes `n`
// items, then writes its process's CPU seconds into cpu[slot] and ends.
caf::behavior consumer_actor(caf::event_based_actor* self,
                             actors::queue<int> q, int n,
                             actors::array<double> cpu, std::size_t slot) {
  auto left = std::make_shared<int>(n);
  actors::subscribe(
    self, q,
    [=](int) {
      if (--*left == 0) {
        cpu[slot] = cpu_seconds_self();
        self->quit();
      }
    },
    [=](const actors::error&) { self->quit(); });
  return {[](caf::unit_t) {}};
}

// S7 with an actor as the consumer: `n` items from a producer child to an
// actor in a child, through a queue of this process (which only waits).
void actor_consumer(const char* workload, int n) {
  actors::queue<int> q{actors::unbounded};
  auto cpu = actors::make_raw_array<double>(2);
  auto c0 = cpu_seconds_self();
  auto t0 = clock_type::now();
  auto consumer = actors::spawn(consumer_actor, q, n, cpu, std::size_t{1});
  actors::process producer{producer_child, q, n, cpu, std::size_t{0}};
  producer.start();
  producer.join();
  consumer.join();
  auto s = seconds_since(t0);
  auto total = cpu_seconds_self() - c0 + cpu[0] + cpu[1];
  std::printf("libactors %s: %.0f msgs/s\n", workload, n / s);
  std::printf("libactors %s CPU: %.2f us\n", workload, total / n * 1e6);
}

// Writes the time per round trip and its CPU seconds into out[0] and out[1].
void ping_child(actors::connection<int> c, int n, actors::array<double> out) {
  out[0] = timed_pings(c, n);
  out[1] = cpu_seconds_self();
}

void pong_child(actors::connection<int> c, int n, actors::array<double> out) {
  pong(std::move(c), n);
  out[2] = cpu_seconds_self();
}

void pipe_child_to_child(int n) {
  auto [a, b] = actors::pipe<int>();
  auto out = actors::make_raw_array<double>(3);
  actors::process ping{ping_child, a, n, out}, pong{pong_child, b, n, out};
  ping.start();
  pong.start();
  ping.join();
  pong.join();
  std::printf("libactors pipe ping-pong, child to child: %.1f us\n", out[0]);
  std::printf("libactors pipe ping-pong, child to child CPU: %.1f us\n",
              (out[1] + out[2]) / n * 1e6);
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
  const int items = small - small % 3; // three consumers take a third each
  child_to_child("queue small, child to child", items, actors::unbounded, 1);
  child_to_child("queue small, child to child, maxsize 100", items, 100, 1);
  child_to_child("queue small, 1 producer 3 consumers", items,
                 actors::unbounded, 3);
  pipe_child_to_child(2000);
  actor_consumer("actor queue consumer", items);
  {
    cores_busy burn{2};
    child_to_child("queue small, cores busy", items, actors::unbounded, 1);
  }
}
