import multiprocessing as mp


def func(id):
    print(f'id {id}\n')

def run__process():  # 这里是主进程
    process = [mp.Process(target=func, args=(1,)),
               mp.Process(target=func, args=(2,)), ]
    [p.start() for p in process]  # 开启了两个进程
    print("start")
    [p.join() for p in process]   # 等待两个进程依次结束
    print("end")

if __name__ =='__main__':
    run__process()
