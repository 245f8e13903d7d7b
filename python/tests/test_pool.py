# SPDX-License-Identifier: MIT
"""Pool and reconcile loop: Python engines under C worker threads, exactly-once delivery, resize,
stop, scaling, and the error paths."""
import collections
import threading
import time
import unittest

import libswarm as swarm

HAVE_POOL = swarm.has_symbol("swarm_pool_create")
HAVE_RECONCILE = swarm.has_symbol("swarm_reconcile_create")
S = 1_000_000_000


class Counting:
    """A thread-safe Python engine that records every request it serves."""

    def __init__(self, delay=0.0, fail_every=0):
        self.lock = threading.Lock()
        self.calls = collections.Counter()
        self.threads = set()
        self.delay = delay
        self.fail_every = fail_every

    def infer(self, req):
        with self.lock:
            self.calls[req.id] += 1
            self.threads.add(threading.get_ident())
        if self.delay:
            time.sleep(self.delay)
        if self.fail_every and req.id % self.fail_every == 0:
            raise ValueError(f"task {req.id} fails on purpose")
        return b"r:" + req.payload


@unittest.skipUnless(HAVE_POOL, "pool module not in the loaded library")
class TestPool(unittest.TestCase):
    def test_pool_python_engine_many_workers_exactly_once(self):
        eng_obj = Counting()
        eng = swarm.Engine.from_python(eng_obj)
        delivered = collections.Counter()
        lock = threading.Lock()

        def on_result(r):
            with lock:
                delivered[r.id] += 1
        n = 6000
        with swarm.Pool(eng, workers=6, max_workers=16, queue_capacity=512,
                        on_result=on_result) as pool:
            # Several Python producers at once, under backpressure (the queue is smaller).
            futs = {}
            flock = threading.Lock()

            def producer(k):
                for i in range(k, n, 4):
                    f = pool.submit(b"%d" % i, id=i, user=("u", i))
                    with flock:
                        futs[i] = f
            ths = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
            for t in ths:
                t.start()
            for t in ths:
                t.join()
            results = {i: f.result(timeout=30) for i, f in futs.items()}
            pool.stop()      # drain
            st = pool.stats()
        self.assertEqual(len(results), n)
        for i, r in results.items():
            self.assertTrue(r.ok)
            self.assertEqual(r.output, b"r:%d" % i)
            self.assertEqual(r.user, ("u", i))
        self.assertEqual(set(eng_obj.calls), set(range(n)))
        self.assertTrue(all(c == 1 for c in eng_obj.calls.values()), "a task ran twice")
        self.assertTrue(all(c == 1 for c in delivered.values()), "a result came twice")
        self.assertEqual(len(delivered), n)
        self.assertGreater(len(eng_obj.threads), 1, "only one C worker served")
        self.assertEqual((st["completed"], st["failed"], st["taken"]), (n, 0, n))
        self.assertEqual(st["pending_python"], 0)
        eng.close()

    def test_pool_exception_raising_engine(self):
        obj = Counting(fail_every=3)
        eng = swarm.Engine.from_python(obj)
        with self.assertLogs("swarm", level="ERROR"):
            with swarm.Pool(eng, workers=3) as pool:
                res = pool.map([b"x"] * 30, timeout=30)
                st = pool.stats()
        ids = [r.id for r in res]
        self.assertEqual(ids, list(range(1, 31)))
        for r in res:
            if r.id % 3 == 0:
                self.assertEqual(r.status, swarm.InternalError.code)
                self.assertIn("fails on purpose", r.error)
                with self.assertRaises(swarm.InternalError):
                    r.raise_for_status()
            else:
                self.assertTrue(r.ok)
        self.assertEqual((st["completed"], st["failed"]), (20, 10))
        eng.close()

    def test_pool_resize_and_stats(self):
        eng = swarm.Engine.from_python(Counting(delay=0.002))
        with swarm.Pool(eng, workers=1, max_workers=8) as pool:
            self.assertEqual(pool.target, 1)
            pool.resize(5)
            self.assertEqual(pool.target, 5)
            futs = [pool.submit(b"p") for _ in range(100)]
            pool.resize(2)
            self.assertEqual([f.result(30).ok for f in futs], [True] * 100)
            with self.assertRaises(swarm.OutOfRange):
                pool.resize(9)
            with self.assertRaises(TypeError):
                pool.resize("3")
            with self.assertRaises(swarm.InvalidArgument):
                pool.resize(-1)
            st = pool.stats()
            self.assertEqual(st["target"], 2)
            self.assertEqual(st["completed"], 100)
            self.assertGreaterEqual(st["started"], 5)
            self.assertGreater(st["service_p50_ns"], 0)
            ob = pool.observation(target_per_worker=4)
            self.assertEqual(ob.current, 2)
            pool.stop()
            with self.assertRaises(swarm.WrongState):
                pool.resize(3)
            with self.assertRaises(swarm.WrongState):
                pool.stop()
            with self.assertRaises(swarm.Closed):
                pool.submit(b"late")
        with self.assertRaises(swarm.HandleClosed):
            pool.stats()
        eng.close()

    def test_pool_stop_with_deadline_returns_unrun_tasks(self):
        gate = threading.Event()

        class Blocked:
            def infer(self, req):
                # Blocks until stop()'s deadline cancels the request (no timing in the test:
                # a fixed-delay gate raced stop() on a loaded machine).
                while not gate.is_set() and not req.should_stop():
                    time.sleep(0.001)
                return b"done"
        eng = swarm.Engine.from_python(Blocked())
        pool = swarm.Pool(eng, workers=1, queue_capacity=64)
        futs = [pool.submit(b"t%d" % i, id=i, user=i) for i in range(10)]
        deadline = time.monotonic() + 10
        while not futs[0].running() and time.monotonic() < deadline:
            time.sleep(0.005)     # the worker is now blocked in task 0
        left = pool.stop(timeout=0)
        ran = [f for f in futs if not isinstance(f.exception(10), swarm.Canceled)]
        self.assertEqual(len(left) + len(ran), 10)             # nothing lost
        self.assertGreaterEqual(len(left), 8)
        self.assertEqual(sorted(t[0] for t in left),
                         sorted(i for i, f in enumerate(futs) if f not in ran))
        self.assertEqual(pool.pending, 0)
        pool.close()
        eng.close()

    def test_pool_close_without_stop_cancels_queued_futures(self):
        gate = threading.Event()
        eng = swarm.Engine.from_python(lambda r: (gate.wait(5), b"")[1])
        pool = swarm.Pool(eng, workers=1, queue_capacity=16)
        futs = [pool.submit(b"") for _ in range(5)]
        time.sleep(0.05)
        threading.Timer(0.05, gate.set).start()
        pool.close()
        outcomes = [type(f.exception(10)).__name__ if f.exception(10) else "ok" for f in futs]
        self.assertIn("Canceled", outcomes)
        eng.close()

    def test_pool_engine_closed_early_is_safe(self):
        eng = swarm.Engine.from_python(lambda r: b"still here")
        pool = swarm.Pool(eng, workers=2)
        eng.close()            # the pool holds its own reference
        self.assertEqual(pool.submit(b"").result(10).output, b"still here")
        pool.close()

    def test_pool_batches_and_warmup(self):
        class B:
            def __init__(self):
                self.sizes = []

            def infer(self, req):
                return b"1"

            def infer_batch(self, reqs):
                self.sizes.append(len(reqs))
                return [r.payload for r in reqs]
        b = B()
        warmed = []
        eng = swarm.Engine.from_python(b)
        with swarm.Pool(eng, swarm.PoolConfig(workers=1, batch_max=8, batch_linger=0.02),
                        warmup=warmed.append) as pool:
            time.sleep(0.05)
            futs = [pool.submit(b"%d" % i) for i in range(32)]
            self.assertEqual([f.result(10).output for f in futs], [b"%d" % i for i in range(32)])
            self.assertGreater(max(b.sizes), 1)
            self.assertEqual(warmed, [0])
        eng.close()

    def test_pool_warmup_failure_fails_creation(self):
        # Issue 11 (9): a failing warm-up used to leave a pool with no live worker whose
        # futures never completed. Now the creation raises the warm-up's own exception.
        def bad_warmup(worker):
            raise swarm.Unavailable("model failed to load")
        eng = swarm.Engine.from_python(lambda r: b"")
        with self.assertLogs("swarm", level="WARNING"):
            with self.assertRaises(swarm.Unavailable) as cm:
                swarm.Pool(eng, workers=2, warmup=bad_warmup)
        self.assertIn("model failed to load", str(cm.exception))

        def bad_value(worker):
            raise ValueError("no weights")
        with self.assertLogs("swarm", level="WARNING"):
            with self.assertRaises(swarm.Unavailable) as cm:
                swarm.Pool(eng, workers=1, warmup=bad_value)
        self.assertIsInstance(cm.exception.__cause__, ValueError)
        eng.close()

    def test_pool_submit_errors(self):
        eng = swarm.Engine.from_python(lambda r: b"")
        with self.assertRaises(TypeError):
            swarm.Pool("engine")
        with self.assertRaises(TypeError):
            swarm.Pool(eng, on_result=1)
        with self.assertRaises(TypeError):
            swarm.Pool(eng, warmup=1)
        with self.assertRaises(TypeError):
            swarm.Pool(eng, workers="2")
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Pool(eng, workers=5, max_workers=4)
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Pool(eng, batch_max=2, batch_min=3)
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Pool(eng, workers=-1)
        gate = threading.Event()
        e2 = swarm.Engine.from_python(lambda r: (gate.wait(5), b"")[1])
        with swarm.Pool(e2, workers=1, queue_capacity=1) as pool:
            pool.submit(b"a")
            time.sleep(0.05)
            pool.submit(b"b")                     # fills the queue
            with self.assertRaises(swarm.WouldBlock):
                pool.submit(b"c", block=0)
            with self.assertRaises(swarm.TimedOut):
                pool.submit(b"c", block=0.01)
            with self.assertRaises(TypeError):
                pool.submit(123)
            with self.assertRaises(swarm.InvalidArgument) as cm:
                pool.submit(b"", id=-3)
            self.assertIn("id must be in [0, 2**64-1]", str(cm.exception))
            with self.assertRaises(swarm.InvalidArgument):    # issue 11 (11): was truncated
                pool.submit(b"", id=2**64)
            with self.assertRaises(TypeError):
                pool.submit(b"", id="7")
            self.assertEqual(pool.pending, 2)
            gate.set()
        e2.close()
        eng.close()

    def test_pool_deadline_reaches_engine(self):
        class Poll:
            def infer(self, req):
                while not req.should_stop():
                    time.sleep(0.001)
                raise swarm.TimedOut("deadline seen")
        eng = swarm.Engine.from_python(Poll())
        with self.assertLogs("swarm", level="WARNING"):
            with swarm.Pool(eng, workers=1) as pool:
                with self.assertRaises(swarm.TimedOut) as cm:
                    pool.submit(b"", timeout=0.02).result(10)
        self.assertEqual(cm.exception.result.status, swarm.TimedOut.code)
        eng.close()


