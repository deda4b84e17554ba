# Peer of bench/queue_pipe.cpp, same workloads with Python multiprocessing.
import multiprocessing as mp
import resource
import sys
import time


def queue_producer(q, n):
    for i in range(n):
        q.put(i)


def queue_big_producer(q, n):
    mib = b"x" * (1 << 20)
    for _ in range(n):
        q.put(mib)


def queue_huge_producer(q):
    q.put(b"x" * (256 << 20))


def pong(c, n):
    for _ in range(n):
        c.send(c.recv())


def pipe_big_sender(c, n):
    mib = b"x" * (1 << 20)
    for _ in range(n):
        c.send_bytes(mib)


def timed_pings(c, n):
    """Microseconds per round trip of n - 1 after a first one (which waits
    for the other end to start)."""
    c.send(0)
    c.recv()
    t0 = time.perf_counter()
    for i in range(1, n):
        c.send(i)
        c.recv()
    return (time.perf_counter() - t0) / (n - 1) * 1e6


def cpu_self():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def producer_child(q, n, cpu, slot):
    queue_producer(q, n)
    q.close()
    q.join_thread()  # the feeder thread's work counts too
    cpu[slot] = cpu_self()


def consumer_child(q, n, cpu, slot):
    for _ in range(n):
        q.get()
    cpu[slot] = cpu_self()


def child_to_child(workload, n, maxsize, consumers):
    q = mp.Queue(maxsize)
    cpu = mp.RawArray("d", 1 + consumers)
    ps = [mp.Process(target=producer_child, args=(q, n, cpu, 0))]
    ps += [mp.Process(target=consumer_child,
                      args=(q, n // consumers, cpu, 1 + c))
           for c in range(consumers)]
    c0 = cpu_self()
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    s = time.perf_counter() - t0
    total = cpu_self() - c0 + sum(cpu)
    print(f"python {workload}: {n / s:.0f} msgs/s")
    print(f"python {workload} CPU: {total / n * 1e6:.2f} us")


def ping_child(c, n, out):
    out[0] = timed_pings(c, n)
    out[1] = cpu_self()


def pong_child(c, n, out):
    pong(c, n)
    out[2] = cpu_self()


def pipe_child_to_child(n):
    a, b = mp.Pipe()
    out = mp.RawArray("d", 3)
    ps = [mp.Process(target=ping_child, args=(a, n, out)),
          mp.Process(target=pong_child, args=(b, n, out))]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    print(f"python pipe ping-pong, child to child: {out[0]:.1f} us")
    print(f"python pipe ping-pong, child to child CPU: "
          f"{(out[1] + out[2]) / n * 1e6:.1f} us")


def burn():
    while True:
        pass


def pipe_ping_pong(n, workload):
    a, b = mp.Pipe()
    p = mp.Process(target=pong, args=(b, n))
    p.start()
    us = timed_pings(a, n)
    p.join()
    print(f"python {workload}: {us:.1f} us per round trip")


if __name__ == "__main__":
    mp.set_start_method("fork")
    small = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    q = mp.Queue()
    p = mp.Process(target=queue_producer, args=(q, small))
    t0 = time.perf_counter()
    p.start()
    for _ in range(small):
        q.get()
    s = time.perf_counter() - t0
    p.join()
    print(f"python queue small: {small / s:.0f} msgs/s")

    n = 200
    q = mp.Queue()
    p = mp.Process(target=queue_big_producer, args=(q, n))
    t0 = time.perf_counter()
    p.start()
    for _ in range(n):
        q.get()
    s = time.perf_counter() - t0
    p.join()
    print(f"python queue 1 MiB: {n * 1048576 / s / 1e9:.2f} GB/s")

    q = mp.Queue()
    p = mp.Process(target=queue_huge_producer, args=(q,))
    t0 = time.perf_counter()
    p.start()
    item = q.get()
    s = time.perf_counter() - t0
    p.join()
    assert len(item) == 256 << 20
    del item
    print(f"python queue 256 MiB item: {s * 1e3:.0f} ms")

    pipe_ping_pong(2000, "pipe ping-pong")
    burners = [mp.Process(target=burn, daemon=True) for _ in range(2)]
    for b in burners:
        b.start()
    pipe_ping_pong(500, "pipe ping-pong, cores busy")
    for b in burners:
        b.kill()
        b.join()

    n = 200
    r, w = mp.Pipe(duplex=False)
    p = mp.Process(target=pipe_big_sender, args=(w, n))
    t0 = time.perf_counter()
    p.start()
    for _ in range(n):
        r.recv_bytes()
    s = time.perf_counter() - t0
    p.join()
    print(f"python pipe 1 MiB one-way: {n * 1048576 / s / 1e9:.2f} GB/s")

    items = small - small % 3  # three consumers take a third each
    child_to_child("queue small, child to child", items, 0, 1)
    child_to_child("queue small, child to child, maxsize 100", items, 100, 1)
    child_to_child("queue small, 1 producer 3 consumers", items, 0, 3)
    pipe_child_to_child(2000)
    # Python has no actors: its peer is the same child-to-child Queue.
    child_to_child("actor queue consumer", items, 0, 1)
    burners = [mp.Process(target=burn, daemon=True) for _ in range(2)]
    for b in burners:
        b.start()
    child_to_child("queue small, cores busy", items, 0, 1)
    for b in burners:
        b.kill()
        b.join()
