# SPDX-License-Identifier: MIT
"""The simulator binding (libswarm.sim): struct mirrors match C, a run through Python equals the
closed forms and is deterministic, traces parse with line numbers, bad options raise."""
import ctypes
import os
import shutil
import subprocess
import tempfile
import unittest

import libswarm
from libswarm import sim


def include_dir():
    d = os.environ.get("SWARM_INCLUDE_DIR")
    if d:
        return d
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(os.path.dirname(here)), "include")


class TestSim(unittest.TestCase):
    def test_sim_struct_mirrors_match_c_layout(self):
        cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
        inc = include_dir()
        if not cc or not os.path.exists(os.path.join(inc, "swarm", "sim.h")):
            self.skipTest("no C compiler or sim.h")
        structs = [sim.swarm_sim_point, sim.swarm_sim_gen_opts, sim.swarm_sim_opts,
                   sim.swarm_sim_result, sim.swarm_sim_sample]
        lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "swarm/sim.h"',
                 "int main(void) {"]
        expect = []
        for t in structs:
            n = t.__name__
            lines.append(f'printf("{n} %zu\\n", sizeof({n}));')
            expect.append(f"{n} {ctypes.sizeof(t)}")
            for f in t._fields_:
                lines.append(f'printf("{n}.{f[0]} %zu\\n", offsetof({n}, {f[0]}));')
                expect.append(f"{n}.{f[0]} {getattr(t, f[0]).offset}")
        lines.append("return 0; }")
        with tempfile.TemporaryDirectory() as d:
            src, exe = os.path.join(d, "p.c"), os.path.join(d, "p")
            with open(src, "w") as fh:
                fh.write("\n".join(lines))
            r = subprocess.run([cc, "-std=c11", "-I", inc, src, "-o", exe],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = subprocess.run([exe], capture_output=True, text=True, timeout=30).stdout
        self.assertEqual(got.split(), " ".join(expect).split())
        for t, init in [(sim.swarm_sim_opts, sim._swarm_sim_opts_init),
                        (sim.swarm_sim_gen_opts, sim._swarm_sim_gen_opts_init)]:
            o = t()
            self.assertEqual(init(ctypes.byref(o)), 0)
            self.assertEqual(o.size, ctypes.sizeof(t))

    def test_sim_fixed_replicas_match_erlang_c(self):
        tr = sim.Trace([(0, 60), (5000, 60)])
        r = sim.simulate(tr, "fixed:8", service_s=0.1, tail_s=-1, seed=4, timeline=False)
        pw = sim.erlang_c(8, 6.0)
        wq = pw * 0.1 / (8 - 6.0)
        self.assertLess(abs(r.mean_wait_s - wq) / wq, 0.1)
        self.assertAlmostEqual(r.replica_seconds, 8 * 5000, places=3)
        lam = (r.arrivals - r.dropped) / r.sim_seconds
        self.assertAlmostEqual(r.mean_in_system, lam * r.mean_sojourn_s, places=6)
        self.assertEqual(r.completions + r.unfinished, r.arrivals)

    def test_sim_deterministic_and_timeline(self):
        tr = sim.Trace.generate("step")
        a = sim.simulate(tr, "hpa", startup_s=30, seed=7)
        b = sim.simulate(tr, "hpa", startup_s=30, seed=7)
        self.assertEqual(a, b)
        self.assertEqual(a.timeline, b.timeline)
        self.assertEqual(len(a.timeline), int(a.sim_seconds) + 1)
        self.assertEqual(sum(s.arrived for s in a.timeline), a.arrivals)
        self.assertGreater(max(s.ready for s in a.timeline), 1)
        o = sim.simulate(tr, "oracle", startup_s=30, seed=7)
        self.assertLessEqual(o.p99_wait_s, 1.0)
        self.assertEqual(o.arrivals, a.arrivals)  # same requests for every policy
        rec = sim.simulate(tr, "recommended", startup_s=30, seed=7, timeline=False)
        self.assertEqual(rec.arrivals, a.arrivals)
        self.assertEqual(rec.completions + rec.unfinished, rec.arrivals)

    def test_sim_trace_parse_errors(self):
        tr = sim.Trace.parse("0,5\n# c\n60,10\n")
        self.assertEqual(tr.rows, [(0.0, 5.0), (60.0, 10.0)])
        with self.assertRaises(libswarm.InvalidArgument) as cm:
            sim.Trace.parse("0,5\n60,10\n30,1\n")
        self.assertIn("line 3", str(cm.exception))
        with self.assertRaises(libswarm.InvalidArgument):
            sim.Trace([(5, 1), (1, 1)])

    def test_sim_config_and_bad_options(self):
        so, po = sim.parse_config("mode = kpa\nstable_window_s = 30\ninterval_s = 1\n")
        self.assertEqual(po.mode, 3)
        self.assertEqual(po.stable_window_ns, 30 * 10**9)
        self.assertEqual(so.interval_ns, 10**9)
        with self.assertRaises(libswarm.InvalidArgument) as cm:
            sim.parse_config("mode = kpa\nbogus = 1\n")
        self.assertIn("line 2", str(cm.exception))
        tr = sim.Trace([(0, 1)])
        with self.assertRaises(libswarm.InvalidArgument):
            sim.simulate(tr, "hpa", startup_s=-1)
        with self.assertRaises(libswarm.InvalidArgument):
            sim.simulate(tr, "nonsense")
        self.assertEqual(sim.erlang_servers(0, 0.1, 1.0), 0)


if __name__ == "__main__":
    unittest.main()
