#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A small inference service in Python on libswarm.

A pool of C worker threads serves requests through an engine that is a plain Python callable
(wrapped in retry and timeout decorators). A reconcile loop with a Kubernetes-HPA policy watches
the pool's backlog (queued + in-flight) and resizes the pool: it scales up under a burst and back
down after it. Every request is accounted for at the end.

Run from the repository root after building (meson setup build && ninja -C build):

    PYTHONPATH=python python3 examples/python/pool_service.py            # ~8 s
    PYTHONPATH=python python3 examples/python/pool_service.py --quick    # ~3 s
"""
import argparse
import collections
import logging
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "python"))
import libswarm as swarm  # noqa: E402


def model(request: swarm.Request) -> bytes:
    """The "model": a Python callable. Runs on a C worker thread, holding the GIL only while
    Python code runs (time.sleep releases it, like real I/O or native inference would)."""
    time.sleep(0.004)                       # pretend to think
    if request.should_stop():               # deadline passed or stop requested
        raise swarm.TimedOut("gave up")
    words = request.payload.decode().split()
    return " ".join(reversed(words)).encode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter phases (CI)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    phase = 0.8 if args.quick else 2.5

    engine = swarm.Engine.from_python(model, name="reverse").retry(2, base=0.001).timeout(2.0)
    results = collections.Counter()
    lock = threading.Lock()

    def on_result(r: swarm.PoolResult) -> None:
        with lock:
            results["ok" if r.ok else swarm.errors.err_name(r.status)] += 1

    pool = swarm.Pool(engine, workers=1, max_workers=16, queue_capacity=8192,
                      on_result=on_result)
    policy = swarm.Policy(swarm.PolicyConfig(
        mode=swarm.Mode.HPA, min_replicas=1, max_replicas=16,
        scale_up=swarm.HpaRules(policies=[swarm.Rate(swarm.RateType.PODS, 8, 1)]),
        scale_down=swarm.HpaRules(window=0.5 if args.quick else 1.0,
                                  policies=[swarm.Rate(swarm.RateType.PERCENT, 50, 1)])))
    events = []

    def actuate(n: int, decision: swarm.Decision) -> None:
        events.append((time.monotonic(), pool.target, n, decision.text))
        pool.resize(n)

    loop = swarm.ReconcileLoop(policy, lambda: pool.observation(target_per_worker=8),
                               actuate, interval=0.1)
    loop.start()

    sent = 0
    t0 = time.monotonic()
    print(f"libswarm {swarm.version_string()} from {swarm.library_path()}")
    for name, rate in (("quiet", 50), ("burst", 1500), ("quiet", 50)):
        print(f"-- {name}: ~{rate} req/s for {phase:.1f} s")
        end = time.monotonic() + phase
        while time.monotonic() < end:
            for _ in range(max(1, rate // 50)):
                pool.submit(f"request number {sent} please".encode(), timeout=5.0)
                sent += 1
            time.sleep(0.02)
            s = pool.stats()
        print(f"   workers target={s['target']} busy={s['busy']} queued={s['queued']}")
    time.sleep(phase)              # let the loop scale back down

    loop.stop()
    for t, cur, new, text in events:
        print(f"   t={t - t0:5.2f}s scale {cur:2d} -> {new:2d}: {text}")
    last = loop.last_decision()
    if last is not None:
        print("last decision:\n" + last.explain())
    left = pool.stop()             # drain everything still queued
    st = pool.stats()
    loop.close()
    pool.close()
    policy.close()
    engine.close()
    total = sum(results.values())
    print(f"sent={sent} delivered={total} {dict(results)} left={len(left)} "
          f"p50={st['service_p50_ns'] / 1e6:.1f}ms p99={st['service_p99_ns'] / 1e6:.1f}ms "
          f"peak-started={st['started']}")
    ok = total + len(left) == sent and max((e[2] for e in events), default=1) > 1
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
