# SPDX-License-Identifier: MIT
"""Runs: a Python engine without its own infer_batch is flagged SWARM_ENGINE_F_SEQUENTIAL_BATCH,
so a pool hands it runs of queued tasks in one callback (one GIL acquisition per run). Each task
of a run must keep exactly what a single call gives it: its own output, its own exception, type
checks, skipping when its future was cancelled while queued, and a view that dies with the call.
"""
import concurrent.futures as cf
import threading
import unittest

import libswarm as swarm


def queue_then_start(eng, n, workers, payload=lambda i: b"p%d" % i, cancel=None):
    """Queue n tasks on a pool with no worker, then start the workers: the queue is full when
    they start, so fast engines get runs. Returns (pool, {id: future})."""
    pool = swarm.Pool(eng, workers=0, max_workers=8, queue_capacity=n + 16)
    futs = {i: pool.submit(payload(i), id=i) for i in range(n)}
    if cancel is not None:
        for i, f in futs.items():
            if cancel(i):
                assert f.cancel()
    pool.resize(workers)
    return pool, futs


class TestPoolRuns(unittest.TestCase):
    def test_each_task_of_a_run_keeps_its_own_outcome(self):
        calls = []

        def infer(req):
            calls.append(req.id)
            if req.id % 7 == 3:
                raise ValueError(f"bad {req.id}")
            if req.id % 11 == 5:
                return {"choices": []}          # a wrong output type fails this one only
            return req.payload[::-1]

        eng = swarm.Engine.from_python(infer)
        n = 3000
        pool, futs = queue_then_start(eng, n, 2)
        try:
            batches = []
            for i, f in futs.items():
                if i % 7 == 3:
                    with self.assertRaises(ValueError) as cm:
                        f.result(60)
                    self.assertEqual(str(cm.exception), f"bad {i}")
                    self.assertEqual(cm.exception.result.id, i)
                    batches.append(cm.exception.result.batch)
                elif i % 11 == 5:
                    with self.assertRaises(TypeError) as cm:
                        f.result(60)
                    self.assertIn("dict", str(cm.exception))
                else:
                    r = f.result(60)
                    self.assertEqual(r.output, (b"p%d" % i)[::-1])
                    batches.append(r.batch)
            self.assertGreater(max(batches), 1, "no task ran in a run")
            self.assertLessEqual(max(batches), 64)
            self.assertEqual(sorted(calls), list(range(n)))   # each task ran once
            self.assertEqual(eng.python_stats()["calls"], n)
        finally:
            pool.close()
            eng.close()

    def test_cancelled_futures_are_skipped_inside_a_run(self):
        ran = set()
        lock = threading.Lock()

        def infer(req):
            with lock:
                ran.add(req.id)
            return b"ok"

        eng = swarm.Engine.from_python(infer)
        n = 2000
        pool, futs = queue_then_start(eng, n, 1, cancel=lambda i: i % 3 == 0)
        try:
            cf.wait(list(futs.values()), timeout=60)
            for i, f in futs.items():
                if i % 3 == 0:
                    self.assertTrue(f.cancelled())
                    self.assertNotIn(i, ran)
                else:
                    self.assertEqual(f.result(0).output, b"ok")
            self.assertEqual(len(ran), n - len(range(0, n, 3)))
        finally:
            pool.close()
            eng.close()

    def test_keyboard_interrupt_fails_only_its_request(self):
        def infer(req):
            if req.id == 100:
                raise KeyboardInterrupt
            return b"x"

        eng = swarm.Engine.from_python(infer, log_level=None)
        pool, futs = queue_then_start(eng, 400, 1)
        try:
            with self.assertRaises(KeyboardInterrupt):
                futs[100].result(60)
            for i, f in futs.items():
                if i != 100:
                    self.assertEqual(f.result(60).output, b"x")
        finally:
            pool.close()
            eng.close()

    def test_views_of_a_run_die_with_it(self):
        kept = []

        def infer(req):
            kept.append(req)
            req.write(b"a")
            return None

        eng = swarm.Engine.from_python(infer)
        pool, futs = queue_then_start(eng, 500, 2)
        try:
            outs = [f.result(60).output for f in futs.values()]
            self.assertEqual(set(outs), {b"a"})
            self.assertGreater(max(f.result().batch for f in futs.values()), 1)
            for v in kept:
                with self.assertRaises(swarm.WrongState):
                    v.write(b"late")
        finally:
            pool.close()
            eng.close()

    def test_engine_infer_batch_without_its_own_runs_infer_per_request(self):
        def infer(req):
            if req.payload == b"boom":
                raise RuntimeError("boom")
            return req.payload.upper()

        eng = swarm.Engine.from_python(infer)
        try:
            res = eng.infer_batch([b"a", b"boom", "c"])
            self.assertEqual([r.status == 0 for r in res], [True, False, True])
            self.assertEqual(res[0].output, b"A")
            self.assertEqual(res[2].output, b"C")
            self.assertIn("boom", res[1].error)
        finally:
            eng.close()

    def test_a_view_that_cannot_be_built_fails_its_request_not_the_run(self):
        # Reading a request can fail (say, extras a C host set that are not UTF-8): that request
        # must fail with the error, never pass as an empty success; the others of the run run.
        from libswarm import engine as E
        real = E.Request

        class Broken(real):
            __slots__ = ()

            def __init__(self, *a, **kw):
                super().__init__(*a, **kw)
                if self.payload == b"bad":
                    raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

        eng = swarm.Engine.from_python(lambda req: req.payload.upper(), log_level=None)
        E.Request = Broken
        try:
            res = eng.infer_batch([b"a", b"bad", b"c"])
        finally:
            E.Request = real
            eng.close()
        self.assertEqual([r.status == 0 for r in res], [True, False, True])
        self.assertEqual(res[0].output, b"A")
        self.assertEqual(res[2].output, b"C")
        self.assertIn("UnicodeDecodeError", res[1].error)

    def test_runs_false_gives_one_call_per_task(self):
        eng = swarm.Engine.from_python(lambda req: b"x", runs=False)
        pool, futs = queue_then_start(eng, 500, 2)
        try:
            self.assertEqual({f.result(60).batch for f in futs.values()}, {1})
        finally:
            pool.close()
            eng.close()
        with self.assertRaises(TypeError):
            swarm.Engine.from_python(lambda req: b"", runs=1)

    def test_engine_with_its_own_infer_batch_is_not_given_runs(self):
        class Batched:
            def __init__(self):
                self.sizes = []

            def infer(self, req):
                return b"1"

            def infer_batch(self, reqs):
                self.sizes.append(len(reqs))
                return [b"b"] * len(reqs)

        obj = Batched()
        eng = swarm.Engine.from_python(obj)
        pool, futs = queue_then_start(eng, 500, 1)
        try:
            self.assertEqual({f.result(60).output for f in futs.values()}, {b"1"})
            self.assertEqual(obj.sizes, [])   # batch_max 1: single calls to infer only
        finally:
            pool.close()
            eng.close()


if __name__ == "__main__":
    unittest.main()
