# SPDX-License-Identifier: MIT
"""Scaling policy: config mapping, decisions with explanations, state, every error path."""
import ctypes
import unittest

import libswarm as swarm
from libswarm import policy as pol

HAVE_POLICY = swarm.has_symbol("swarm_policy_create")
S = 1_000_000_000


@unittest.skipUnless(HAVE_POLICY, "policy module not in the loaded library")
class TestPolicy(unittest.TestCase):
    def test_policy_opts_struct_size_matches_c(self):
        o = pol.swarm_policy_opts()
        self.assertEqual(pol._swarm_policy_opts_init(ctypes.byref(o)), 0)
        self.assertEqual(o.size, ctypes.sizeof(pol.swarm_policy_opts))

    def test_policy_config_maps_to_c_fields(self):
        cfg = swarm.PolicyConfig(
            mode=swarm.Mode.HPA, min_replicas=2, max_replicas=9, tolerance=0.2, cooldown=30,
            idle_replicas=0, scale_up=swarm.HpaRules(window=10, select=swarm.Select.MIN,
                                                     policies=[swarm.Rate(swarm.RateType.PODS,
                                                                          3, 15)]),
            stable_window=60, unreachable=True)
        o = cfg.to_c()
        self.assertEqual((o.mode, o.min_replicas, o.max_replicas), (2, 2, 9))
        self.assertAlmostEqual(o.tolerance, 0.2)
        self.assertEqual(o.cooldown_ns, 30 * S)
        self.assertEqual(o.use_idle, 1)
        self.assertEqual(o.scale_up.window_ns, 10 * S)
        self.assertEqual(o.scale_up.select, 2)
        self.assertEqual(o.scale_up.n_policies, 1)
        self.assertEqual((o.scale_up.policies[0].type, o.scale_up.policies[0].value,
                          o.scale_up.policies[0].period_ns), (1, 3, 15 * S))
        self.assertEqual(o.stable_window_ns, 60 * S)
        self.assertEqual(o.unreachable, 1)
        self.assertEqual(o.size, ctypes.sizeof(pol.swarm_policy_opts))

    def test_policy_keda_scale_up_and_explanations(self):
        with swarm.Policy(mode=swarm.Mode.KEDA, max_replicas=10) as p:
            d0 = p.decide(current=0, metrics=[swarm.Metric(0, 5)], now=0)
            self.assertEqual(d0.replicas, 0)
            self.assertFalse(d0.active)
            d1 = p.decide(swarm.Observation(0, [swarm.Metric(40, 5)]), 1 * S)
            self.assertGreater(d1.replicas, 0)
            self.assertTrue(d1.active)
            self.assertEqual(d1.metric_raw, [8])
            self.assertEqual(d1.steps[0].rule, "raw")
            self.assertTrue(d1.text)
            self.assertIn("->", d1.explain())
            self.assertIsInstance(d1.as_dict()["flags"], int)
            self.assertIn("raw", [s.rule for s in d1.steps])
            self.assertTrue(all(isinstance(str(s), str) for s in d1.steps))

    def test_policy_hpa_tolerance_and_max(self):
        with swarm.Policy(swarm.PolicyConfig(mode=swarm.Mode.HPA, min_replicas=1,
                                             max_replicas=4)) as p:
            d = p.decide(current=2, metrics=[swarm.Metric(10.5, 5)], now=0)
            self.assertEqual(d.replicas, 2)
            self.assertIn("tolerance", [s.rule for s in d.steps])
            d = p.decide(current=2, metrics=[swarm.Metric(500, 5)], now=S)
            self.assertEqual(d.replicas, 4)
            self.assertIn("max", [s.rule for s in d.steps])

    def test_policy_evaluate_is_deterministic(self):
        obs = [swarm.Observation(c, [swarm.Metric(q, 4, in_flight=f)])
               for c, q, f in [(1, 0, 0), (1, 20, 4), (3, 40, 10), (6, 5, 2), (6, 0, 0)]]
        cfg = swarm.PolicyConfig(mode=swarm.Mode.HPA, max_replicas=20)
        with swarm.Policy(cfg) as a, swarm.Policy(cfg) as b:
            da = [d.replicas for d in a.evaluate(obs, step=10)]
            db = [d.replicas for d in b.evaluate([(i * 10 * S, o) for i, o in enumerate(obs)])]
            self.assertEqual(da, db)

    def test_policy_state_export_import_reset(self):
        cfg = swarm.PolicyConfig(mode=swarm.Mode.HPA, max_replicas=10)
        with swarm.Policy(cfg) as p, swarm.Policy(cfg) as q:
            for i, v in enumerate([10, 40, 5]):
                p.decide(current=2, metrics=[swarm.Metric(v, 5)], now=i * S)
            st = p.export_state()
            self.assertEqual(len(st), p.state_size)
            q.import_state(st)
            nxt = swarm.Observation(2, [swarm.Metric(1, 5)])
            self.assertEqual(p.decide(nxt, 5 * S).replicas, q.decide(nxt, 5 * S).replicas)
            with self.assertRaises(swarm.InvalidArgument):
                q.import_state(b"garbage")
            with self.assertRaises(TypeError):
                q.import_state("text")
            with swarm.Policy(mode=swarm.Mode.KPA) as k:
                with self.assertRaises(swarm.WrongState):
                    k.import_state(st)           # another mode
            bad_version = st[:4] + (99).to_bytes(4, "little") + st[8:]
            with self.assertRaises(swarm.NotSupported):
                q.import_state(bad_version)
            p.reset()

    def test_policy_update(self):
        with swarm.Policy(mode=swarm.Mode.HPA, max_replicas=10) as p:
            p.update(max_replicas=3)
            self.assertEqual(p.config.max_replicas, 3)
            self.assertEqual(p.decide(current=1, metrics=[swarm.Metric(100, 1)], now=0).replicas,
                             3)
            with self.assertRaises(swarm.InvalidArgument):
                p.update(mode=swarm.Mode.KPA)     # mode may not change
            with self.assertRaises(swarm.InvalidArgument):
                p.update(min_replicas=5, max_replicas=2)
            self.assertEqual(p.config.max_replicas, 3)

    def test_policy_errors(self):
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Policy(mode=9)
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Policy(mode=swarm.Mode.HPA, min_replicas=5, max_replicas=2)
        with self.assertRaises(TypeError):
            swarm.Policy(mode=swarm.Mode.HPA, max_replicas="3")
        with self.assertRaises(TypeError):
            swarm.Policy(mode=swarm.Mode.HPA, cooldown="1s")
        with self.assertRaises(TypeError):
            swarm.Policy(config=42)
        a = swarm.Allocator()
        a.fail_after(0)
        with self.assertRaises(swarm.OutOfMemory):
            swarm.Policy(mode=swarm.Mode.HPA, allocator=a)
        with swarm.Policy(mode=swarm.Mode.HPA) as p:
            with self.assertRaises(swarm.InvalidArgument):
                p.decide(current=1, metrics=[])                   # no metric
            with self.assertRaises(swarm.InvalidArgument):
                p.decide(current=1, metrics=[swarm.Metric(1, 0)])  # target 0
            with self.assertRaises(swarm.InvalidArgument):
                p.decide(current=1, ready=3, metrics=[swarm.Metric(1, 1)])
            with self.assertRaises(swarm.InvalidArgument):
                p.decide(current=1, metrics=[swarm.Metric(1, 1)] * 9)
            with self.assertRaises(TypeError):
                p.decide(current=1, metrics=[(1, 1)])
            with self.assertRaises(TypeError):
                p.decide()
            with self.assertRaises(TypeError):
                p.decide("obs")
            with self.assertRaises(swarm.InvalidArgument):
                swarm.HpaRules(policies=[swarm.Rate(1, 1, 15)] * 5)._fill(
                    pol.swarm_policy_hpa_rules())
        p.close()
        with self.assertRaises(swarm.HandleClosed):
            p.decide(current=1, metrics=[swarm.Metric(1, 1)])

    def test_policy_failed_metric_and_fallback(self):
        with swarm.Policy(mode=swarm.Mode.KEDA, max_replicas=10, fallback_failures=1,
                          fallback_replicas=3) as p:
            p.decide(current=2, metrics=[swarm.Metric(10, 5)], now=0)
            d = None
            for i in range(1, 4):
                d = p.decide(current=2, metrics=[swarm.Metric(0, 5, failed=True)], now=i * S)
            self.assertTrue(d.fallback)
            self.assertEqual(d.replicas, 3)
            self.assertIn("fallback", [s.rule for s in d.steps])

    def test_policy_load_mode_sizes_from_the_counters(self):
        # 140 requests/s of 100 ms each, one per replica: Erlang C for 1 s at p99.
        with swarm.Policy(swarm.PolicyConfig(mode=swarm.Mode.LOAD, max_replicas=200,
                                             load_wait=1.0)) as p:
            cur, arr, svc = 1, 0, 0.0
            for t in range(60):
                arr += 140
                svc += 14.0
                ob = swarm.Observation(cur, [swarm.Metric(0, 1, in_flight=14)], arrivals=arr,
                                       completions=arr, service_total=svc, concurrency=1)
                d = p.decide(ob, t * S)
                cur = d.replicas
            self.assertEqual(cur, 16)
            rules = [s.rule for s in d.steps]
            self.assertIn("load_erlang", rules)
            self.assertIn("load_rate", rules)
        with self.assertRaises(swarm.InvalidArgument):
            swarm.Observation(1, [swarm.Metric(0, 1)], arrivals=-1).to_c()

    def test_rule_names(self):
        self.assertEqual(swarm.rule_name(1), "raw")
        self.assertEqual(swarm.rule_name(9999), "unknown")


if __name__ == "__main__":
    unittest.main()
