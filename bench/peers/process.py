# Peer of bench/process.cpp: Process start + join with the fork start method.
import multiprocessing as mp
import sys
import time


def noop():
    pass


if __name__ == "__main__":
    mp.set_start_method(sys.argv[2] if len(sys.argv) > 2 else "fork")
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    ms = []
    for i in range(runs + 5):
        t0 = time.perf_counter()
        p = mp.Process(target=noop)
        p.start()
        p.join()
        if i >= 5:
            ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    print(f"python process start+join: median "
          f"{ms[len(ms) // 2]:.3f} ms, min {ms[0]:.3f} ms, max {ms[-1]:.3f} ms "
          f"({runs} runs, {mp.get_start_method()} start method)")
