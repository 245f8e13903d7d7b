# SPDX-License-Identifier: MIT
"""The pool's result thread: C workers send results into a result channel and one Python thread
per pool completes the futures and calls on_result. Exactly once, all delivered before stop()
returns, on_result off the workers, a slow on_result never loses a result, and a pool dropped
with results pending still completes every future."""
import concurrent.futures as cf
import gc
import threading
import time
import unittest

import libswarm as swarm


def echo(req):
    return req.payload


class TestPoolResults(unittest.TestCase):
    def test_every_future_done_when_stop_returns(self):
        eng = swarm.Engine.from_python(echo)
        seen = {}
        lock = threading.Lock()

        def on_result(r):
            with lock:
                seen[r.id] = seen.get(r.id, 0) + 1

        pool = swarm.Pool(eng, workers=4, max_workers=8, on_result=on_result,
                          queue_capacity=4096)
        futs = {i: pool.submit(str(i).encode(), id=i) for i in range(3000)}
        pool.stop()
        # stop() returned: every result has been delivered, none is still in flight.
        self.assertTrue(all(f.done() for f in futs.values()))
        for i, f in futs.items():
            self.assertEqual(f.result(0).output, str(i).encode())
        self.assertEqual(seen, {i: 1 for i in range(3000)})
        pool.close()
        eng.close()

    def test_on_result_runs_on_the_result_thread(self):
        eng = swarm.Engine.from_python(lambda req: threading.current_thread().name.encode())
        names = []
        pool = swarm.Pool(eng, workers=2, on_result=lambda r: names.append(
            threading.current_thread().name))
        for f in [pool.submit(b"") for _ in range(50)]:
            f.result(30)
        pool.close()
        eng.close()
        self.assertEqual(set(names), {"libswarm-pool-results"})

    def test_slow_on_result_with_deadline_stop_loses_nothing(self):
        # on_result slower than the workers: the result channel fills and the workers wait
        # on it; a stop with a short deadline then keeps results out of the full channel
        # (held). Every task must still end once: result delivered, or Canceled / unrun.
        eng = swarm.Engine.from_python(echo)
        delivered = []

        def on_result(r):
            time.sleep(0.0005)
            delivered.append(r.id)

        pool = swarm.Pool(eng, workers=4, max_workers=4, on_result=on_result,
                          queue_capacity=8192)
        n = 4000
        futs = [pool.submit(b"x", id=i) for i in range(n)]
        time.sleep(0.05)
        left = pool.stop(timeout=0.01)
        self.assertTrue(all(f.done() for f in futs))
        ok = {i for i, f in enumerate(futs) if f.exception(0) is None}
        canceled = {i for i, f in enumerate(futs) if isinstance(f.exception(0), swarm.Canceled)}
        self.assertEqual(len(ok) + len(canceled), n)
        self.assertEqual(len(delivered), len(set(delivered)))        # none twice
        self.assertTrue(ok <= set(delivered))
        unrun = {t[0] for t in left}
        self.assertFalse(unrun & set(delivered))                      # run or returned, not both
        self.assertEqual(len(delivered) + len(unrun), n)              # and nothing lost
        self.held = pool.stats()["undelivered"]
        pool.close()
        eng.close()

    def test_dropped_pool_completes_its_futures(self):
        eng = swarm.Engine.from_python(lambda req: time.sleep(0.001) or b"ok")
        pool = swarm.Pool(eng, workers=2, queue_capacity=2048)
        futs = [pool.submit(b"") for _ in range(500)]
        before = threading.active_count()
        del pool
        gc.collect()
        done, not_done = cf.wait(futs, timeout=60)
        self.assertEqual(len(not_done), 0)
        for f in futs:
            exc = f.exception(0)
            self.assertTrue(exc is None or isinstance(exc, swarm.Canceled), exc)
        for _ in range(400):
            if threading.active_count() < before:
                break
            time.sleep(0.01)
        self.assertLess(threading.active_count(), before)    # the result thread is gone
        eng.close()

    def test_stop_from_on_result_raises_wrongstate(self):
        eng = swarm.Engine.from_python(echo)
        errs = []
        box = {}

        def on_result(r):
            try:
                box["pool"].stop()
            except swarm.WrongState as e:
                errs.append(str(e))

        pool = swarm.Pool(eng, workers=1, on_result=on_result)
        box["pool"] = pool
        pool.submit(b"x").result(30)
        time.sleep(0.05)
        pool.close()
        eng.close()
        self.assertEqual(len(errs), 1)
        self.assertIn("itself", errs[0])


if __name__ == "__main__":
    unittest.main()
