import os
import multiprocessing as mp
import tqdm


def process_file(file_path):
    return file_path


def process(args):
    file_list, start, end = args
    result = []
    # 处理单个文件的函数
    for i in tqdm.tqdm(range(end - start)):
        result.append(process_file(file_list[start + i]))
    return result


if __name__ == "__main__":
    # 获取待处理文件列表
    file_list = []
    for root, dirs, files in os.walk(r"D:\project"):
        for file in files:
            file_list.append(os.path.join(root, file))

    num_processes = 2
    each_process_files = len(file_list) // num_processes
    pool = mp.Pool(num_processes)
    asyncResult = []
    for i in range(num_processes):
        start = each_process_files * i
        end = each_process_files * (i + 1) if i<num_processes-1 else len(file_list)
        asyncResult.append(pool.apply_async(process, [(file_list, start, end)]))

    pool.close()
    pool.join()
    # 输出处理结果
    for result in asyncResult:
        print(result.get()[0])
