import multiprocessing as mp
import time

def func(msg):
    print("msg:", msg)
    time.sleep(2)
    print("end")

if __name__ == "__main__":
    pool = mp.Pool(2)
    pool.map_async(func, range(5))

    print("start")
    pool.close()
    pool.join()
    print("done.")

# 输出：
# start
# msg: 0
# msg: 1

# end
# end
# msg: 2
# msg: 3
# end
# end

# msg: 4
# end
# done.
