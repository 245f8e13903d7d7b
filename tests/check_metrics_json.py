#!/usr/bin/env python3
"""The metrics JSON render parses, and the paths the KEDA metrics-api trigger reads are numbers.

Usage: check_metrics_json.py TEST_METRICS_EXE (runs it with --print json).
"""
import json
import subprocess
import sys

PATHS = ("channels.requests.length", "pools.agents.backlog", "loops.scaler.desired_replicas")


def main(argv):
    out = subprocess.run([argv[1], "--print", "json"], check=True, capture_output=True,
                         text=True, timeout=50).stdout
    doc = json.loads(out)
    for path in PATHS:
        v = doc
        for key in path.split("."):
            v = v[key]
        assert isinstance(v, (int, float)) and not isinstance(v, bool), path
    print("json ok:", sorted(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
