# Peer of bench/pool.cpp: the same workloads with multiprocessing.Pool(2).
import multiprocessing as mp
import os
import time


def trivial(x):
    return x + 1


def add(a, b):
    return a + b


def burn(seed):
    x = float(seed)
    for _ in range(250_000):  # Python is ~10x slower per step: ~5 ms
        x = x * 1.0000001 + 1e-9
    return x


def worker_pid(_):
    return os.getpid()


def peak_rss_mb(pid):
    """Peak resident memory of a process in MB (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def report(what, per_second):
    print(f"python {what}: {per_second:.0f} tasks/s")


if __name__ == "__main__":
    mp.set_start_method("fork")
    t0 = time.perf_counter()
    with mp.Pool(2) as p:
        p.apply(trivial, (1,))
        p.close()
        p.join()
    print(f"python pool start+task+shutdown: {(time.perf_counter() - t0) * 1e3:.1f} ms")
    with mp.Pool(2) as p:
        p.map(trivial, [0] * 100)
        big, small = list(range(100000)), list(range(20000))
        t0 = time.perf_counter()
        p.map(trivial, big)
        report("map 100k default chunksize", len(big) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        p.map(trivial, small, 1)
        report("map chunksize 1", len(small) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in p.imap(trivial, small, 1):
            pass
        report("imap chunksize 1", len(small) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in p.imap(trivial, big, 256):
            pass
        report("imap chunksize 256", len(big) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in p.imap_unordered(trivial, small, 1):
            pass
        report("imap_unordered chunksize 1", len(small) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        rs = [p.apply_async(trivial, (x,)) for x in small]
        for r in rs:
            r.get()
        report("apply_async x 20k", len(small) / (time.perf_counter() - t0))
        pairs = [(x, x) for x in big]
        t0 = time.perf_counter()
        p.starmap(add, pairs)
        report("starmap 100k", len(pairs) / (time.perf_counter() - t0))
        cpu = list(range(200))
        t0 = time.perf_counter()
        for x in cpu:
            burn(x)
        serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        p.map(burn, cpu, 1)
        parallel = time.perf_counter() - t0
        print(f"python CPU-bound map speedup: {serial / parallel:.2f}x (serial {serial:.2f} s)")
        workers = set(p.map(worker_pid, [0] * 200, 1))
        print(f"python peak RSS of a worker: {max(peak_rss_mb(w) for w in workers):.1f} MB")
        print(f"python peak RSS of the owner: {peak_rss_mb(os.getpid()):.1f} MB")
