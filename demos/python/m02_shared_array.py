# Python's peer of demos/m02_shared_array.cpp: a pool squares an array in
# place in one SharedMemory block (a numpy array over block.buf where numpy
# is installed; a memoryview cast to doubles otherwise).
import multiprocessing as mp
import os
import sys
from multiprocessing import shared_memory


def square_slice(name, first, last):
    block = shared_memory.SharedMemory(name)
    try:
        import numpy as np
        cells = np.ndarray((last,), dtype=np.float64, buffer=block.buf)
        cells[first:last] **= 2
        del cells
    except ImportError:
        cells = block.buf.cast("d")
        for i in range(first, last):
            cells[i] = cells[i] * cells[i]
        cells.release()
    block.close()
    return os.getpid()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000_000
    block = shared_memory.SharedMemory(create=True, size=n * 8)
    cells = block.buf.cast("d")
    for i in range(n):
        cells[i] = float(i % 1000)
    slices = 16
    with mp.Pool() as pool:
        parts = [pool.apply_async(square_slice, (block.name, n * k // slices, n * (k + 1) // slices))
                 for k in range(slices)]
        workers = {p.get() for p in parts}
    print(f"squared {n} doubles in place in {slices} slices")
    print(f"sum of squares {sum(cells)}")
    print(f"workers that took part: {len(workers)}")
    cells.release()
    block.close()
    block.unlink()
