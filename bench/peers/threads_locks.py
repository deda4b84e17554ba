# Peer of bench/threads_locks.cpp: ThreadPool(2) (each rate the median of 5
# runs), threading.Lock and multiprocessing.Lock.
import multiprocessing as mp
import threading
import time
from multiprocessing.pool import ThreadPool


def report(what, per_second, unit):
    print(f"python {what}: {per_second:.0f} {unit}")


def median_rate(n, run):
    """The median rate of n items per call of run, over 5 calls."""
    rates = []
    for _ in range(5):
        t0 = time.perf_counter()
        run()
        rates.append(n / (time.perf_counter() - t0))
    rates.sort()
    return rates[len(rates) // 2]


def sections(lock, n):
    for _ in range(n):
        lock.acquire()
        lock.release()


if __name__ == "__main__":
    mp.set_start_method("fork")
    offset = 1
    trivial = lambda x: x + offset  # noqa: E731 (a closure, as in the C++)
    with ThreadPool(2) as tp:
        tp.map(trivial, [0] * 100)
        big, small = list(range(100000)), list(range(20000))
        report("thread_pool map 100k default chunksize", median_rate(len(big), lambda: tp.map(trivial, big)), "tasks/s")
        report("thread_pool map chunksize 1", median_rate(len(small), lambda: tp.map(trivial, small, 1)), "tasks/s")

        def imap():
            for _ in tp.imap(trivial, small, 1):
                pass
        report("thread_pool imap chunksize 1", median_rate(len(small), imap), "tasks/s")

        def apply_async():
            rs = [tp.apply_async(trivial, (x,)) for x in small]
            for r in rs:
                r.get()
        report("thread_pool apply_async x 20k", median_rate(len(small), apply_async), "tasks/s")
    n = 20000
    lock = threading.Lock()
    t0 = time.perf_counter()
    sections(lock, n)
    report("lock uncontended, one thread", n / (time.perf_counter() - t0), "acquire+release/s")
    t0 = time.perf_counter()
    ts = [threading.Thread(target=sections, args=(lock, n // 2)) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    report("lock contended, two threads", n / (time.perf_counter() - t0), "acquire+release/s")
    mlock = mp.Lock()
    ps = [mp.Process(target=sections, args=(mlock, n // 2)) for _ in range(2)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    report("lock contended, two processes", n / (time.perf_counter() - t0), "acquire+release/s")
