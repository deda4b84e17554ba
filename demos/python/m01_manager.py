# Python's peer of demos/m01_manager.cpp: a pool fills a Manager's dict and
# list, and counts in a Namespace under a Lock.
import multiprocessing as mp
import os


def measure(d, who, ns, lock, word):
    d.setdefault(word, len(word))
    who.append(os.getpid())
    with lock:
        ns.counted += 1
    return 0


if __name__ == "__main__":
    with mp.Manager() as m:
        d, who, ns, lock = m.dict(), m.list(), m.Namespace(), m.Lock()
        ns.counted = 0
        words = ["actors", "pool", "queue", "pipe", "lock", "actors",
                 "manager", "dict"]
        with mp.Pool(2) as pool:
            pool.starmap(measure, [(d, who, ns, lock, w) for w in words])
        print("dict:", " ".join(f"{k}={v}" for k, v in d.items()))
        print(f"list: {len(who)} entries from {len(set(who))} workers")
        print("counted:", ns.counted)
