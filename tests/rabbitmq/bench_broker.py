# SPDX-License-Identifier: MIT
"""Throughput of one RabbitMQ worker process with the no-op (echo) engine, against a private
rabbitmq-server, with and without publisher confirms; optionally next to the in-process pool.

    bench_broker.py WORKER GATEWAY [--runs=5] [--count=20000] [--bench-pool=PATH]

Each run first measures the gateway's publish rate without confirms (COUNT persistent 32-byte
tasks into a queue nobody reads). Then, twice (worker confirms off, then on): the gateway fills
a fresh durable queue with COUNT tasks with publisher confirms (at most 1024 outstanding; its
publish rate with confirms), and only once all are confirmed (the broker has them and is idle)
one worker process starts (default pool, autoscaled 1..8) and drains the queue; the reply rate
is measured at the gateway, answers per second from the first to the last answer. With
confirms the worker acks a task only after the broker confirmed its reply. Medians are
printed. --bench-pool runs benchmarks/bench_pool (3 runs of 200,000 tasks) for the in-process
figure: a pool of 1 worker with a no-op engine fed by 1 producer thread.
"""
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker import Broker, Proc, kv, log, install_sigterm_cleanup  # noqa: E402


procs = []


def start(name, argv):
    p = Proc(name, argv)
    procs.append(p)
    return p


def publish_only(b, gateway, count, tag):
    """Gateway publish rate without confirms: the tasks go to a queue nobody consumes."""
    g = start("gateway", [gateway, "--queue=pub.%s" % tag, "--count=%d" % count,
                          "--progress-ms=0", "--timeout-s=300"] + b.amqp_args)
    line = g.wait_for(r"gateway: published", 200)
    g.kill()
    if not line:
        raise RuntimeError("gateway did not publish: %s" % g.stderr_tail())
    pub = kv(line)
    return pub["published"] / pub["elapsed_s"]


def one_run(b, worker, gateway, count, confirm, tag):
    """Fill a queue (with confirms, so the broker has persisted it all and is idle), then one
    worker (with or without confirms on its replies) drains it; the gateway collects."""
    q = "bench.%s" % tag
    g = start("gateway", [gateway, "--queue=" + q, "--count=%d" % count, "--progress-ms=0",
                          "--timeout-s=300", "--confirm"] + b.amqp_args)
    w = None
    try:
        line = g.wait_for(r"gateway: published", 200)
        if not line:
            raise RuntimeError("gateway did not publish: %s" % g.stderr_tail())
        pub = kv(line)
        pub_rate = pub["published"] / pub["elapsed_s"]
        w = start("worker", [worker, "--queue=" + q, "--name=bench"] +
                  (["--confirm"] if confirm else []) + b.amqp_args)
        rc = g.wait(300)
        fin = kv(g.last("gateway: final"))
        if rc != 0 or fin.get("answered") != count:
            raise RuntimeError("run failed: rc=%s %s" % (rc, fin))
        return pub_rate, fin["reply_rate"]
    finally:
        if w:
            w.signal(15)
            w.wait(30)
            w.kill()
        g.kill()


def bench_pool(path):
    out = subprocess.run([path, "3", "200000"], stdout=subprocess.PIPE, timeout=600,
                         text=True).stdout
    m = re.search(r"^single\s+1P/1C\s+1\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    return float(m.group(3)) * 1e6 if m else None


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    if len(args) != 2:
        print(__doc__)
        return 2
    worker, gateway = args
    runs, count = int(opts.get("runs", 5)), int(opts.get("count", 20000))
    install_sigterm_cleanup()
    b = Broker("swarmbench")
    failed = True
    pub_off, pub_on, rep = [], [], {False: [], True: []}
    try:
        b.start()
        for r in range(runs):
            pub_off.append(publish_only(b, gateway, count, "%d" % r))
            time.sleep(2)  # let the broker write that batch away before the timed runs
            for confirm in (False, True):
                p, rate = one_run(b, worker, gateway, count, confirm,
                                  "%s.%d" % ("c" if confirm else "n", r))
                pub_on.append(p)
                rep[confirm].append(rate)
            log("run %d: gateway publish %.0f msg/s (confirms off) %.0f (on); worker %.0f "
                "msg/s (confirms off) %.0f (on)" % (r + 1, pub_off[-1], pub_on[-1],
                                                     rep[False][-1], rep[True][-1]))
        failed = False
    finally:
        for p in procs:
            p.kill()
        b.close(failed)
    print("\nrabbitmq bench: %d runs x %d tasks (32 B, persistent, durable queue), medians"
          % (runs, count))
    med = statistics.median
    for confirm in (False, True):
        print("  one worker process (echo engine), confirms %-3s: %7.0f msg/s   (runs: %s)"
              % ("on" if confirm else "off", med(rep[confirm]),
                 " ".join("%.0f" % x for x in rep[confirm])))
    print("  gateway publish, confirms off: %7.0f msg/s; on (window 1024): %7.0f msg/s"
          % (med(pub_off), med(pub_on)))
    if "bench-pool" in opts:
        rate = bench_pool(opts["bench-pool"])
        if rate:
            print("  in-process pool (bench_pool single 1P/1C, no-op engine): %.0f tasks/s = "
                  "%.0fx the RabbitMQ worker without confirms"
                  % (rate, rate / med(rep[False])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
