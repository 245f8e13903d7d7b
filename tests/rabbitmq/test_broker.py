# SPDX-License-Identifier: MIT
"""Broker tests: the RabbitMQ worker and gateway examples against a real, private rabbitmq-server.

    test_broker.py WORKER GATEWAY SCENARIO...

Scenarios (each on its own durable queue, all on one broker started here):
  exactly_once  3 worker processes, 10,000 tasks: every id answered exactly once (no raw
                duplicate either, since nothing fails), the queue empty afterwards.
  dedupe        1 worker, every task published twice (a publisher retry): the worker answers each
                id once and acks the copy (attached to the running task or suppressed as done).
  kill9         3 workers, 10,000 tasks, kill -9 of one worker mid-run while it holds unacked
                deliveries: nothing lost, its deliveries come back redelivered to the others,
                every id answered once at the gateway (raw duplicate replies counted).
  kill_window   a worker SIGKILLs itself right after a reply is confirmed and before the task's
                ack: the task is answered again by the other worker, the gateway counts the
                raw duplicate and still sees every id answered once.
  backpressure  a slow worker (capacity 64) under a deep queue of 32 KiB tasks: its unacked count
                stays within the window, its RSS stays flat, the backlog stays in the broker;
                then SIGTERM: the worker hands back what it holds and exits cleanly in the grace
                period, and ready + answered = published.
  grace         SIGTERM while tasks run longer than the grace period: at the deadline they are
                canceled and every task goes back to the broker (nothing answered, nothing lost).
  restart       2 workers and the gateway with publisher confirms; the broker is stopped
                (SIGTERM: a graceful shutdown) and started again mid-run: everyone reconnects
                with backoff, nothing is lost.
  crash         the same with SIGKILL to the broker's Erlang VM instead.

Exit status: 0 pass, 1 fail, 77 skip (rabbitmq-server not installed).
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker import Broker, Proc, kv, log, install_sigterm_cleanup  # noqa: E402

WORKER = GATEWAY = None
procs = []


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)
    log("  ok: " + msg)


def worker(b, name, queue, *extra):
    p = Proc(name, [WORKER, "--queue=" + queue, "--name=" + name, "--stats-ms=200"] +
             b.amqp_args + list(extra))
    procs.append(p)
    return p


def gateway(b, queue, count, *extra):
    p = Proc("gateway", [GATEWAY, "--queue=" + queue, "--count=%d" % count,
                         "--progress-ms=200"] + b.amqp_args + list(extra))
    procs.append(p)
    return p


def wait_consuming(ws, timeout=30):
    for w in ws:
        if not w.wait_for(r"consuming", timeout):
            raise Fail("%s did not start consuming:\n%s" % (w.name, w.stderr_tail()))


def stop_workers(ws, timeout=30):
    finals = []
    for w in ws:
        w.signal(signal.SIGTERM)
    for w in ws:
        rc = w.wait(timeout)
        check(rc == 0, "%s exits 0 after SIGTERM (rc=%s)" % (w.name, rc))
        line = w.wait_for(r": final ", 5)
        check(line is not None, "%s printed its final counters" % w.name)
        finals.append(kv(line))
    return finals


def finish_gateway(g, timeout):
    rc = g.wait(timeout)
    line = g.last(r"gateway: final ")
    if rc is None or line is None:
        raise Fail("gateway did not finish in %ds; last: %s\n%s"
                   % (timeout, g.last("gateway:"), g.stderr_tail()))
    return rc, kv(line)


def assert_answered_once(rc, gf, count):
    check(gf["answered"] == count and gf["missing"] == 0,
          "every id answered: answered=%d of %d, missing=%d"
          % (gf["answered"], count, gf["missing"]))
    check(gf["bad"] == 0 and gf["unknown"] == 0 and gf["failed"] == 0,
          "every reply matches its task (bad=%d unknown=%d failed=%d)"
          % (gf["bad"], gf["unknown"], gf["failed"]))
    check(rc == 0, "gateway exit status 0")


def s_exactly_once(b):
    q, n = "swarm.eo", 10000
    # A small recent-id set (the least allowed for the default capacity 512): each worker
    # answers more ids than it holds, so answered ids are evicted along the way.
    ws = [worker(b, "eo%d" % i, q, "--workers=2", "--max-workers=4", "--dedupe=2048")
          for i in range(3)]
    wait_consuming(ws)
    g = gateway(b, q, n, "--timeout-s=90")
    rc, gf = finish_gateway(g, 100)
    assert_answered_once(rc, gf, n)
    check(gf["dup_replies"] == 0, "no raw duplicate reply without failures (dup_replies=%d)"
          % gf["dup_replies"])
    finals = stop_workers(ws)
    tasks = [f["tasks"] for f in finals]
    check(all(t > 0 for t in tasks), "all three workers took part: tasks=%s" % tasks)
    check(sum(f["replies"] for f in finals) == n, "replies published = %d exactly" % n)
    check(sum(f["acks"] for f in finals) == n, "acks = %d exactly" % n)
    check(b.queue_counts(q) == (0, 0), "task queue empty, nothing unacked")
    check(sum(f["evictions"] for f in finals) > 0, "the bounded id set evicted old ids (%d)"
          % sum(f["evictions"] for f in finals))
    log("exactly_once: %d tasks, 3 workers (tasks %s), %.1f s, reply rate %s/s"
        % (n, tasks, gf["elapsed_s"], gf["reply_rate"]))
    return {"tasks": n, "per_worker": tasks, "dup_replies": gf["dup_replies"]}


def s_dedupe(b):
    q, n = "swarm.dedupe", 2000
    w = worker(b, "dd", q, "--workers=2", "--max-workers=2")
    wait_consuming([w])
    g = gateway(b, q, n, "--duplicate-every=1", "--timeout-s=60")
    rc, gf = finish_gateway(g, 70)
    assert_answered_once(rc, gf, n)
    f = stop_workers([w])[0]
    check(gf["published"] == 2 * n, "every task published twice (%d messages)"
          % gf["published"])
    check(f["replies"] == n and gf["dup_replies"] == 0,
          "the worker answered each id once: replies=%d, raw duplicates at the gateway=%d"
          % (f["replies"], gf["dup_replies"]))
    check(f["dup_attached"] + f["dup_suppressed"] == n and f["acks"] == 2 * n,
          "every copy acked without a second run (attached=%d suppressed=%d acks=%d)"
          % (f["dup_attached"], f["dup_suppressed"], f["acks"]))
    check(b.queue_counts(q) == (0, 0), "task queue empty")
    return {"attached": f["dup_attached"], "suppressed": f["dup_suppressed"]}


def s_kill9(b):
    q, n = "swarm.kill9", 10000
    # Each worker runs 4 tasks at a time at 1-3 ms: the run lasts a few seconds.
    ws = [worker(b, "k%d" % i, q, "--workers=4", "--max-workers=4", "--latency-ms=1,3")
          for i in range(3)]
    wait_consuming(ws)
    g = gateway(b, q, n, "--timeout-s=120")
    if not g.wait_for(r"gateway: progress .*answered=([3-9]\d{3}|\d{5})", 90):
        raise Fail("the run did not reach 3000 answers: %s" % g.last("gateway:"))
    # Kill the worker that holds the most unacked deliveries in its latest report (a worker
    # can momentarily hold none, e.g. while RabbitMQ's flow control throttles its connection).
    victim, before, end = None, {}, time.monotonic() + 10
    while time.monotonic() < end:
        reports = [(kv(w.last(r": stats ")), w) for w in ws]
        before, victim = max(reports, key=lambda r: r[0].get("unacked", 0))
        if before.get("unacked", 0) > 0:
            break
        time.sleep(0.05)
    victim.kill()  # SIGKILL: no shutdown, no nack
    log("  killed %s with %d unacked deliveries in its last report (held %d)"
        % (victim.name, before.get("unacked", -1), before.get("held", -1)))
    check(before.get("unacked", 0) > 0, "the victim held unacked deliveries when killed (%d)"
          % before.get("unacked", 0))
    rc, gf = finish_gateway(g, 120)
    assert_answered_once(rc, gf, n)
    finals = stop_workers([w for w in ws if w is not victim])
    redelivered = sum(f["redelivered"] for f in finals)
    check(redelivered > 0, "its deliveries were redelivered to the survivors (redelivered=%d)"
          % redelivered)
    check(b.queue_counts(q) == (0, 0), "task queue empty, nothing unacked")
    log("kill9: victim held %d unacked; survivors saw %d redeliveries; gateway: answered %d "
        "once, %d raw duplicate replies" % (before["unacked"], redelivered, gf["answered"],
                                            gf["dup_replies"]))
    return {"victim_unacked": before["unacked"], "redelivered": redelivered,
            "dup_replies": gf["dup_replies"], "answered": gf["answered"]}


def s_kill_window(b):
    q, n = "swarm.killwin", 4000
    # The victim kills itself (SIGKILL) after a reply is confirmed and before its task's ack:
    # the broker holds that reply and requeues the task, so the id gets a second reply.
    ws = [worker(b, "kw%d" % i, q, "--workers=2", "--max-workers=2", "--latency-ms=1,2",
                 "--confirm", *(["--test-kill-before-ack=1000"] if i == 0 else []))
          for i in range(2)]
    wait_consuming(ws)
    g = gateway(b, q, n, "--timeout-s=90")
    rc_victim = ws[0].wait(60)
    check(rc_victim == -signal.SIGKILL, "the victim died by SIGKILL between reply and ack "
          "(rc=%s)" % rc_victim)
    before = kv(ws[0].last(r": stats "))
    rc, gf = finish_gateway(g, 90)
    assert_answered_once(rc, gf, n)
    check(gf["dup_replies"] >= 1, "the raw duplicate reply reached the gateway and was "
          "discarded by id (dup_replies=%d)" % gf["dup_replies"])
    f = stop_workers(ws[1:])[0]
    check(f["redelivered"] > 0, "the victim's deliveries were redelivered (%d)"
          % f["redelivered"])
    check(b.queue_counts(q) == (0, 0), "task queue empty, nothing unacked")
    return {"dup_replies": gf["dup_replies"], "redelivered": f["redelivered"],
            "victim_unacked_last_report": before.get("unacked")}


def s_backpressure(b):
    q, n, size, cap = "swarm.bp", 2000, 32768, 64
    # The backlog first (64 MiB of persistent tasks), then a slow worker on top of it.
    g = gateway(b, q, n, "--payload-bytes=%d" % size, "--timeout-s=120")
    if not g.wait_for(r"gateway: published", 90):
        raise Fail("the gateway did not publish %d tasks: %s" % (n, g.last("gateway:")))
    w = worker(b, "bp", q, "--capacity=%d" % cap, "--per-worker=16", "--workers=1",
               "--max-workers=2", "--latency-ms=100", "--grace-s=5")
    wait_consuming([w])
    rss0 = kv(w.last(r"consuming"))["rss_kib"]  # before it read its first delivery
    mark = len(w.lines)
    time.sleep(3)
    ready, unacked = b.queue_counts(q)
    stats = [kv(l) for l in w.lines[mark:] if ": stats " in l]
    check(len(stats) >= 5, "worker reported %d times while the queue was deep" % len(stats))
    max_unacked = max(s["unacked"] for s in stats)
    max_held = max(s["held"] for s in stats)
    max_queued = max(s["queued"] for s in stats)
    rss1 = max(s["rss_kib"] for s in stats)
    check(max_unacked <= cap and max_held <= cap and max_queued <= cap,
          "worker holds at most its window of %d: unacked<=%d held<=%d queued<=%d"
          % (cap, max_unacked, max_held, max_queued))
    check(unacked <= cap, "broker sees %d unacked (<= %d)" % (unacked, cap))
    check(ready >= n // 2, "the backlog stays in the broker: %d of %d ready" % (ready, n))
    # A worker that buffered the backlog would grow by the bytes waiting in the broker; this one
    # holds at most its window (64 x 32 KiB = 2 MiB of payloads, plus as much output).
    grown, backlog_kib = rss1 - rss0, ready * size // 1024
    # (SWARM_BROKER_NO_RSS=1 skips this for sanitizer builds, whose shadow memory grows RSS.)
    no_rss = os.environ.get("SWARM_BROKER_NO_RSS") == "1"
    check(grown < backlog_kib // 4 or no_rss,
          "worker RSS stays flat: %d KiB -> %d KiB (+%d KiB) while %d KiB wait in the broker%s"
          % (rss0, rss1, grown, backlog_kib, " (not checked: SWARM_BROKER_NO_RSS)"
             if no_rss else ""))
    # Clean shutdown mid-backlog: hand back what it holds, finish within the grace period.
    g.signal(signal.SIGTERM)
    g.wait(20)
    t0 = time.monotonic()
    f = stop_workers([w], timeout=20)[0]
    took = time.monotonic() - t0
    check(took < 5 + 5, "worker stopped in %.1f s (grace 5 s)" % took)
    ready2, unacked2 = b.queue_counts(q)
    check(unacked2 == 0, "nothing left unacked after the worker's shutdown")
    check(ready2 + f["replies"] == n,
          "nothing lost: ready %d + answered %d = published %d (handed back by nack: %d)"
          % (ready2, f["replies"], n, f["nacks"]))
    log("backpressure: window %d, max unacked %d, RSS %d -> %d KiB while %d x %d B tasks "
        "waited in the broker" % (cap, max_unacked, rss0, rss1, ready, size))
    return {"window": cap, "max_unacked": max_unacked, "rss0_kib": rss0, "rss_max_kib": rss1,
            "ready": ready, "shutdown_s": round(took, 2), "nacked": f["nacks"]}


def s_grace(b):
    q, n = "swarm.grace", 20
    w = worker(b, "gr", q, "--workers=2", "--max-workers=2", "--latency-ms=4000",
               "--grace-s=1")
    wait_consuming([w])
    g = gateway(b, q, n, "--timeout-s=60")
    if not w.wait_for(r": stats .* held=%d " % n, 30):
        raise Fail("the worker did not take the %d tasks: %s" % (n, w.last(": stats")))
    t0 = time.monotonic()
    f = stop_workers([w], timeout=15)[0]
    took = time.monotonic() - t0
    check(took < 1 + 5, "SIGTERM with tasks running past the grace period: stopped in %.1f s "
          "(grace 1 s)" % took)
    check(f["canceled"] == 2 and f["replies"] == 0 and f["nacks"] == n,
          "the 2 running tasks were canceled at the deadline, all %d handed back by nack "
          "(canceled=%d nacks=%d replies=%d)" % (n, f["canceled"], f["nacks"], f["replies"]))
    check(b.queue_counts(q) == (n, 0), "all %d tasks ready in the broker again" % n)
    g.signal(signal.SIGTERM)
    g.wait(20)
    return {"stop_s": round(took, 2), "canceled": f["canceled"], "nacked": f["nacks"]}


def s_restart(b, mode="term"):
    q, n = "swarm.restart." + mode, 5000
    ws = [worker(b, "r%d" % i, q, "--workers=4", "--max-workers=4", "--latency-ms=1,2",
                 "--confirm") for i in range(2)]
    wait_consuming(ws)
    # Rate-limited, so that the broker goes down while tasks are still being published.
    g = gateway(b, q, n, "--confirm", "--rate=1000", "--timeout-s=150")
    if not g.wait_for(r"gateway: progress .*answered=(1[5-9]\d{2}|[2-9]\d{3})", 90):
        raise Fail("the run did not reach 1500 answers: %s" % g.last("gateway:"))
    log("  stopping the broker (%s) mid-run: %s" % (mode, g.last("gateway: progress")))
    t0 = time.monotonic()
    b.stop(mode=mode)
    b.start()
    log("  broker back after %.1f s" % (time.monotonic() - t0))
    rc, gf = finish_gateway(g, 150)
    assert_answered_once(rc, gf, n)
    check(gf["reconnects"] >= 1, "the gateway reconnected (%d)" % gf["reconnects"])
    # A worker that retried while the broker was down backs off up to 5 s (plus jitter), so
    # the other worker may have answered everything before it is back: wait for both to be
    # consuming on a new connection before stopping them (not waiting failed a run: [1, 0]).
    for w in ws:
        w.wait_for(r"consuming .*connection=([2-9]|[1-9]\d+) ", 30)
    finals = stop_workers(ws)
    check(all(f["reconnects"] >= 1 for f in finals), "both workers reconnected: %s"
          % [f["reconnects"] for f in finals])
    check(b.queue_counts(q) == (0, 0), "task queue empty, nothing unacked")
    log("restart (%s): answered %d once; raw duplicate replies %d; gateway republished %d; workers "
        "suppressed %d, re-ran %d" % (mode, gf["answered"], gf["dup_replies"], gf["republished"],
                                      sum(f["dup_suppressed"] + f["dup_attached"]
                                          for f in finals),
                                      sum(f["dup_rerun"] for f in finals)))
    return {"dup_replies": gf["dup_replies"], "republished": gf["republished"]}


SCENARIOS = {"exactly_once": s_exactly_once, "dedupe": s_dedupe, "kill9": s_kill9,
             "kill_window": s_kill_window, "backpressure": s_backpressure, "grace": s_grace, "restart": s_restart,
             "crash": lambda b: s_restart(b, "kill")}


def main():
    global WORKER, GATEWAY
    if len(sys.argv) < 4 or any(s not in SCENARIOS for s in sys.argv[3:]):
        print(__doc__)
        return 2
    WORKER, GATEWAY = sys.argv[1], sys.argv[2]
    install_sigterm_cleanup()
    b = Broker()  # exits 77 when the package is absent
    failed = True
    results = {}
    t0 = time.monotonic()
    try:
        b.start()
        for name in sys.argv[3:]:
            log("scenario %s" % name)
            t = time.monotonic()
            try:
                results[name] = SCENARIOS[name](b)
            finally:
                for p in procs:
                    if p.p.poll() is None:
                        log("  stopping leftover %s" % p.name)
                    p.kill()
                if sys.exc_info()[0] is not None:
                    for p in procs:
                        log("  %s stderr:\n%s\n  last: %s" % (p.name, p.stderr_tail(),
                                                               p.last(":")))
                procs.clear()
            log("scenario %s passed in %.1f s: %s" % (name, time.monotonic() - t,
                                                      results[name]))
        failed = False
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        b.close(failed)
    log("%s in %.1f s" % ("FAILED" if failed else "all passed", time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
