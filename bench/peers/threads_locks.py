# Peer of bench/threads_locks.cpp: ThreadPool(2) (each rate the median of 5
# runs), threading.Lock, multiprocessing.Lock, Value and shared_memory.
import multiprocessing as mp
import threading
import time
from multiprocessing import shared_memory
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


def add_under_lock(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def square_part(name, first, last):
    """Squares the doubles [first, last) of the block `name`, in place."""
    block = shared_memory.SharedMemory(name)
    cells = block.buf.cast("d")
    for i in range(first, last):
        cells[i] = cells[i] * cells[i]
    cells.release()
    block.close()
    return last - first


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
    counter = mp.Value("l", 0)
    ps = [mp.Process(target=add_under_lock, args=(counter, n // 2)) for _ in range(2)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    report("value += 1 under its lock, 2 processes", n / (time.perf_counter() - t0), "increments/s")
    cells = 10000000
    block = shared_memory.SharedMemory(create=True, size=cells * 8)
    view = block.buf.cast("d")
    for i in range(cells):
        view[i] = float(i % 1000)
    view.release()
    with mp.Pool(2) as pool:
        pool.apply(square_part, (block.name, 0, 0))
        t0 = time.perf_counter()
        a = pool.apply_async(square_part, (block.name, 0, cells // 2))
        b = pool.apply_async(square_part, (block.name, cells // 2, cells))
        done = a.get() + b.get()
        report("shared array square in place", done / (time.perf_counter() - t0), "elements/s")
    block.close()
    block.unlink()
    with mp.Manager() as m:
        d, lst, calls = m.dict(), m.list(), 5000
        d[0] = 0

        def set_get():
            for i in range(calls):
                d[i] = i
                assert d[i] == i

        def append():
            for i in range(calls):
                lst.append(i)

        report("manager dict set+get", median_rate(calls, set_get), "pairs/s")
        report("manager list append", median_rate(calls, append), "appends/s")
