# SPDX-License-Identifier: MIT
"""Engines: Python engines, responses, decorators, the mock, and every error path."""
import gc
import threading
import time
import unittest

import libswarm as swarm
from libswarm import engine as engmod

HAVE_ENGINE = swarm.has_symbol("swarm_engine_create")


class Upper:
    name = "upper"

    def __init__(self):
        self.closed = 0
        self.seen = []

    def infer(self, req):
        self.seen.append((req.id, req.priority, req.payload, req.model_version, req.temperature,
                          req.top_p, req.max_tokens, req.seed, dict(req.extras), req.user))
        req.set_usage(len(req.payload), len(req.payload))
        return req.payload.upper()

    def close(self):
        self.closed += 1


@unittest.skipUnless(HAVE_ENGINE, "engine module not in the loaded library")
class TestPythonEngine(unittest.TestCase):
    def test_engine_python_infer_roundtrip_and_request_fields(self):
        obj = Upper()
        before = engmod.python_engines_alive()
        e = swarm.Engine.from_python(obj)
        self.assertEqual(e.name, "upper")
        self.assertEqual(e.kind, "python")
        r = e.infer(b"hello", id=7, priority=2, model_version="v2", temperature=0.5, top_p=0.9,
                    max_tokens=16, seed=42, extras={"stop": "\n"}, user=99)
        self.assertEqual(r.output, b"HELLO")
        self.assertEqual(r.text, "HELLO")
        self.assertTrue(r.ok)
        self.assertEqual(r.info["input_units"], 5)
        self.assertEqual(r.info["request_id"], 7)
        self.assertEqual(obj.seen[0], (7, 2, b"hello", "v2", 0.5, 0.9, 16, 42, {"stop": "\n"},
                                       99))
        r2 = e.infer(swarm.InferRequest(payload="str payload"))
        self.assertEqual(r2.output, b"STR PAYLOAD")
        self.assertEqual(e.python_stats(), {"calls": 2, "errors": 0})
        e.close()
        e.close()
        self.assertEqual(obj.closed, 1)      # ops->destroy ran once
        self.assertEqual(engmod.python_engines_alive(), before)
        with self.assertRaises(swarm.HandleClosed):
            e.infer(b"x")
        with self.assertRaises(swarm.HandleClosed):
            _ = e.name

    def test_engine_plain_callable(self):
        with swarm.Engine.from_python(lambda req: b"<" + req.payload + b">", name="wrap") as e:
            self.assertEqual(e.name, "wrap")
            self.assertEqual(e.infer(b"a").output, b"<a>")

    def test_engine_wrong_types(self):
        with self.assertRaises(TypeError):
            swarm.Engine.from_python(42)
        with swarm.Engine.from_python(lambda r: b"") as e:
            with self.assertRaises(TypeError):
                e.infer(123)
            with self.assertRaises(TypeError):
                e.retry("3")
            with self.assertRaises(TypeError):
                e.fallback("not an engine")
            with self.assertRaises(TypeError):
                e.infer(b"x", cancel="tok")
            with self.assertRaises(swarm.InvalidArgument):
                e.infer(b"x", id=-1)
            with self.assertRaises(swarm.InvalidArgument):
                e.infer_batch([])

    def test_engine_exception_is_kept_and_logged_once(self):
        # Issue 11 (8): the original exception reaches the caller (status SWARM_EINTERNAL on
        # the C side); one log line per failure, the traceback only the first time.
        class Boom:
            def infer(self, req):
                raise KeyError("kaboom")
        with swarm.Engine.from_python(Boom()) as e:
            with self.assertLogs("swarm", level="ERROR") as cm:
                with self.assertRaises(KeyError) as ex:
                    e.infer(b"x")
            self.assertIn("kaboom", ex.exception.result.error)
            self.assertEqual(ex.exception.result.status, swarm.InternalError.code)
            self.assertTrue(any("Traceback" in line and "kaboom" in line for line in cm.output))
            self.assertEqual(e.python_stats()["errors"], 1)
            # The engine keeps serving after an exception; no second traceback.
            with self.assertLogs("swarm", level="ERROR") as cm:
                with self.assertRaises(KeyError):
                    e.infer(b"y")
            self.assertEqual(len(cm.output), 1)
            self.assertNotIn("Traceback", cm.output[0])

    def test_engine_exception_code_mapping(self):
        class Coded(Exception):
            swarm_code = swarm.Overloaded.code

        class E:
            def infer(self, req):
                kind = req.payload
                if kind == b"unavail":
                    raise swarm.Unavailable("backend down")
                if kind == b"coded":
                    raise Coded("busy")
                if kind == b"base":
                    raise SystemExit(3)     # even BaseException never reaches C
                if kind == b"badtype":
                    return 12345
                if kind == b"inval":
                    raise swarm.InvalidArgument("bad prompt")
                return b"ok"
        with swarm.Engine.from_python(E()) as e:
            with self.assertLogs("swarm", level="WARNING"):
                with self.assertRaises(swarm.Unavailable) as cm:
                    e.infer(b"unavail")
                self.assertIn("backend down", cm.exception.result.error)
                with self.assertRaises(Coded) as cm2:     # the original, status Overloaded
                    e.infer(b"coded")
                self.assertEqual(cm2.exception.result.status, swarm.Overloaded.code)
                with self.assertRaises(SystemExit):       # propagates as itself
                    e.infer(b"base")
                with self.assertRaises(TypeError) as cm3:
                    e.infer(b"badtype")
                self.assertIn("int", str(cm3.exception))
                with self.assertRaises(swarm.InvalidArgument):
                    e.infer(b"inval")
            self.assertEqual(e.infer(b"fine").output, b"ok")

    def test_engine_streaming_generator_and_stop(self):
        class Gen:
            def infer(self, req):
                for i in range(5):
                    yield f"tok{i} "
        with swarm.Engine.from_python(Gen()) as e:
            chunks = []
            r = e.infer(b"p", stream=chunks.append)
            self.assertEqual(chunks, [b"tok0 ", b"tok1 ", b"tok2 ", b"tok3 ", b"tok4 "])
            self.assertEqual(r.output, b"".join(chunks))
            self.assertEqual(r.info["n_streamed"], 5)
            # A stream callback returning False stops the engine: the write returns ECANCELED.
            got = []

            def stop_after_two(c):
                got.append(c)
                return len(got) < 2
            with self.assertRaises(swarm.Canceled) as cm:
                e.infer(b"p", stream=stop_after_two)
            self.assertEqual(len(got), 2)
            self.assertEqual(cm.exception.result.output, b"tok0 tok1 ")

    def test_engine_request_write_and_view_expires(self):
        views = []

        class W:
            def infer(self, req):
                views.append(req)
                req.write(b"a")
                req.write("b")
                self.stop = req.should_stop()
                return None
        w = W()
        with swarm.Engine.from_python(w) as e:
            self.assertEqual(e.infer(b"").output, b"ab")
            self.assertFalse(w.stop)
        with self.assertRaises(swarm.WrongState):
            views[0].write(b"late")
        with self.assertRaises(swarm.WrongState):
            views[0].should_stop()

    def test_engine_should_stop_sees_cancel_and_deadline(self):
        class Slow:
            def infer(self, req):
                while True:
                    rc = req.stop_reason()
                    if rc:
                        raise swarm.errors.error_class(rc)("stopped")
                    time.sleep(0.002)
        with swarm.Engine.from_python(Slow()) as e:
            tok = swarm.CancelToken()
            threading.Timer(0.05, tok.cancel).start()
            with self.assertLogs("swarm", level="WARNING"):
                with self.assertRaises(swarm.Canceled):
                    e.infer(b"x", cancel=tok)
                with self.assertRaises(swarm.TimedOut):
                    e.infer(b"x", timeout=0.03)
                t = e.timeout(0.03)
                self.assertEqual(t.name, "timeout(Slow)")
                with self.assertRaises(swarm.TimedOut):
                    t.infer(b"x")
            t.close()
            tok.close()

    def test_engine_batch_paths(self):
        class B:
            def __init__(self):
                self.batches = []

            def infer(self, req):
                return b"single"

            def infer_batch(self, reqs):
                self.batches.append(len(reqs))
                out = []
                for r in reqs:
                    if r.payload == b"bad":
                        out.append(swarm.Unavailable("one failed"))
                    elif r.payload == b"err":
                        r.set_error(swarm.Overloaded.code, "set_error used", retry_after=0.5)
                        out.append(None)
                    else:
                        out.append(r.payload * 2)
                return out
        b = B()
        with swarm.Engine.from_python(b) as e:
            with self.assertLogs("swarm", level="WARNING"):
                res = e.infer_batch([b"a", b"bad", b"c", b"err"])
            self.assertEqual(b.batches, [4])
            self.assertEqual([r.status for r in res],
                             [0, swarm.Unavailable.code, 0, swarm.Overloaded.code])
            self.assertEqual(res[0].output, b"aa")
            self.assertEqual(res[3].error, "set_error used")
            self.assertEqual(res[3].info["retry_after_ns"], 500_000_000)
            with self.assertRaises(swarm.Unavailable):
                res[1].raise_for_status()

        class WholeFails:
            def infer(self, req):
                return b""

            def infer_batch(self, reqs):
                raise RuntimeError("batch exploded")
        with swarm.Engine.from_python(WholeFails()) as e:
            with self.assertLogs("swarm", level="ERROR"):
                res = e.infer_batch([b"1", b"2"])
            self.assertEqual([r.status for r in res], [swarm.InternalError.code] * 2)

        class WrongCount:
            def infer(self, req):
                return b""

            def infer_batch(self, reqs):
                return [b"only one"]
        with swarm.Engine.from_python(WrongCount()) as e:
            with self.assertLogs("swarm", level="WARNING"):
                res = e.infer_batch([b"1", b"2"])
            self.assertEqual([r.status for r in res], [swarm.InternalError.code] * 2)
        # No infer_batch: the library calls infer per request.
        with swarm.Engine.from_python(lambda r: r.payload + b"!") as e:
            self.assertEqual([r.output for r in e.infer_batch([b"x", "y"])], [b"x!", b"y!"])

    def test_engine_health_and_cancel(self):
        class H:
            def __init__(self):
                self.h = True
                self.cancelled = []

            def infer(self, req):
                return b""

            def health(self):
                if self.h == "raise":
                    raise RuntimeError("health broke")
                return self.h

            def cancel(self, rid):
                self.cancelled.append(rid)
        h = H()
        with swarm.Engine.from_python(h) as e:
            self.assertEqual(e.health(), 0)
            self.assertTrue(e.healthy)
            h.h = False
            self.assertEqual(e.health(), swarm.Unavailable.code)
            h.h = swarm.Overloaded.code
            self.assertEqual(e.health(), swarm.Overloaded.code)
            h.h = "raise"
            with self.assertLogs("swarm", level="ERROR"):
                self.assertEqual(e.health(), swarm.InternalError.code)
            e.cancel(17)
            self.assertEqual(h.cancelled, [17])
        with swarm.Engine.from_python(lambda r: b"") as e:
            self.assertEqual(e.health(), 0)
            with self.assertRaises(swarm.NotSupported):
                e.cancel(1)

    def test_engine_create_enomem_releases_registry(self):
        a = swarm.Allocator()
        a.fail_after(0)
        before = engmod.python_engines_alive()
        with self.assertRaises(swarm.OutOfMemory):
            swarm.Engine.from_python(lambda r: b"", allocator=a)
        self.assertEqual(engmod.python_engines_alive(), before)

    def test_engine_finalizer_releases_python_engine(self):
        obj = Upper()
        before = engmod.python_engines_alive()
        e = swarm.Engine.from_python(obj)
        e.infer(b"x")
        del e
        gc.collect()
        self.assertEqual(obj.closed, 1)
        self.assertEqual(engmod.python_engines_alive(), before)

    def test_engine_concurrent_python_threads(self):
        with swarm.Engine.from_python(lambda r: r.payload) as e:
            errs = []

            def worker(k):
                try:
                    for i in range(200):
                        p = b"%d-%d" % (k, i)
                        assert e.infer(p).output == p
                except Exception as x:  # pragma: no cover
                    errs.append(x)
            ths = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
            for t in ths:
                t.start()
            for t in ths:
                t.join()
            self.assertEqual(errs, [])
            self.assertEqual(e.python_stats()["calls"], 1200)


