import multiprocessing as mp
import time

def func(msg1, msg2):
    print("msg1:", msg1, "msg2:", msg2)
    time.sleep(2)
    print("end")

if __name__ == "__main__":
    pool = mp.Pool(2)
    msgs = [(1, 1), (2, 2)]
    pool.starmap_async(func, msgs)

    print("start")
    pool.close()
    pool.join()
    print("done.")

# 输出：
# start
# msg1: 1 msg2: 1
# msg1: 2 msg2: 2
# end
# end
# done.
##
