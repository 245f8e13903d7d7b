# SPDX-License-Identifier: MIT
"""Interpreter shutdown while C workers run Python code: no crash, no hang. Each scenario runs in
its own interpreter (subprocess) with a hard timeout."""
import os
import subprocess
import sys
import textwrap
import unittest

import libswarm as swarm

HAVE_POOL = swarm.has_symbol("swarm_pool_create")
HAVE_RECONCILE = swarm.has_symbol("swarm_reconcile_create")


def run_script(body: str, timeout: float = 30):
    code = "import libswarm as swarm, threading, time, sys\n" + textwrap.dedent(body)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(swarm.__file__))] +
        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("SWARM_LIBRARY", swarm.library_path())
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], env=env,
                          capture_output=True, text=True, timeout=timeout)


class TestShutdown(unittest.TestCase):
    def assertCleanExit(self, r, rc=0):
        msg = f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        self.assertEqual(r.returncode, rc, msg)
        self.assertNotIn("Fatal Python error", r.stderr, msg)
        self.assertNotIn("Segmentation fault", r.stderr, msg)
        self.assertNotIn("Exception ignored", r.stderr, msg)

    @unittest.skipUnless(HAVE_POOL, "pool not in the loaded library")
    def test_shutdown_with_busy_pool_of_python_engine(self):
        r = run_script("""
            class Slow:
                def infer(self, req):
                    time.sleep(0.002)
                    return req.payload
            eng = swarm.Engine.from_python(Slow())
            pool = swarm.Pool(eng, workers=4, queue_capacity=4096)
            for i in range(3000):
                pool.submit(b"x")
            time.sleep(0.05)
            print("exiting with", pool.stats()["busy"], "busy workers", flush=True)
            # no close(): interpreter exit must stop the workers first
        """)
        self.assertCleanExit(r)
        self.assertIn("exiting with", r.stdout)

    @unittest.skipUnless(HAVE_POOL, "pool not in the loaded library")
    def test_shutdown_sys_exit_while_producers_and_long_task_run(self):
        r = run_script("""
            def infer(req):
                time.sleep(0.2 if req.payload == b"long" else 0.001)
                return b"ok"
            eng = swarm.Engine.from_python(infer)
            pool = swarm.Pool(eng, workers=3, queue_capacity=64)
            pool.submit(b"long")
            def producer():
                while True:
                    try:
                        pool.submit(b"x")
                    except swarm.SwarmError:
                        return
            for _ in range(2):
                threading.Thread(target=producer, daemon=True).start()
            time.sleep(0.05)
            sys.exit(3)
        """)
        self.assertCleanExit(r, rc=3)

    def test_shutdown_with_thread_blocked_in_recv(self):
        r = run_script("""
            ch = swarm.ObjectChannel(4)
            tok = swarm.CancelToken()
            def rx():
                try:
                    ch.recv()
                except swarm.SwarmError:
                    pass
            def rx2():
                try:
                    ch.recv(cancel=tok)
                except swarm.SwarmError:
                    pass
            threading.Thread(target=rx, daemon=True).start()
            threading.Thread(target=rx2, daemon=True).start()
            bc = swarm.Channel(1, 8)
            bc.send(b"12345678")
            def tx():
                try:
                    bc.send(b"87654321")   # blocks: full
                except swarm.SwarmError:
                    pass
            threading.Thread(target=tx, daemon=True).start()
            time.sleep(0.05)
            print("bye", flush=True)
        """)
        self.assertCleanExit(r)

    @unittest.skipUnless(HAVE_POOL and HAVE_RECONCILE, "pool/reconcile not in the library")
    def test_shutdown_with_running_reconcile_loop(self):
        r = run_script("""
            eng = swarm.Engine.from_python(lambda req: (time.sleep(0.001), b"")[1])
            pool = swarm.Pool(eng, workers=1, max_workers=8, queue_capacity=4096)
            pol = swarm.Policy(mode=swarm.Mode.HPA, min_replicas=1, max_replicas=8)
            loop = swarm.ReconcileLoop.for_pool(pool, pol, 2.0, interval=0.005)
            loop.start()
            for i in range(2000):
                pool.submit(b"x")
            time.sleep(0.1)
            print("target", pool.target, flush=True)
        """)
        self.assertCleanExit(r)

    @unittest.skipUnless(HAVE_POOL, "pool not in the loaded library")
    def test_shutdown_engine_raising_during_exit(self):
        r = run_script("""
            import logging
            logging.disable(logging.CRITICAL)
            def infer(req):
                time.sleep(0.001)
                raise RuntimeError("fails all the time")
            eng = swarm.Engine.from_python(infer)
            pool = swarm.Pool(eng, workers=4, queue_capacity=2048)
            for i in range(2000):
                pool.submit(b"x")
            time.sleep(0.03)
        """)
        self.assertCleanExit(r)


if __name__ == "__main__":
    unittest.main()
