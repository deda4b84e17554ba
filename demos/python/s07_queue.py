import multiprocessing as mp


def producer(queue):
    """producer function"""
    for i in range(10):
        queue.put(i)
    queue.put(None)


def consumer(queue):
    """consumer function"""
    while True:
        item = queue.get()
        if item is None:
            break
        print(item)


if __name__ == "__main__":
    queue = mp.Queue()
    p1 = mp.Process(target=producer, args=(queue,))
    p2 = mp.Process(target=consumer, args=(queue,))
    p1.start()
    p2.start()
    p1.join()
    p2.join()
