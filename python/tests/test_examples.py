# SPDX-License-Identifier: MIT
"""The Python examples run to completion (short modes) and say what they promise."""
import os
import subprocess
import sys
import unittest

import libswarm as swarm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples", "python")


def run(name, *args, timeout=60):
    env = dict(os.environ)
    env.setdefault("SWARM_LIBRARY", swarm.library_path())
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@unittest.skipUnless(os.path.isdir(EXAMPLES), "examples/python not present")
class TestExamples(unittest.TestCase):
    @unittest.skipUnless(swarm.has_symbol("swarm_reconcile_create"), "reconcile missing")
    def test_example_pool_service_scales_and_accounts_for_everything(self):
        r = run("pool_service.py", "--quick")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK", r.stdout.splitlines()[-1])
        self.assertIn("scale", r.stdout)

    @unittest.skipUnless(swarm.has_symbol("swarm_policy_create"), "policy missing")
    def test_example_policy_explain_prints_explanations(self):
        for mode in ("keda", "hpa", "kpa"):
            with self.subTest(mode=mode):
                r = run("policy_explain.py", "--mode", mode)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("raw metric 0", r.stdout)
                self.assertIn("replicas", r.stdout)


if __name__ == "__main__":
    unittest.main()
