#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Python send/recv round trips per second: libswarm channels (through the ctypes binding)
against the standard library's queue.Queue, in the same run and process.

Three workloads, each measured for both implementations:

* ``same-thread``: one thread does send then recv, repeatedly (binding + call overhead).
* ``ping-pong``: two threads; A sends a message, B receives it and replies on a second channel,
  A receives the reply (a true cross-thread round trip: wake-ups included).
* ``pipeline``: 2 producers and 2 consumers move N objects through one bounded channel
  (throughput, items/s; a round trip here is one send plus one receive).
* ``batches of 64``: send_batch + recv_batch of 64 elements in one thread, items/s, against
  queue.Queue's put + get per item (queue.Queue has no batch operation).

Run after building:  PYTHONPATH=python python3 benchmarks/python_chan_bench.py [--n 200000]
Prints the median of --repeat runs for each and the ratio libswarm / queue.Queue.
"""
import argparse
import os
import queue
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import libswarm as swarm  # noqa: E402


def same_thread_swarm(n: int) -> float:
    ch = swarm.ObjectChannel(1024)
    item = ("payload", 1)
    t = time.perf_counter()
    for _ in range(n):
        ch.send(item)
        ch.recv()
    dt = time.perf_counter() - t
    ch.destroy()
    return n / dt


def same_thread_swarm_bytes(n: int) -> float:
    ch = swarm.Channel(1024, 8)
    msg = b"12345678"
    t = time.perf_counter()
    for _ in range(n):
        ch.send(msg)
        ch.recv()
    dt = time.perf_counter() - t
    ch.destroy()
    return n / dt


def batch_swarm(n: int, k: int = 64) -> float:
    ch = swarm.ObjectChannel(1024)
    items = [("payload", i) for i in range(k)]
    t = time.perf_counter()
    for _ in range(n // k):
        ch.send_batch(items)
        ch.recv_batch(k)
    dt = time.perf_counter() - t
    ch.destroy()
    return (n // k) * k / dt


def batch_swarm_bytes(n: int, k: int = 64) -> float:
    ch = swarm.Channel(1024, 8)
    items = [b"12345678"] * k
    t = time.perf_counter()
    for _ in range(n // k):
        ch.send_batch(items)
        ch.recv_batch(k)
    dt = time.perf_counter() - t
    ch.destroy()
    return (n // k) * k / dt


def same_thread_queue(n: int) -> float:
    q: "queue.Queue" = queue.Queue(1024)
    item = ("payload", 1)
    t = time.perf_counter()
    for _ in range(n):
        q.put(item)
        q.get()
    return n / (time.perf_counter() - t)


def ping_pong(make, n: int) -> float:
    a, b = make(), make()
    send_a, recv_a, send_b, recv_b = a[0], a[1], b[0], b[1]

    def echo():
        for _ in range(n):
            send_b(recv_a())
    th = threading.Thread(target=echo)
    th.start()
    t = time.perf_counter()
    for i in range(n):
        send_a(i)
        recv_b()
    dt = time.perf_counter() - t
    th.join()
    for c in a[2:] + b[2:]:
        c()
    return n / dt


def swarm_pair():
    ch = swarm.ObjectChannel(64)
    return (ch.send, ch.recv, ch.destroy)


def queue_pair():
    q: "queue.Queue" = queue.Queue(64)
    return (q.put, q.get)


def pipeline(kind: str, n: int) -> float:
    if kind == "swarm":
        ch = swarm.ObjectChannel(256)
        put, get = ch.send, ch.recv
    else:
        q: "queue.Queue" = queue.Queue(256)
        put, get = q.put, q.get
    per = n // 2

    def prod():
        for i in range(per):
            put(i)
    done = object()

    def cons():
        while get() is not done:
            pass
    cs = [threading.Thread(target=cons) for _ in range(2)]
    ps = [threading.Thread(target=prod) for _ in range(2)]
    t = time.perf_counter()
    for th in cs + ps:
        th.start()
    for th in ps:
        th.join()
    for _ in cs:
        put(done)
    for th in cs:
        th.join()
    dt = time.perf_counter() - t
    if kind == "swarm":
        ch.destroy()
    return (2 * per) / dt


def median(fn, repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def main() -> int:
    ap = argparse.ArgumentParser(description="libswarm vs queue.Queue round trips from Python")
    ap.add_argument("--n", type=int, default=200_000, help="round trips per run")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, r = args.n, args.repeat
    print(f"libswarm {swarm.version_string()} ({swarm.library_path()}), Python "
          f"{sys.version.split()[0]}, n={n}, median of {r}")
    rows = [
        ("same-thread send+recv (objects)", lambda: same_thread_swarm(n),
         lambda: same_thread_queue(n)),
        ("same-thread send+recv (8-byte bytes)", lambda: same_thread_swarm_bytes(n),
         lambda: same_thread_queue(n)),
        ("batches of 64: send_batch+recv_batch (objects)", lambda: batch_swarm(n),
         lambda: same_thread_queue(n)),
        ("batches of 64: send_batch+recv_batch (bytes)", lambda: batch_swarm_bytes(n),
         lambda: same_thread_queue(n)),
        ("ping-pong across 2 threads", lambda: ping_pong(swarm_pair, max(1, n // 10)),
         lambda: ping_pong(queue_pair, max(1, n // 10))),
        ("pipeline 2 producers / 2 consumers", lambda: pipeline("swarm", n),
         lambda: pipeline("queue", n)),
    ]
    print(f"{'workload':48s} {'libswarm/s':>12s} {'queue.Queue/s':>14s} {'ratio':>7s}")
    for name, fs, fq in rows:
        ss, qs = [], []
        for _ in range(r):      # interleaved, so that machine noise hits both alike
            ss.append(fs())
            qs.append(fq())
        s, q = statistics.median(ss), statistics.median(qs)
        print(f"{name:48s} {s:12,.0f} {q:14,.0f} {s / q:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
