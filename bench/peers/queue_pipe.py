# Peer of bench/queue_pipe.cpp, same workloads with Python multiprocessing.
import multiprocessing as mp
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


def burn():
    while True:
        pass


def pipe_ping_pong(n, workload):
    a, b = mp.Pipe()
    p = mp.Process(target=pong, args=(b, n))
    p.start()
    a.send(0)
    a.recv()
    t0 = time.perf_counter()
    for i in range(1, n):
        a.send(i)
        a.recv()
    s = time.perf_counter() - t0
    p.join()
    print(f"python {workload}: {s / (n - 1) * 1e6:.1f} us per round trip")


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
