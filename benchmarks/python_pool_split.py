#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where a Pool task's time goes, against ThreadPoolExecutor: CPU time of the whole process
(getrusage: user + system, all threads) per task, split into the submit phase (N tasks queued
while no worker runs) and the drain phase (the workers start, the main thread waits for every
future), plus context switches per task. CPU time is far less sensitive than wall time to other
load on a shared machine. Median of --repeat runs.

Run after building:
    SWARM_LIBRARY=build/libswarm.so.0 PYTHONPATH=python python3 benchmarks/python_pool_split.py
"""
import argparse
import concurrent.futures as cf
import gc
import os
import resource
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import libswarm as swarm  # noqa: E402


def noop(req=None):
    return None


def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_nvcsw + r.ru_nivcsw


def pool_run(eng, workers, n):
    p = swarm.Pool(eng, workers=0, max_workers=8, queue_capacity=n + 10)
    c0, s0 = usage()
    fs = [p.submit(b"") for _ in range(n)]
    c1, s1 = usage()
    p.resize(workers)
    cf.wait(fs)
    c2, s2 = usage()
    p.close()
    return c1 - c0, c2 - c1, s1 - s0, s2 - s1


def tpe_run(workers, n):
    gate = threading.Event()
    ex = cf.ThreadPoolExecutor(workers)
    for _ in range(workers):
        ex.submit(gate.wait)            # every worker busy: the tasks queue up
    time.sleep(0.05)
    c0, s0 = usage()
    fs = [ex.submit(noop) for _ in range(n)]
    c1, s1 = usage()
    gate.set()
    cf.wait(fs)
    c2, s2 = usage()
    ex.shutdown()
    return c1 - c0, c2 - c1, s1 - s0, s2 - s1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workers", default="1,4")
    ap.add_argument("--no-gc", action="store_true", help="gc.disable() for the whole run")
    a = ap.parse_args()
    if a.no_gc:
        gc.disable()
    eng = swarm.Engine.from_python(noop)
    print(f"libswarm {swarm.version_string()}, Python {sys.version.split()[0]}, n={a.n}, "
          f"median of {a.repeat}, gc {'off' if a.no_gc else 'on'}")
    print(f"{'workers':>7s} {'':10s} {'submit us':>10s} {'drain us':>9s} {'ctx sw/task':>12s}")
    for w in [int(x) for x in a.workers.split(",")]:
        rows = {"Pool": [pool_run(eng, w, a.n) for _ in range(a.repeat)],
                "TPE": [tpe_run(w, a.n) for _ in range(a.repeat)]}
        for name, runs in rows.items():
            def med(i, scale=1e6):
                return statistics.median(r[i] for r in runs) / a.n * scale
            print(f"{w:7d} {name:10s} {med(0):10.1f} {med(1):9.1f} "
                  f"{med(2, 1) + med(3, 1):12.2f}")
    eng.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
