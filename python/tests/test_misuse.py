# SPDX-License-Identifier: MIT
"""Issue 11: what a new user's scripts found. One test per defect, each written to reproduce it
first: memory safety of request/response views (1, 2, 10), self-close from callbacks (5), the
engine contract (7, 8, 9), futures, channel exceptions and argument validation (11)."""
import concurrent.futures
import gc
import logging
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
import unittest

import libswarm as swarm


def run_script(body: str, timeout: float = 60):
    code = "import libswarm as swarm, threading, time, sys, os, signal\n" + \
        textwrap.dedent(body)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(swarm.__file__))] +
        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("SWARM_LIBRARY", swarm.library_path())
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], env=env,
                          capture_output=True, text=True, timeout=timeout)


class TestViewLifetime(unittest.TestCase):
    """Defects 1, 2, 10: no Python object reaches a C request/response after its lifetime."""

    def test_late_write_after_pool_close_raises_wrongstate(self):
        # Defect 1: SIGSEGV in write() (3 of 3 runs) when a view kept by a background thread
        # was written after infer returned and the pool closed. Writers race completion and
        # close here; the child must finish cleanly, every late write raising WrongState.
        # Runs in a child so that a crash is a test failure, not the end of the suite.
        r = run_script("""
            views = []
            lock = threading.Lock()
            stop = threading.Event()
            late = [0]
            def infer(req):
                with lock:
                    views.append(req)
                return b"ok"
            def writer():
                while not stop.is_set():
                    with lock:
                        vs = views[-4:]
                    for v in vs:
                        try:
                            v.write(b"late" * 64)
                        except swarm.WrongState:
                            late[0] += 1
            ws = [threading.Thread(target=writer) for _ in range(3)]
            for w in ws:
                w.start()
            for rnd in range(30):
                eng = swarm.Engine.from_python(infer)
                pool = swarm.Pool(eng, workers=2)
                futs = [pool.submit(b"x") for _ in range(40)]
                for f in futs:
                    f.result(10)
                pool.close()
                eng.close()
                with lock:
                    del views[:-4]
            stop.set()
            for w in ws:
                w.join()
            print("rounds done, late writes refused:", late[0] > 0)
        """, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertIn("rounds done, late writes refused: True", r.stdout)

    def test_late_writes_never_reach_another_request(self):
        # Defect 2: a view written late (no close) landed in another request's output:
        # 60-132 of 4,000 outputs held a different request's bytes. Writers race completion.
        views = []
        lock = threading.Lock()
        stop = threading.Event()

        def infer(req):
            with lock:
                views.append(req)
            return b"<%d>" % req.id

        def late_writer():
            while not stop.is_set():
                with lock:
                    vs = views[-8:]
                for v in vs:
                    try:
                        v.write(b"!%d!" % v.id)
                    except swarm.WrongState:
                        pass
        writers = [threading.Thread(target=late_writer) for _ in range(2)]
        for t in writers:
            t.start()
        try:
            eng = swarm.Engine.from_python(infer)
            with swarm.Pool(eng, workers=4) as pool:
                futs = {i: pool.submit(b"", id=i) for i in range(1, 4001)}
                outs = {i: f.result(60).output for i, f in futs.items()}
            eng.close()
        finally:
            stop.set()
            for t in writers:
                t.join()
        foreign = []
        for i, out in outs.items():
            rest = out.replace(b"<%d>" % i, b"").replace(b"!%d!" % i, b"")
            if rest:
                foreign.append((i, out))
        self.assertEqual(foreign, [], "outputs carry another request's bytes")

    def test_response_view_after_completion_callback(self):
        # Defect 10: a response view read after its response was freed returned another
        # object's fields. Now it raises WrongState.
        kept = []
        eng = swarm.Engine.mock()
        resp = swarm.Response()
        resp.set_complete(lambda rid, view: kept.append((view.data, view)))
        eng.infer_into(swarm.InferRequest(b"first", id=1), resp)
        self.assertEqual(kept[0][0], b"first")
        resp.close()
        other = swarm.Response()
        eng.infer_into(swarm.InferRequest(b"second", id=2), other)
        view = kept[0][1]
        for read in (lambda: view.data, lambda: view.status, lambda: view.error_message,
                     view.info):
            with self.assertRaises(swarm.WrongState):
                read()
        other.close()
        eng.close()

    def test_view_methods_after_return(self):
        kept = []

        def infer(req):
            kept.append(req)
            return b""
        with swarm.Engine.from_python(infer) as e:
            e.infer(b"x")
        v = kept[0]
        with self.assertRaises(swarm.WrongState):
            v.write(b"x")
        with self.assertRaises(swarm.WrongState):
            v.should_stop()
        with self.assertRaises(swarm.WrongState):
            v.set_usage(1, 1)
        with self.assertRaises(swarm.WrongState):
            v.set_error(swarm.Unavailable.code)
        self.assertEqual(v.payload, b"x")     # the snapshot stays readable


class TestReentrancy(unittest.TestCase):
    """Defect 5: pool.close() from on_result or pool.stop() inside the engine hung."""

    def test_close_from_on_result_raises_wrongstate(self):
        r = run_script("""
            seen = []
            box = {}
            def on_result(res):
                try:
                    box["pool"].close()
                except swarm.WrongState as exc:
                    seen.append(str(exc))
            eng = swarm.Engine.from_python(lambda r: b"x")
            pool = swarm.Pool(eng, workers=1, on_result=on_result)
            box["pool"] = pool
            pool.submit(b"").result(10)
            time.sleep(0.1)
            pool.close()
            print("seen", len(seen), "itself" in seen[0])
        """, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertIn("seen 1 True", r.stdout)

    def test_stop_inside_engine_raises_wrongstate(self):
        r = run_script("""
            box = {}
            def infer(req):
                box["pool"].stop()
                return b"never"
            eng = swarm.Engine.from_python(infer, log_level=None)
            pool = swarm.Pool(eng, workers=1)
            box["pool"] = pool
            try:
                pool.submit(b"").result(10)
            except swarm.WrongState as exc:
                print("raised", "another thread" in str(exc))
            pool.close()
        """, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertIn("raised True", r.stdout)

    def test_shutdown_nowait_from_callback_works(self):
        done = threading.Event()
        box = {}

        def on_result(res):
            box["pool"].shutdown(wait=False)
            done.set()
        eng = swarm.Engine.from_python(lambda r: b"x")
        pool = swarm.Pool(eng, workers=1, on_result=on_result)
        box["pool"] = pool
        pool.submit(b"").result(10)
        self.assertTrue(done.wait(10))
        deadline = time.monotonic() + 10
        while pool._alive and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertFalse(pool._alive)
        eng.close()


class TestEngineContract(unittest.TestCase):
    """Defects 7, 8: output types checked; the original exception kept; one log line."""

    def _serve(self, out):
        eng = swarm.Engine.from_python(lambda r: out, log_level=None)
        try:
            with swarm.Pool(eng, workers=1) as pool:
                return pool.submit(b"").result(10)
        finally:
            eng.close()

    def test_dict_output_fails_with_typeerror(self):
        # Defect 7: a dict (llama-cpp-python's completion) gave ok and b'idobjectchoices'.
        with self.assertRaises(TypeError) as cm:
            self._serve({"id": 1, "object": "text_completion", "choices": []})
        self.assertIn("dict", str(cm.exception))
        self.assertEqual(cm.exception.result.output, b"")

    def test_set_output_fails(self):
        with self.assertRaises(TypeError) as cm:
            self._serve({b"a", b"b"})
        self.assertIn("set", str(cm.exception))

    def test_tuple_output_checked_before_writing(self):
        # Defect 7: a tuple wrote partial output then failed.
        with self.assertRaises(TypeError) as cm:
            self._serve((b"part", 3))
        self.assertIn("int", str(cm.exception))
        self.assertEqual(cm.exception.result.output, b"")
        self.assertEqual(self._serve((b"a", "b")).output, b"ab")
        self.assertEqual(self._serve([b"x"]).output, b"x")
        self.assertEqual(self._serve(iter([b"g", b"en"])).output, b"gen")
        with self.assertRaises(TypeError):
            self._serve(3.5)

    def test_original_exception_from_future(self):
        # Defect 8: every user exception was "InternalError: internal error (bug)".
        class Oops(Exception):
            pass

        def infer(req):
            raise Oops("the real reason")
        eng = swarm.Engine.from_python(infer, log_level=None)
        with swarm.Pool(eng, workers=1) as pool:
            f = pool.submit(b"")
            with self.assertRaises(Oops) as cm:
                f.result(10)
            self.assertIsInstance(f.exception(), Oops)
            self.assertEqual(cm.exception.result.status, swarm.InternalError.code)
        eng.close()

    def test_keyboardinterrupt_and_systemexit_propagate_as_themselves(self):
        def infer(req):
            if req.payload == b"ki":
                raise KeyboardInterrupt
            raise SystemExit(2)
        eng = swarm.Engine.from_python(infer, log_level=None)
        with self.assertRaises(KeyboardInterrupt):
            eng.infer(b"ki")
        with self.assertRaises(SystemExit):
            eng.infer(b"se")
        with swarm.Pool(eng, workers=1) as pool:
            with self.assertRaises(KeyboardInterrupt):
                pool.submit(b"ki").result(10)
            with self.assertRaises(SystemExit):
                pool.submit(b"se").result(10)
        eng.close()

    def test_one_log_line_per_failure_level_configurable(self):
        def infer(req):
            raise ValueError("bad")
        eng = swarm.Engine.from_python(infer, log_level=logging.INFO)
        with self.assertLogs("swarm", level="INFO") as cm:
            with swarm.Pool(eng, workers=1) as pool:
                for _ in range(5):
                    with self.assertRaises(ValueError):
                        pool.submit(b"").result(10)
        eng.close()
        self.assertEqual(len(cm.records), 5)
        self.assertTrue(all(r.levelno == logging.INFO for r in cm.records))
        self.assertEqual(sum(1 for r in cm.records if r.exc_info), 1)


class TestFutures(unittest.TestCase):
    """Futures that raise, exception(), a real cancel(), shutdown()."""

    def test_cancel_queued_task_never_runs(self):
        gate = threading.Event()
        ran = []

        def infer(req):
            ran.append(req.id)
            gate.wait(10)
            return b"done"
        eng = swarm.Engine.from_python(infer)
        with swarm.Pool(eng, workers=1) as pool:
            first = pool.submit(b"", id=1)
            queued = [pool.submit(b"", id=i) for i in range(2, 6)]
            deadline = time.monotonic() + 10
            while not first.running() and time.monotonic() < deadline:
                time.sleep(0.005)
            self.assertFalse(first.cancel())         # running: cannot cancel
            self.assertTrue(queued[1].cancel())
            self.assertTrue(queued[1].cancelled())
            gate.set()
            self.assertEqual(first.result(10).output, b"done")
            for f in (queued[0], queued[2], queued[3]):
                self.assertEqual(f.result(10).output, b"done")
            pool.stop()
        eng.close()
        self.assertEqual(sorted(ran), [1, 2, 4, 5])

    def test_shutdown_cancel_futures(self):
        gate = threading.Event()

        def infer(req):
            gate.wait(10)
            return b"ok"
        eng = swarm.Engine.from_python(infer)
        pool = swarm.Pool(eng, workers=1)
        futs = [pool.submit(b"") for _ in range(6)]
        deadline = time.monotonic() + 10
        while not futs[0].running() and time.monotonic() < deadline:
            time.sleep(0.005)
        threading.Timer(0.05, gate.set).start()
        pool.shutdown(wait=True, cancel_futures=True)
        self.assertEqual(futs[0].result(0).output, b"ok")
        self.assertTrue(all(f.cancelled() for f in futs[1:]))
        with self.assertRaises(swarm.HandleClosed):
            pool.submit(b"")
        pool.shutdown()   # idempotent
        eng.close()

    def test_as_completed_and_wait(self):
        eng = swarm.Engine.from_python(lambda r: r.payload)
        with swarm.Pool(eng, workers=2) as pool:
            futs = [pool.submit(b"%d" % i) for i in range(20)]
            done = {f.result().output for f in concurrent.futures.as_completed(futs, 30)}
        eng.close()
        self.assertEqual(done, {b"%d" % i for i in range(20)})


class TestConventions(unittest.TestCase):
    """Defect 11 and the Python conventions: validated arguments, queue exceptions."""

    def test_huge_timeout_is_rejected_not_truncated(self):
        # Defect 11: recv(timeout=1e30) returned WouldBlock at once (truncated to int64).
        with swarm.Channel(4, 8) as ch:
            with self.assertRaises(swarm.InvalidArgument) as cm:
                ch.recv(timeout=1e30)
            self.assertIn("timeout", str(cm.exception))
            self.assertIn("<=", str(cm.exception))
            with self.assertRaises(swarm.InvalidArgument):
                ch.recv(timeout=float("nan"))
            ch.send(b"12345678")
            self.assertEqual(ch.recv(timeout=float("inf")), b"12345678")

    def test_channel_errors_name_the_argument(self):
        # Defect 11: capacity=0, elem_size=50 MB and full_mode=7 all read
        # "invalid argument: swarm_chan_create".
        for kwargs, word in (({"capacity": 0}, "capacity"),
                             ({"elem_size": 50 << 20}, "elem_size"),
                             ({"full_mode": 7}, "full_mode"),
                             ({"capacity": 2**64}, "capacity")):
            with self.subTest(**kwargs):
                args = dict(capacity=8, elem_size=8)
                args.update(kwargs)
                with self.assertRaises(swarm.InvalidArgument) as cm:
                    swarm.Channel(**args)
                self.assertIn(word, str(cm.exception))

    def test_queue_exceptions(self):
        with swarm.ObjectChannel(1) as ch:
            with self.assertRaises(queue.Empty):
                ch.try_recv()
            with self.assertRaises(queue.Empty):
                ch.recv(timeout=0.01)
            with self.assertRaises(swarm.WouldBlock):
                ch.try_recv()
            with self.assertRaises(TimeoutError):
                ch.recv(timeout=0.01)
            ch.send(1)
            with self.assertRaises(queue.Full):
                ch.try_send(2)
            with self.assertRaises(queue.Full):
                ch.send(2, timeout=0.01)
            with self.assertRaises(swarm.TimedOut):
                ch.send(2, timeout=0.01)
            self.assertEqual(ch.recv(), 1)
            self.assertEqual(ch.pending, 0)

    def test_batch_bounds_named(self):
        with swarm.Channel(8, 8) as ch:
            with self.assertRaises(swarm.InvalidArgument) as cm:
                ch.recv_batch(0)
            self.assertIn("max_items", str(cm.exception))
            with self.assertRaises(swarm.InvalidArgument) as cm:
                ch.recv_batch(4, min_items=5)
            self.assertIn("min_items", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
