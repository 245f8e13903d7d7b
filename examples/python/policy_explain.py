#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Evaluate a scaling policy over a list of observations and print every decision with its
explanation (the raw recommendation and each rule that changed it).

The policy is a pure function of its state, the time and the observation, so the same list
always prints the same decisions: useful to check a configuration before deploying it.

    PYTHONPATH=python python3 examples/python/policy_explain.py [--mode keda|hpa|kpa]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "python"))
import libswarm as swarm  # noqa: E402

# (seconds, queued, in-flight, failed-read) — a burst from idle, a metrics outage, then quiet.
TRACE = [
    (0, 0, 0, False), (15, 3, 0, False), (30, 120, 4, False), (45, 200, 30, False),
    (60, 90, 40, False), (75, 0, 0, True), (90, 0, 0, True), (105, 0, 0, True),
    (120, 20, 10, False), (180, 0, 2, False), (300, 0, 0, False), (500, 0, 0, False),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["keda", "hpa", "kpa"], default="keda")
    ap.add_argument("--target", type=float, default=10.0, help="backlog per replica")
    args = ap.parse_args()
    mode = {"keda": swarm.Mode.KEDA, "hpa": swarm.Mode.HPA, "kpa": swarm.Mode.KPA}[args.mode]
    cfg = swarm.PolicyConfig(mode=mode, min_replicas=0 if mode != swarm.Mode.HPA else 1,
                             max_replicas=20, cooldown=120, fallback_failures=2,
                             fallback_replicas=5)
    current = cfg.min_replicas
    with swarm.Policy(cfg) as policy:
        print(f"{args.mode} policy, target {args.target} per replica, max 20\n")
        for t, queued, in_flight, failed in TRACE:
            obs = swarm.Observation(current, [swarm.Metric(queued, args.target,
                                                           in_flight=in_flight,
                                                           failed=failed)])
            d = policy.decide(obs, now=t * 1_000_000_000)
            what = "metric read failed" if failed else f"queued={queued} in_flight={in_flight}"
            print(f"t={t:4d}s  {what}")
            print("  " + d.explain().replace("\n", "\n  "))
            current = d.replicas
        print(f"\nstate: {policy.state_size} bytes exportable "
              f"(policy.export_state() / import_state())")
    return 0


if __name__ == "__main__":
    sys.exit(main())
