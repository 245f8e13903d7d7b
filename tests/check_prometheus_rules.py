#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""deploy/prometheus checks (meson test 'deploy prometheus'), all with promtool:

usage: check_prometheus_rules.py DEPLOY_DIR

  1. spec.groups of prometheus/prometheusrule.yaml, written out as a plain rules file, passes
     `promtool check rules`;
  2. `promtool test rules` passes the unit tests of prometheus/rules-test.yaml against it;
  3. prometheus/scrape-config.yaml (with that rules file next to it) passes
     `promtool check config`;
  4. every PromQL expression of the Grafana dashboard (grafana/*.json), with its template
     variables filled in, parses: each becomes a recording rule checked by `promtool check rules`.
Skips (exit 77) without promtool or PyYAML.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("PyYAML not installed: skipped")
    sys.exit(77)


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit("failed: " + " ".join(args))


def main():
    if shutil.which("promtool") is None:
        print("promtool not installed: skipped")
        sys.exit(77)
    d = sys.argv[1]
    with open(os.path.join(d, "prometheus", "prometheusrule.yaml")) as f:
        rule = yaml.safe_load(f)
    assert rule["kind"] == "PrometheusRule", rule["kind"]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    for need in ("SwarmBacklogHigh", "SwarmQueueWaitP99High", "SwarmRejectingWork",
                 "SwarmBreakerOpen", "SwarmReconcileLoopErrors"):
        assert need in alerts, "missing alert " + need
    with open(os.path.join(d, "prometheus", "rules-test.yaml")) as f:
        tested = {t["alertname"] for case in yaml.safe_load(f)["tests"]
                  for t in case.get("alert_rule_test", [])}
    assert alerts <= tested, "alerts without a unit test: %s" % sorted(alerts - tested)
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "rules.yaml")
        with open(rules, "w") as f:
            yaml.safe_dump({"groups": rule["spec"]["groups"]}, f, sort_keys=False)
        run("promtool", "check", "rules", rules)
        shutil.copy(os.path.join(d, "prometheus", "rules-test.yaml"), tmp)
        run("promtool", "test", "rules", os.path.join(tmp, "rules-test.yaml"))
        shutil.copy(rules, os.path.join(tmp, "swarm-rules.yaml"))
        cfg = os.path.join(tmp, "scrape-config.yaml")
        shutil.copy(os.path.join(d, "prometheus", "scrape-config.yaml"), cfg)
        r = subprocess.run(["promtool", "check", "config", cfg], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0 and "kubernetes_sd_configs not found" in r.stdout + r.stderr:
            # Debian builds Prometheus without the Kubernetes service discovery. Check the rest
            # of the file (relabel rules, timeouts, rule_files) with a static target instead.
            print("promtool lacks kubernetes_sd_configs (distribution build): checking the "
                  "config with a static target in its place")
            with open(cfg) as f:
                c = yaml.safe_load(f)
            for job in c["scrape_configs"]:
                if job.pop("kubernetes_sd_configs", None) is not None:
                    job["static_configs"] = [{"targets": ["127.0.0.1:9464"]}]
            with open(cfg, "w") as f:
                yaml.safe_dump(c, f, sort_keys=False)
            run("promtool", "check", "config", cfg)
        elif r.returncode != 0:
            sys.stdout.write(r.stdout + r.stderr)
            sys.exit("failed: promtool check config")
        else:
            sys.stdout.write(r.stdout)

        exprs = []
        for path in sorted(glob.glob(os.path.join(d, "grafana", "*.json"))):
            with open(path) as f:
                dash = json.load(f)
            for panel in dash["panels"]:
                for t in panel.get("targets", []):
                    e = re.sub(r"\$__rate_interval|\$__interval", "5m", t["expr"])
                    e = re.sub(r"\$\{?namespace\}?", "swarm-demo", e)
                    e = re.sub(r"\$\{?pool\}?", "agents", e)
                    assert "$" not in e, "unfilled variable in %s: %s" % (path, e)
                    exprs.append(e)
        assert len(exprs) >= 8, "dashboard has only %d queries" % len(exprs)
        dash_rules = os.path.join(tmp, "dashboard-rules.yaml")
        with open(dash_rules, "w") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
                {"record": "dashboard:q%d" % i, "expr": e} for i, e in enumerate(exprs)]}]}, f)
        run("promtool", "check", "rules", dash_rules)
    print("deploy prometheus ok: %d alerts unit-tested, %d dashboard queries parse"
          % (len(alerts), len(exprs)))


if __name__ == "__main__":
    main()
