# SPDX-License-Identifier: MIT
"""Smoke test of the swarm-sim CLI: JSON keys and values, CSV/SVG output, trace errors with line
numbers, --help. Usage: check_swarm_sim.py path/to/swarm-sim"""
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

exe = sys.argv[1]
KEYS = ["policy", "p50_wait_s", "p95_wait_s", "p99_wait_s", "max_wait_s", "slo_violation_s",
        "replica_seconds", "max_queue", "flaps", "dropped"]


def run(*args, ok=True):
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    if ok:
        assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r


with tempfile.TemporaryDirectory() as d:
    csv, svg = os.path.join(d, "t.csv"), os.path.join(d, "p.svg")
    r = run("--gen", "step", "--startup-s", "30", "--policy", "keda,hpa,kpa,fixed:25,oracle",
            "--json", "--csv", csv, "--svg", svg, "--seed", "3")
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    assert [l["policy"] for l in lines] == ["keda", "hpa", "kpa", "fixed:25", "oracle"], lines
    for l in lines:
        for k in KEYS:
            assert k in l, (k, l)
            if k != "policy":
                assert isinstance(l[k], (int, float)) and l[k] >= 0, (k, l)
        assert l["p50_wait_s"] <= l["p95_wait_s"] <= l["p99_wait_s"] <= l["max_wait_s"], l
    fixed = lines[3]
    assert abs(fixed["replica_seconds"] - 25 * fixed["sim_seconds"]) < 1e-6 * fixed["sim_seconds"]
    assert fixed["flaps"] == 0
    # Deterministic: the same command prints the same numbers.
    again = run("--gen", "step", "--startup-s", "30", "--policy", "keda,hpa,kpa,fixed:25,oracle",
                "--json", "--seed", "3")
    assert again.stdout == r.stdout
    with open(csv) as fh:
        rows = fh.read().splitlines()
    assert rows[0].startswith("policy,t_s,rate_rps,")
    assert len(rows) == 1 + 5 * int(lines[0]["sim_seconds"] + 1), len(rows)
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 10

    # A CSV trace with a bad row: an error naming the line.
    tr = os.path.join(d, "trace.csv")
    with open(tr, "w") as fh:
        fh.write("0,10\n60,20\n90,x\n")
    r = run(tr, "--policy", "hpa", ok=False)
    assert r.returncode == 2 and ":3:" in r.stderr, r.stderr
    with open(tr, "w") as fh:
        fh.write("0,10\n60,50\n120,0\n")
    r = run(tr, "--policy", "hpa,fixed:8", "--tail-s", "100", "--json")
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert lines[0]["sim_seconds"] == 220, lines[0]
    # A custom policy file.
    pf = os.path.join(d, "fast-hpa.conf")
    with open(pf, "w") as fh:
        fh.write("mode = hpa\ndisable = strict\nscale_down.window_s = 30\ninterval_s = 5\n")
    r = run(tr, "--policy-file", pf, "--json")
    assert json.loads(r.stdout)["policy"] == "fast-hpa", r.stdout
    with open(pf, "w") as fh:
        fh.write("mode = hpa\nwindow = 3\n")
    r = run(tr, "--policy-file", pf, ok=False)
    assert r.returncode == 2 and ":2:" in r.stderr, r.stderr

# The example policy file in docs/ stays valid.
if len(sys.argv) > 2:
    r = run("--gen", "step", "--policy-file", sys.argv[2], "--json")
    assert json.loads(r.stdout)["policy"] == "custom-policy", r.stdout

# --explain: one stderr line per actuation, with the policy's explanation.
r = run("--gen", "step", "--policy", "hpa", "--explain", "--json")
ex = [l for l in r.stderr.splitlines() if " hpa " in l]
assert len(ex) == json.loads(r.stdout)["scale_events"] and "->" in ex[0], r.stderr

r = run("--help")
assert r.stdout.startswith("usage: swarm-sim") and "--policy" in r.stdout
r = run("--bogus", ok=False)
assert r.returncode == 2
print("swarm-sim cli ok")
