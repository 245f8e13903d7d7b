# SPDX-License-Identifier: MIT
"""Python thread states on the library's threads (libswarm._threads, swarm_thread_hooks_set):
each pool worker / reconcile loop keeps one thread state from its start hook to its stop hook,
so Python thread-local data survives between callbacks on one worker, and every state is
released by its own thread when the thread exits (none left after close, resize or 1,000
create/close cycles). A C host's own hooks are chained, not replaced."""
import ctypes
import os
import subprocess
import sys
import textwrap
import threading
import unittest

import libswarm as swarm
from libswarm import _threads


def wait_for(cond, timeout=20.0):
    """Poll cond() until true or timeout (threads start and exit asynchronously)."""
    ev = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if cond():
            return True
        ev.wait(0.005)
    return cond()


class TestThreadStates(unittest.TestCase):
    def test_thread_local_survives_between_callbacks(self):
        tl = threading.local()
        seen = []

        def infer(req):
            n = getattr(tl, "n", 0) + 1     # a fresh thread state would start at 1 every call
            tl.n = n
            seen.append((threading.get_ident(), n))
            return b""

        eng = swarm.Engine.from_python(infer)
        with swarm.Pool(eng, workers=1) as pool:
            for f in [pool.submit(b"") for _ in range(50)]:
                f.result(30)
            self.assertTrue(wait_for(lambda: _threads.pinned_threads() == 1))
        eng.close()
        self.assertEqual(len({t for t, _ in seen}), 1)
        self.assertEqual(max(n for _, n in seen), 50)
        self.assertEqual(_threads.pinned_threads(), 0)

    def test_pinned_states_follow_workers(self):
        eng = swarm.Engine.from_python(lambda req: b"")
        pool = swarm.Pool(eng, workers=4, max_workers=8)
        for f in [pool.submit(b"") for _ in range(100)]:
            f.result(30)
        self.assertTrue(wait_for(lambda: _threads.pinned_threads() == 4),
                        _threads.pinned_threads())
        pool.resize(8)
        for f in [pool.submit(b"") for _ in range(100)]:
            f.result(30)
        pool.resize(1)
        for f in [pool.submit(b"") for _ in range(10)]:
            f.result(30)
        # Retired workers release their state on their own thread as they exit.
        self.assertTrue(wait_for(lambda: _threads.pinned_threads() == 1),
                        _threads.pinned_threads())
        pool.close()
        eng.close()
        self.assertEqual(_threads.pinned_threads(), 0)

    def test_create_close_cycles_release_every_state(self):
        eng = swarm.Engine.from_python(lambda req: b"ok")
        before = threading.active_count()
        for i in range(300):
            with swarm.Pool(eng, workers=1 + i % 3) as pool:
                self.assertEqual(pool.submit(b"x").result(30).output, b"ok")
        eng.close()
        self.assertEqual(_threads.pinned_threads(), 0)
        self.assertEqual(threading.active_count(), before)

    def test_reconcile_loop_thread_is_pinned(self):
        tl = threading.local()
        counts = []

        def observe():
            tl.n = getattr(tl, "n", 0) + 1
            counts.append(tl.n)
            return swarm.Observation(1, [swarm.Metric(0.0, 1.0)])

        pol = swarm.Policy(swarm.PolicyConfig(mode=swarm.Mode.KEDA, min_replicas=1))
        loop = swarm.ReconcileLoop(pol, observe, lambda n, d: None, interval=0.001)
        loop.start()
        deadline = threading.Event()
        for _ in range(2000):
            if len(counts) >= 5:
                break
            deadline.wait(0.005)
        loop.stop()
        loop.close()
        pol.close()
        self.assertGreaterEqual(len(counts), 5)
        self.assertEqual(counts[:5], [1, 2, 3, 4, 5])
        self.assertEqual(_threads.pinned_threads(), 0)

    def test_stats_while_resizing_never_deadlocks(self):
        # A resize joins exiting workers while holding the pool's locks, and an exiting worker's
        # stop hook needs the GIL: a stats() or target read that waited for those locks while
        # holding the GIL (PyDLL) deadlocked 3 runs of 3 within seconds. Run in a child so a
        # hang fails the test instead of the suite.
        code = textwrap.dedent("""
            import threading, time
            import libswarm as swarm
            eng = swarm.Engine.from_python(lambda req: b"")
            pool = swarm.Pool(eng, workers=2, max_workers=8)
            stop = False
            def resizer():
                i = 0
                while not stop:
                    pool.resize(1 + i % 6)
                    pool.submit(b"")
                    i += 1
            def reader():
                while not stop:
                    pool.stats()
                    pool.target
            ts = [threading.Thread(target=f) for f in (resizer, reader, reader)]
            for t in ts:
                t.start()
            time.sleep(2)
            stop = True
            for t in ts:
                t.join()
            pool.close()
            print("ok")
        """)
        env = dict(os.environ, SWARM_LIBRARY=swarm.library_path())
        try:
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("stats()/target while resizing deadlocked")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "ok")

    def test_host_hooks_are_chained(self):
        # A C host that installed its own hooks before importing the binding keeps them: they
        # still run (here: counted through a ctypes hook installed before the import).
        code = textwrap.dedent("""
            import ctypes, os, sys
            lib = ctypes.CDLL(os.environ["LIB"])   # the same library, before libswarm is imported
            FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
            class H(ctypes.Structure):
                _fields_ = [("size", ctypes.c_uint32), ("start", FN), ("stop", FN),
                            ("user", ctypes.c_void_p)]
            calls = []
            start = FN(lambda u, role: calls.append(("start", role)))
            stop = FN(lambda u, role: calls.append(("stop", role)))
            h = H(ctypes.sizeof(H), start, stop, None)
            assert lib.swarm_thread_hooks_set(ctypes.byref(h)) == 0
            import libswarm as swarm
            from libswarm import _threads
            eng = swarm.Engine.from_python(lambda req: b"")
            with swarm.Pool(eng, workers=2) as pool:
                pool.submit(b"").result(30)
                import time
                for _ in range(4000):           # the second worker may still be starting
                    if _threads.pinned_threads() == 2:
                        break
                    time.sleep(0.005)
                assert _threads.pinned_threads() == 2, _threads.pinned_threads()
            assert sorted(calls) == [("start", b"pool-worker")] * 2 + [("stop", b"pool-worker")] * 2, calls
            print("ok")
        """)
        env = dict(os.environ, LIB=swarm.library_path(), SWARM_LIBRARY=swarm.library_path())
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "ok")


if __name__ == "__main__":
    unittest.main()
