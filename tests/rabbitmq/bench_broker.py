# SPDX-License-Identifier: MIT
"""Throughput of one RabbitMQ worker process with the no-op (echo) engine, against a private
rabbitmq-server, with and without publisher confirms; optionally next to the in-process pool.

    bench_broker.py WORKER GATEWAY [--runs=5] [--count=20000] [--bench-pool=PATH]

Each run fills a fresh durable queue with COUNT persistent 32-byte tasks first (the gateway
alone, so its publish rate is measured too), then starts one worker process (default pool,
autoscaled 1..8) and measures the reply rate at the gateway: answers per second from the first
to the last answer. Runs without and with confirms alternate (without: the gateway publishes
and the worker replies + acks at once; with: the gateway waits for each task's confirm, at most
1024 outstanding, and the worker acks a task only after its reply is confirmed). Medians are
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


def one_run(b, worker, gateway, count, confirm, tag):
    q = "bench.%s" % tag
    flag = ["--confirm"] if confirm else []
    g = Proc("gateway", [gateway, "--queue=" + q, "--count=%d" % count, "--progress-ms=0",
                         "--timeout-s=300"] + flag + b.amqp_args)
    w = None
    try:
        line = g.wait_for(r"gateway: published", 200)
        if not line:
            raise RuntimeError("gateway did not publish: %s" % g.stderr_tail())
        pub = kv(line)
        pub_rate = pub["published"] / pub["elapsed_s"]
        w = Proc("worker", [worker, "--queue=" + q, "--name=bench"] + flag + b.amqp_args)
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
    res = {False: ([], []), True: ([], [])}
    try:
        b.start()
        for r in range(runs):
            for confirm in (False, True):
                pub, rep = one_run(b, worker, gateway, count, confirm,
                                   "%s.%d" % ("c" if confirm else "n", r))
                res[confirm][0].append(pub)
                res[confirm][1].append(rep)
                log("run %d confirms=%s: gateway publish %.0f msg/s, worker %.0f msg/s"
                    % (r + 1, "on" if confirm else "off", pub, rep))
        failed = False
    finally:
        b.close(failed)
    print("\nrabbitmq bench: %d runs x %d tasks (32 B, persistent, durable queue), medians"
          % (runs, count))
    for confirm in (False, True):
        pubs, reps = res[confirm]
        print("  confirms %-3s  one worker process (echo engine): %7.0f msg/s   gateway "
              "publish: %7.0f msg/s   (worker runs: %s)"
              % ("on" if confirm else "off", statistics.median(reps), statistics.median(pubs),
                 " ".join("%.0f" % x for x in reps)))
    if "bench-pool" in opts:
        rate = bench_pool(opts["bench-pool"])
        if rate:
            print("  in-process pool (bench_pool single 1P/1C, no-op engine): %.0f tasks/s = "
                  "%.0fx the RabbitMQ worker without confirms"
                  % (rate, rate / statistics.median(res[False][1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
