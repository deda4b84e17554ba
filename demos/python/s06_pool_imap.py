#imap
import multiprocessing as mp
import time

def func(msg):
    print("msg: ", msg)
    time.sleep(4-msg)
    return msg

if __name__ == "__main__":
    pool = mp.Pool(3)
    results = pool.imap(func, range(3))
    for res in results:
        print("res: ",res)

    print("start")
    pool.close()
    pool.join()

    print("done.")

# 输出
# msg: 0
# msg: 1
# msg: 2
# res: 0
# res: 1
# res: 2
# start
# done.
