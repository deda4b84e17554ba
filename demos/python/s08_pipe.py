import time
import multiprocessing as mp

def func_pipe1(conn, p_id):
    conn.send(f"{p_id}_send1")
    print(f"{p_id} send1\n")

    time.sleep(0.1)
    conn.send(f"{p_id}_send2")
    print(f"{p_id} send2\n")

    time.sleep(0.1)
    rec = conn.recv()
    print(f"{p_id} recv {rec}\n")

    time.sleep(0.1)
    rec = conn.recv()
    print(f"{p_id} recv {rec}\n")


def func_pipe2(conn, p_id):
    conn.send(p_id)
    print(f"{p_id} send\n")
    time.sleep(0.1)
    rec = conn.recv()
    print(f"{p_id} recv {rec}\n")


if __name__ == "__main__":

    conn1, conn2 = mp.Pipe()

    process = [
        mp.Process(target=func_pipe1, args=(conn1, "I1")),
        mp.Process(target=func_pipe2, args=(conn2, "I2")),
        mp.Process(target=func_pipe2, args=(conn2, "I3")),
    ]

    [p.start() for p in process]
    [p.join() for p in process]
