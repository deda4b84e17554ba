# Peer of bench/actors.cpp: a process started until its first message, and
# Pipe ping-pong between this process and a child, and between two
# children (timed in one of them), with the fork start method.
import multiprocessing as mp
import statistics
import sys
import time


def hello(c):
    c.send(0)


def pong(c, n):
    for _ in range(n):
        c.send(c.recv() + 1)


def round_trip(c, n):
    """Microseconds per round trip of n messages through c."""
    t0 = time.perf_counter()
    for i in range(n):
        c.send(i)
        c.recv()
    return (time.perf_counter() - t0) / n * 1e6


def ping(c, n, runs, out):
    round_trip(c, 100)  # warm-up
    out.send(statistics.median(round_trip(c, n) for _ in range(runs)))


if __name__ == "__main__":
    mp.set_start_method("fork")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    runs = 5
    ms = []
    for i in range(51 + 3):
        a, b = mp.Pipe()
        p = mp.Process(target=hello, args=(b,))
        t0 = time.perf_counter()
        p.start()
        a.recv()
        if i >= 3:  # the first runs bring the runtime up
            ms.append((time.perf_counter() - t0) * 1e3)
        p.join()  # not timed
    print(f"python actor spawn+first reply: median "
          f"{statistics.median(ms):.3f} ms")

    a, b = mp.Pipe()
    p = mp.Process(target=pong, args=(b, 100 + runs * n))
    p.start()
    round_trip(a, 100)
    us = statistics.median(round_trip(a, n) for _ in range(runs))
    p.join()
    print(f"python actor round trip: median {us:.1f} us")

    a, b = mp.Pipe()
    r, w = mp.Pipe(duplex=False)
    pinger = mp.Process(target=ping, args=(a, n, runs, w))
    ponger = mp.Process(target=pong, args=(b, 100 + runs * n))
    ponger.start()
    pinger.start()
    us = r.recv()
    pinger.join()
    ponger.join()
    print(f"python actor round trip between processes: median {us:.1f} us")
