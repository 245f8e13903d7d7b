# SPDX-License-Identifier: MIT
"""Issue 11, defect 6: the binding's registries kept user objects alive.

* an object owning a Pool with a bound-method callback was never collected (50 dropped services
  left 200 OS threads alive);
* ``Engine.from_python(self)`` x1,000 leaked;
* a channel holding a message that references the channel leaked (~177 MB per 10k).

Dropping a service object must stop its threads; 1,000 create/drop cycles end with no extra
threads and flat memory."""
import gc
import os
import time
import unittest
import weakref

import libswarm as swarm
from libswarm import engine as engmod


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def settle(pred, timeout=20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gc.collect()
        if pred():
            return True
        time.sleep(0.02)
    return pred()


class Service:
    """Owns its engine (built from itself) and its pool, with a bound-method callback."""

    def __init__(self, workers=2):
        self.results = 0
        self.engine = swarm.Engine.from_python(self)
        self.pool = swarm.Pool(self.engine, workers=workers, on_result=self.on_result)

    def infer(self, req):
        return b"r:" + req.payload

    def on_result(self, res):
        self.results += 1


class TestRegistryLeaks(unittest.TestCase):
    def test_dropped_services_stop_their_threads(self):
        base = os_threads()
        refs = []
        for _ in range(50):
            s = Service(workers=4)
            self.assertEqual(s.pool.submit(b"x").result(10).output, b"r:x")
            refs.append(weakref.ref(s))
            del s
        self.assertTrue(settle(lambda: all(r() is None for r in refs)),
                        "dropped services are still alive")
        self.assertTrue(settle(lambda: os_threads() <= base),
                        f"{os_threads() - base} extra OS threads after dropping 50 services")

    def test_create_drop_cycles_flat(self):
        def cycle(n):
            for _ in range(n):
                s = Service(workers=1)
                s.pool.submit(b"y").result(10)
                del s
        base0 = os_threads()
        cycle(100)
        settle(lambda: os_threads() <= base0, timeout=10)
        base = os_threads()
        alive0 = engmod.python_engines_alive()
        mem0 = rss_kib()
        cycle(1000)
        self.assertTrue(settle(lambda: os_threads() <= base),
                        f"{os_threads() - base} extra OS threads after 1,000 cycles")
        self.assertTrue(settle(lambda: engmod.python_engines_alive() <= alive0))
        grown = rss_kib() - mem0
        self.assertLess(grown, 16 * 1024, f"RSS grew {grown} KiB over 1,000 cycles")

    def test_engine_from_python_self(self):
        class Model:
            def __init__(self):
                self.engine = swarm.Engine.from_python(self)

            def infer(self, req):
                return b""
        base = engmod.python_engines_alive()
        refs = []
        for _ in range(1000):
            m = Model()
            refs.append(weakref.ref(m))
            del m
        self.assertTrue(settle(lambda: engmod.python_engines_alive() <= base),
                        f"{engmod.python_engines_alive() - base} Python engines leaked")
        self.assertTrue(all(r() is None for r in refs))

    def test_channel_with_self_referencing_message(self):
        refs = []
        for _ in range(2000):
            ch = swarm.ObjectChannel(4)
            ch.send({"reply_to": ch, "blob": bytearray(4096)})
            refs.append(weakref.ref(ch))
            del ch
        self.assertTrue(settle(lambda: all(r() is None for r in refs)),
                        f"{sum(r() is not None for r in refs)} channels leaked")

    def test_dropped_object_engine_fails_cleanly(self):
        # The registry holds a Python engine's object weakly: if only C still referenced the
        # engine, a call fails with WrongState instead of keeping the object alive forever.
        class M:
            def infer(self, req):
                return b"m"
        e = swarm.Engine.from_python(M())
        self.assertEqual(e.infer(b"").output, b"m")
        e._obj = None
        gc.collect()
        with self.assertLogs("swarm", level="WARNING"):
            with self.assertRaises(swarm.WrongState):
                e.infer(b"")
        e.close()


if __name__ == "__main__":
    unittest.main()
