# Peer of bench/actors.cpp: a process started until its first message,
# Pipe ping-pong between this process and a child (with the CPU time of both
# per round trip, and again while two other processes burn both cores, then
# with a fresh child per run), and
# between two children (timed in one of them); small items one way through
# a Queue from one child to another, counted by the receiver from the first
# to the last; with the fork start method.
import multiprocessing as mp
import os
import resource
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


def cpu_seconds(pid):
    """CPU seconds (user + system) process pid has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_self():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def burn():
    while True:
        pass


def report_round_trip(n, runs, workload, also=(), fresh=False):
    """Median round trip to a ponging child, and CPU of both per trip
    (printed for `workload` and the libactors variants `also` of it).
    With `fresh`, each run has a child of its own (started before it,
    joined after it, neither timed), as bench/actors.cpp's cores-busy
    rows do: which cores the pair gets once they are busy is drawn once
    per pair."""
    us, cpu = [], []
    children = 1 if not fresh else runs
    per_child = runs if not fresh else 1
    for _ in range(children):
        a, b = mp.Pipe()
        p = mp.Process(target=pong, args=(b, 100 + per_child * n))
        p.start()
        round_trip(a, 100)
        for _ in range(per_child):
            c0 = cpu_self() + cpu_seconds(p.pid)
            us.append(round_trip(a, n))
            cpu.append((cpu_self() + cpu_seconds(p.pid) - c0) / n * 1e6)
        p.join()
    for name in (workload, *also):
        print(f"python {name}: median {statistics.median(us):.1f} us")
        print(f"python {name} CPU: median {statistics.median(cpu):.1f} us")


def count(q, n, out):
    q.get()
    t0 = time.perf_counter()
    for _ in range(n - 1):
        q.get()
    out.send((n - 1) / (time.perf_counter() - t0))


def produce(q, n):
    for i in range(n):
        q.put(i)


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

    report_round_trip(n, runs, "actor round trip",
                      ["actor round trip, scoped_actor"])
    burners = [mp.Process(target=burn, daemon=True) for _ in range(2)]
    for b in burners:
        b.start()
    report_round_trip(n // 4, runs, "actor round trip, cores busy",
                      ["actor round trip, scoped_actor, cores busy"],
                      fresh=True)
    for b in burners:
        b.kill()
        b.join()

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

    messages = 20000
    rates = []
    for _ in range(3):
        q = mp.Queue()
        r, w = mp.Pipe(duplex=False)
        consumer = mp.Process(target=count, args=(q, messages, w))
        producer = mp.Process(target=produce, args=(q, messages))
        consumer.start()
        producer.start()
        rates.append(r.recv())
        producer.join()
        consumer.join()
    print(f"python actor messages one-way: median "
          f"{statistics.median(rates):.0f} msgs/s")
