# SPDX-License-Identifier: MIT
"""No leak over 100k channel operations: Python memory (tracemalloc), the handle tables, the
callback registries and the library's own statistics and allocator accounting."""
import gc
import threading
import tracemalloc
import unittest

import libswarm as swarm
from libswarm import chan as chanmod
from libswarm import engine as engmod

N = 100_000
SLACK = 256 * 1024   # bytes of Python heap growth tolerated (interned ints, caches, ...)


def traced(fn):
    gc.collect()
    tracemalloc.start()
    try:
        fn(1000)                     # warm caches first
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        fn(N)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


class TestNoLeak(unittest.TestCase):
    def test_leak_object_channel_100k_ops(self):
        c = swarm.ObjectChannel(256)

        def ops(n):
            payload = {"k": 1}
            for i in range(n // 4):
                c.send((i, payload))
                c.recv()
                c.try_send(i)
                c.try_recv()
            for _ in range(n // 64):
                c.send_batch(range(16))
                got = []
                while len(got) < 16:
                    got += c.recv_batch(16)
        growth = traced(ops)
        self.assertLess(growth, SLACK, f"python heap grew by {growth} bytes")
        self.assertEqual(c.pending, 0)
        s = c.stats()
        self.assertEqual(s["sent"], s["received"])
        self.assertEqual(s["length"], 0)
        self.assertGreaterEqual(s["sent"] + s["received"], N)   # >= 100k channel operations
        c.destroy()

    def test_leak_bytes_channel_100k_ops(self):
        c = swarm.Channel(64, 32, framed=True)

        def ops(n):
            for i in range(n // 2):
                c.send(b"message %d" % i)
                c.recv()
        growth = traced(ops)
        self.assertLess(growth, SLACK, f"python heap grew by {growth} bytes")
        s = c.stats()
        self.assertEqual((s["sent"] - s["received"], s["length"]), (0, 0))
        c.destroy()

    def test_leak_drop_mode_releases_every_handle(self):
        dropped = [0]

        def on_drop(obj, reason):
            dropped[0] += 1
        c = swarm.ObjectChannel(128, full_mode=swarm.FullMode.DROP_OLDEST, on_drop=on_drop)

        def ops(n):
            for i in range(n):
                c.send(object())
        growth = traced(ops)
        self.assertLess(growth, SLACK, f"python heap grew by {growth} bytes")
        self.assertEqual(c.pending, 128)
        self.assertEqual(c.stats()["dropped"], dropped[0])
        self.assertEqual(dropped[0], N + 1000 - 128)
        c.destroy()
        self.assertEqual(c.pending, 0)
        self.assertEqual(dropped[0], N + 1000)

    def test_leak_create_destroy_cycles(self):
        a = swarm.Allocator()
        drops0 = len(chanmod._drop_handlers)
        eng0 = engmod.python_engines_alive()
        for i in range(500):
            c = swarm.ObjectChannel(16, allocator=a)
            c.send(i)
            t = swarm.CancelToken(allocator=a)
            c.destroy()
            t.close()
            e = swarm.Engine.from_python(lambda r: b"", allocator=a)
            e.infer(b"")
            e.close()
        gc.collect()
        self.assertEqual(a.outstanding, 0)
        self.assertEqual(a.allocs, a.frees)
        self.assertEqual(len(chanmod._drop_handlers), drops0)
        self.assertEqual(engmod.python_engines_alive(), eng0)

    def test_leak_threaded_ops_stats_balance(self):
        c = swarm.ObjectChannel(64)
        per = 25_000

        def prod():
            for i in range(per):
                c.send(i)
        got = [0]

        def cons():
            for _ in c:
                got[0] += 1
        ps = [threading.Thread(target=prod) for _ in range(2)]
        cs = [threading.Thread(target=cons) for _ in range(2)]
        for t in ps + cs:
            t.start()
        for t in ps:
            t.join()
        c.close()
        for t in cs:
            t.join()
        s = c.stats()
        self.assertEqual((s["sent"], s["received"], got[0], c.pending), (2 * per,) * 3 + (0,))
        c.destroy()


if __name__ == "__main__":
    unittest.main()
