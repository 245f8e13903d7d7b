# SPDX-License-Identifier: MIT
"""Metrics registry: Prometheus and JSON renders of channels, pools and loops; error paths."""
import ctypes
import unittest

import libswarm as swarm

HAVE_METRICS = swarm.has_symbol("swarm_metrics_create")


@unittest.skipUnless(HAVE_METRICS, "metrics module not in the loaded library")
class TestMetrics(unittest.TestCase):
    def test_metrics_render_every_kind(self):
        ch = swarm.ObjectChannel(8)
        ch.send("x")
        eng = swarm.Engine.from_python(lambda r: b"ok")
        pool = swarm.Pool(eng, workers=2)
        pool.map([b"a", b"b"], timeout=10)
        pol = swarm.Policy(mode=swarm.Mode.HPA, max_replicas=4)
        loop = swarm.ReconcileLoop.for_pool(pool, pol, 2.0)
        loop.step(0)
        with swarm.Metrics(4) as m:
            m.add("requests", ch)
            m.add("agents", pool)
            m.add("scaler", loop)
            self.assertEqual(len(m), 3)
            text = m.render()
            self.assertIn('swarm_channel_length{channel="requests"} 1', text)
            self.assertIn('pool="agents"', text)
            self.assertIn("# TYPE", text)
            self.assertLessEqual(len(text) + 1, m.render_bound())
            doc = m.render_json()
            self.assertEqual(set(doc), {"channels", "pools", "loops", "engines", "registry"})
            self.assertIn("requests", doc["channels"])
            self.assertGreater(m.render_bound(swarm.MetricsFormat.JSON), 0)
            # ERANGE from C when the caller's buffer is too small.
            buf = ctypes.create_string_buffer(8)
            rc, need = m._render_into(1, buf, 8)
            self.assertEqual(rc, swarm.OutOfRange.code)
            self.assertGreater(need, 8)
            with self.assertRaises(swarm.InvalidArgument):
                m.add("requests", ch)                    # duplicate name
            with self.assertRaises(swarm.InvalidArgument):
                m.add("bad name!", ch)
            with self.assertRaises(swarm.InvalidArgument):
                m.add("x" * 64, ch)
            with self.assertRaises(TypeError):
                m.add("engine", eng)
            with self.assertRaises(TypeError):
                m.add(5, ch)
            m.add("fourth", swarm.Channel(2))
            with self.assertRaises(swarm.InvalidArgument):
                m.add("fifth", ch)                       # registry full
            with self.assertRaises(swarm.InvalidArgument):
                m.render(7)                              # unknown format
            # A registered object closed under the registry: render refuses, never crashes.
            ch.destroy()
            with self.assertRaises(swarm.HandleClosed):
                m.render()
        with self.assertRaises(swarm.HandleClosed):
            m.render()
        loop.close()
        pool.close()
        pol.close()
        eng.close()

    def test_metrics_create_errors(self):
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Metrics(5000)
        with self.assertRaises(TypeError):
            swarm.Metrics("4")
        a = swarm.Allocator()
        a.fail_after(0)
        with self.assertRaises(swarm.OutOfMemory):
            swarm.Metrics(allocator=a)
        self.assertEqual(a.outstanding, 0)


if __name__ == "__main__":
    unittest.main()