@unittest.skipUnless(HAVE_POOL and HAVE_RECONCILE, "pool/reconcile not in the loaded library")
class TestReconcile(unittest.TestCase):
    def test_reconcile_step_scales_pool(self):
        eng = swarm.Engine.from_python(Counting(delay=0.001))
        pol = swarm.Policy(mode=swarm.Mode.HPA, min_replicas=1, max_replicas=8,
                           scale_up=swarm.HpaRules(policies=[swarm.Rate(swarm.RateType.PODS,
                                                                        8, 15)]))
        with swarm.Pool(eng, workers=1, max_workers=8, queue_capacity=4096) as pool:
            actuated = []

            def actuate(n, decision):
                actuated.append((n, decision.text))
                pool.resize(n)
            loop = swarm.ReconcileLoop(pol, lambda: pool.observation(4.0), actuate,
                                       interval=0.05)
            gate = threading.Event()
            # Replicas still starting count as pending capacity (no scale-up meanwhile), so
            # let the first worker come up before the step.
            deadline = time.monotonic() + 5
            while pool.stats()["ready"] < 1 and time.monotonic() < deadline:
                time.sleep(0.001)
            futs = [pool.submit(b"x") for _ in range(64)]
            nxt = loop.step(0)
            self.assertEqual(nxt, int(0.05 * S))
            self.assertGreater(pool.target, 1)
            self.assertTrue(actuated and actuated[0][1])
            d = loop.last_decision()
            self.assertEqual(d.replicas, pool.target)
            self.assertTrue(d.explain())
            st = loop.stats()
            self.assertEqual((st["ticks"], st["decisions"], st["actuations"]), (1, 1, 1))
            for f in futs:
                f.result(30)
            loop.kick()
            self.assertEqual(loop.stats()["kicks"], 1)
            loop.close()
            gate.set()
        pol.close()
        eng.close()

    def test_reconcile_thread_start_stop_and_policy_ownership(self):
        pol = swarm.Policy(mode=swarm.Mode.HPA, min_replicas=1, max_replicas=4)
        seen = []
        loop = swarm.ReconcileLoop(pol, lambda: swarm.Observation(1, [swarm.Metric(8, 2)]),
                                   lambda n, d: seen.append(n), interval=0.01)
        self.assertIsNone(loop.last_decision())
        loop.start()
        with self.assertRaises(swarm.WrongState):
            loop.start()
        with self.assertRaises(swarm.WrongState):
            pol.decide(current=1, metrics=[swarm.Metric(1, 1)])
        with self.assertRaises(swarm.WrongState):
            loop.step()
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.005)
        self.assertTrue(loop.running)
        loop.stop()
        loop.stop()      # idempotent
        self.assertFalse(loop.running)
        self.assertEqual(seen[0], 4)
        pol.decide(current=1, metrics=[swarm.Metric(1, 1)])   # the loop let go of it
        with self.assertRaises(swarm.WrongState):
            pol.close()                                      # the loop still uses it
        loop.close()
        pol.close()
        with self.assertRaises(swarm.HandleClosed):
            loop.kick()

    def test_reconcile_callback_errors_back_off(self):
        pol = swarm.Policy(mode=swarm.Mode.HPA, max_replicas=4)

        def bad_observe():
            raise swarm.Unavailable("metrics backend down")
        loop = swarm.ReconcileLoop(pol, bad_observe, lambda n, d: None, interval=1.0,
                                   fail_after=5)
        with self.assertLogs("swarm", level="ERROR"):
            with self.assertRaises(swarm.Unavailable):
                loop.step(0)
        st = loop.stats()
        self.assertEqual((st["observe_errors"], st["last_error"]),
                         (1, swarm.Unavailable.code))
        self.assertGreater(st["backoff_ns"], 0)
        loop.close()

        def wrong_type():
            return "not an observation"
        loop = swarm.ReconcileLoop(pol, wrong_type, lambda n, d: None, fail_after=5)
        with self.assertLogs("swarm", level="ERROR"):
            with self.assertRaises(swarm.InternalError):
                loop.step(0)
        loop.close()

        def failing_actuate(n, d):
            raise RuntimeError("cannot resize")
        loop = swarm.ReconcileLoop(pol, lambda: swarm.Observation(1, [swarm.Metric(8, 2)]),
                                   failing_actuate)
        with self.assertLogs("swarm", level="ERROR"):
            with self.assertRaises(swarm.InternalError):
                loop.step(0)
        self.assertEqual(loop.stats()["actuate_errors"], 1)
        loop.close()

        loop = swarm.ReconcileLoop(pol, lambda: swarm.Observation(1, [swarm.Metric(1, 0)]),
                                   lambda n, d: None)
        with self.assertRaises(swarm.InvalidArgument):     # decide rejects target 0
            loop.step(0)
        self.assertEqual(loop.stats()["decide_errors"], 1)
        loop.close()
        pol.close()

    def test_reconcile_config_errors(self):
        pol = swarm.Policy(mode=swarm.Mode.HPA)
        ok = (lambda: None, lambda n, d: None)
        with self.assertRaises(TypeError):
            swarm.ReconcileLoop("policy", *ok)
        with self.assertRaises(TypeError):
            swarm.ReconcileLoop(pol, 1, 2)
        with self.assertRaises(swarm.InvalidArgument):
            swarm.ReconcileLoop(pol, *ok, interval=0)
        with self.assertRaises(swarm.InvalidArgument):
            swarm.ReconcileLoop(pol, *ok, jitter=11)
        with self.assertRaises(swarm.InvalidArgument):
            swarm.ReconcileLoop(pol, *ok, backoff_factor=0.5)
        with self.assertRaises(swarm.InvalidArgument):
            swarm.ReconcileLoop(pol, *ok, backoff_base=2.0, backoff_cap=1.0)
        with self.assertRaises(TypeError):
            swarm.ReconcileLoop(pol, *ok, fail_after=-1)
        pol.close()

    def test_reconcile_thread_scales_pool_under_load(self):
        eng = swarm.Engine.from_python(Counting(delay=0.002))
        pol = swarm.Policy(mode=swarm.Mode.HPA, min_replicas=1, max_replicas=6,
                           scale_up=swarm.HpaRules(policies=[swarm.Rate(swarm.RateType.PODS,
                                                                        6, 1)]))
        with swarm.Pool(eng, workers=1, max_workers=6, queue_capacity=4096) as pool:
            loop = swarm.ReconcileLoop.for_pool(pool, pol, 2.0, interval=0.02)
            loop.start()
            futs = [pool.submit(b"w") for _ in range(600)]
            peak = 0
            for f in futs:
                f.result(30)
                peak = max(peak, pool.target)
            loop.close()
            self.assertGreater(peak, 1)
        pol.close()
        eng.close()


if __name__ == "__main__":
    unittest.main()