@unittest.skipUnless(HAVE_ENGINE, "engine module not in the loaded library")
class TestResponse(unittest.TestCase):
    def test_response_wrappers_and_misuse(self):
        r = swarm.Response(initial_capacity=16, max_bytes=64)
        self.assertEqual(r.status, swarm.WouldBlock.code)   # not complete yet
        self.assertEqual(r.data, b"")
        self.assertEqual(r.error_message, "")
        with self.assertRaises(swarm.WrongState):
            r.write(b"not running")
        with self.assertRaises(swarm.WrongState):
            r.set_usage(1, 1)
        with self.assertRaises((swarm.WrongState, swarm.InvalidArgument)):
            r.set_error(swarm.Unavailable.code, "x")
        with self.assertRaises(swarm.InvalidArgument):
            r.set_error(0, "x")
        done = []
        r.set_complete(lambda rid, view: done.append((rid, view.status, view.data,
                                                      view.info()["complete"])))
        r.set_stream(None)
        big = swarm.Engine.from_python(lambda req: b"x" * 100)
        st = big.infer_into(swarm.InferRequest(payload=b"", id=5), r)
        self.assertEqual(st, swarm.OutOfRange.code)          # past max_bytes
        self.assertEqual(done, [(5, swarm.OutOfRange.code, b"", 1)])
        with self.assertRaises(swarm.WrongState):          # completed: not fresh
            big.infer_into(swarm.InferRequest(), r)
        r.reset()
        r.set_complete(None)
        ok = swarm.Engine.from_python(lambda req: b"fits")
        self.assertEqual(ok.infer_into(swarm.InferRequest(), r), 0)
        self.assertEqual(r.data, b"fits")
        self.assertEqual(r.info()["output_bytes"], 4)
        with self.assertRaises(TypeError):
            r.set_stream(5)
        with self.assertRaises(TypeError):
            r.set_complete(5)
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Response(initial_capacity=128, max_bytes=64)
        r.close()
        with self.assertRaises(swarm.HandleClosed):
            r.reset()
        big.close()
        ok.close()


