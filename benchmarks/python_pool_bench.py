#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Per-task overhead of libswarm.Pool with a no-op Python engine against
concurrent.futures.ThreadPoolExecutor with a no-op function, per worker count (issue 11:
"within 1.5x of ThreadPoolExecutor and not growing with workers").

Each run submits --n tasks from the main thread and waits for every future; tasks/s is
n / wall time. Both sides pay the same kind of work: a Future per task, a queue hop to a worker
thread, a Python call on that thread, and the completion of the future. Median of --repeat.

Run after building:  PYTHONPATH=python python3 benchmarks/python_pool_bench.py [--n 20000]
"""
import argparse
import concurrent.futures
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import libswarm as swarm  # noqa: E402


def noop_engine(req):
    return None


def noop():
    return None


def run_pool(workers: int, n: int) -> float:
    eng = swarm.Engine.from_python(noop_engine)
    with swarm.Pool(eng, workers=workers, max_workers=max(workers, 1),
                    queue_capacity=max(1024, n)) as pool:
        pool.submit(b"").result(30)              # workers up
        t = time.perf_counter()
        futs = [pool.submit(b"") for _ in range(n)]
        concurrent.futures.wait(futs, timeout=600)
        dt = time.perf_counter() - t
    eng.close()
    return n / dt


def run_tpe(workers: int, n: int) -> float:
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        list(ex.map(lambda _: None, range(workers * 2)))   # threads up
        t = time.perf_counter()
        futs = [ex.submit(noop) for _ in range(n)]
        concurrent.futures.wait(futs, timeout=600)
        dt = time.perf_counter() - t
    return n / dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workers", default="1,2,4,8")
    args = ap.parse_args()
    print(f"libswarm {swarm.version_string()} ({swarm.library_path()}), Python "
          f"{sys.version.split()[0]}, n={args.n}, median of {args.repeat}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'workers':>7s} {'Pool tasks/s':>13s} {'TPE tasks/s':>12s} {'Pool us/task':>13s} "
          f"{'TPE us/task':>12s} {'ratio':>6s}")
    for w in [int(x) for x in args.workers.split(",")]:
        # Interleave the two so that machine noise hits both alike.
        ps, ts = [], []
        for _ in range(args.repeat):
            ps.append(run_pool(w, args.n))
            ts.append(run_tpe(w, args.n))
        p, t = statistics.median(ps), statistics.median(ts)
        print(f"{w:7d} {p:13,.0f} {t:12,.0f} {1e6 / p:13.1f} {1e6 / t:12.1f} {t / p:6.2f}")
    print("ratio = Pool time per task / ThreadPoolExecutor time per task (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