@unittest.skipUnless(HAVE_ENGINE, "engine module not in the loaded library")
class TestDecoratorsAndMock(unittest.TestCase):
    def test_error_classification(self):
        self.assertTrue(swarm.error_retryable(swarm.Unavailable.code))
        self.assertFalse(swarm.error_retryable(swarm.InvalidArgument.code))
        self.assertTrue(swarm.error_is_failure(swarm.InternalError.code))
        self.assertFalse(swarm.error_is_failure(swarm.Canceled.code))

    def test_mock_engine_and_script(self):
        m = swarm.Engine.mock(seed=1, output_bytes=10, chunk_bytes=3)
        self.assertEqual(m.name, "mock")
        self.assertEqual(len(m.infer(b"p").output), 10)
        m.mock_script([swarm.Unavailable.code, 0])
        with self.assertRaises(swarm.Unavailable):
            m.infer(b"x")
        m.infer(b"x")
        s = m.mock_stats()
        self.assertEqual(s["calls"], 3)
        self.assertEqual(s["failures"], 1)
        with self.assertRaises(swarm.OutOfRange):
            m.mock_script([0] * 300)
        with self.assertRaises(swarm.InvalidArgument):
            m.retry_stats()                      # another kind
        with self.assertRaises(swarm.InvalidArgument):
            m.python_stats()
        m.close()
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Engine.mock(faults=[(1, 0.5)])          # fault code >= 0
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Engine.mock(faults=[(swarm.Unavailable.code, 2.0)])
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Engine.mock(latency_kind=9)

    def test_retry_breaker_fallback_split_batcher(self):
        slept = []
        m = swarm.Engine.mock()
        r = m.retry(3, base=0.001, cap=0.002, sleep=lambda ns: slept.append(ns))
        m.mock_script([swarm.Unavailable.code, swarm.Overloaded.code])
        self.assertEqual(r.infer(b"ok").output, b"ok")
        s = r.retry_stats()
        self.assertEqual((s["attempts"], s["retries"]), (3, 2))
        self.assertEqual(len(slept), 2)
        with self.assertRaises(swarm.InvalidArgument):
            m.retry(0)
        with self.assertRaises(swarm.InvalidArgument):
            m.retry(3, base=1.0, cap=0.5)

        transitions = []
        b = m.breaker(window_size=4, minimum_calls=2, failure_rate_pct=50, open_time=60,
                      on_transition=lambda a, c, now: transitions.append((a, c)))
        self.assertEqual(b.breaker_state, swarm.BreakerState.CLOSED)
        m.mock_script([swarm.Unavailable.code] * 2)
        for _ in range(2):
            with self.assertRaises(swarm.Unavailable):
                b.infer(b"x")
        self.assertEqual(b.breaker_state, swarm.BreakerState.OPEN)
        with self.assertRaises(swarm.BreakerOpen):
            b.infer(b"x")
        self.assertEqual(b.health(), swarm.BreakerOpen.code)
        self.assertEqual(transitions, [(swarm.BreakerState.CLOSED, swarm.BreakerState.OPEN)])
        bs = b.breaker_stats()
        self.assertEqual(bs["state"], swarm.BreakerState.OPEN)
        self.assertGreaterEqual(bs["rejected"], 1)
        with self.assertRaises(swarm.InvalidArgument):
            m.breaker(failure_rate_pct=101)

        secondary = swarm.Engine.from_python(lambda req: b"from secondary")
        fb = b.fallback(secondary)
        self.assertIn("fallback", fb.name)
        self.assertEqual(fb.infer(b"x").output, b"from secondary")
        with self.assertRaises(swarm.InvalidArgument):
            m.fallback(m)            # primary == secondary

        a = swarm.Engine.from_python(lambda req: b"A", name="A")
        c = swarm.Engine.from_python(lambda req: b"C", name="C")
        sp = swarm.Engine.split([a, c], [1, 0])
        self.assertEqual({sp.infer(b"", id=i).output for i in range(20)}, {b"A"})
        self.assertEqual(sp.split_counts(), [20, 0])
        sp.split_set_weights([0, 1])
        self.assertEqual(sp.infer(b"", id=3).output, b"C")
        with self.assertRaises(swarm.InvalidArgument):
            sp.split_set_weights([0, 0])
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Engine.split([a, c], [0, 0])
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Engine.split([a], [1, 2])

        bt = swarm.Engine.mock(batch=True).batcher(4, max_wait=0.001)
        outs = []
        ths = [threading.Thread(target=lambda i=i: outs.append(bt.infer(b"%d" % i).output))
               for i in range(8)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        self.assertEqual(sorted(outs), sorted(b"%d" % i for i in range(8)))
        st = bt.batcher_stats()
        self.assertEqual(st["requests"], 8)
        with self.assertRaises(swarm.InvalidArgument):
            m.batcher(5000)
        # Closing the inner Python handles does not break the decorators that hold them.
        a.close()
        c.close()
        self.assertEqual(sp.infer(b"", id=4).output, b"C")
        for e in (sp, bt, fb, secondary, b, r, m):
            e.close()

    def test_decorator_over_python_engine_from_many_threads(self):
        calls = []
        lock = threading.Lock()

        def f(req):
            with lock:
                calls.append(req.id)
            return b"%d" % req.id
        e = swarm.Engine.from_python(f).retry(2).timeout(5.0)
        res = {}

        def w(k):
            for i in range(50):
                rid = k * 1000 + i
                res[rid] = e.infer(b"", id=rid).output
        ths = [threading.Thread(target=w, args=(k,)) for k in range(4)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        self.assertEqual(len(res), 200)
        self.assertTrue(all(v == b"%d" % k for k, v in res.items()))
        self.assertEqual(sorted(calls), sorted(res))
        e.close()


if __name__ == "__main__":
    unittest.main()
