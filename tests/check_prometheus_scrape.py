#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A real Prometheus scrapes examples/05_metrics_http and answers the KEDA trigger's PromQL
(meson test 'deploy prometheus scrape').

usage: check_prometheus_scrape.py PATH_TO_05_metrics_http DEPLOY_DIR

Starts the example (in-process load) on a free 127.0.0.1 port and /usr/bin/prometheus on another,
with a private storage folder, a 1 s scrape of the example carrying the labels that the
documented scrape configs attach (namespace, pod), and the recording and alert rules of
deploy/prometheus/prometheusrule.yaml loaded. Then, through the HTTP API (urllib):
  - the target is up and the swarm_* families are stored;
  - the exact query of deploy/alternatives/scaledobject-prometheus.yaml returns one finite,
    non-negative number (what KEDA would read), and the same query for another namespace
    returns nothing (why the namespace label must be attached);
  - the recording rule's p99 queue wait from the histograms is a finite number.
Everything is bounded (90 s) and both processes are always killed; skips (77) without
prometheus, PyYAML or the example.
"""
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

try:
    import yaml
except ImportError:
    print("PyYAML not installed: skipped")
    sys.exit(77)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DEADLINE = time.monotonic() + 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base, path, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=5) as r:
        d = json.load(r)
    assert d["status"] == "success", d
    return d["data"]


def wait_for(what, fn, limit=45):
    end = min(time.monotonic() + limit, DEADLINE)
    last = None
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.5)
    raise AssertionError("timed out waiting for %s (last error: %s)" % (what, last))


def main():
    exe, deploy = sys.argv[1], sys.argv[2]
    if not os.access(PROMETHEUS, os.X_OK):
        print("prometheus not installed: skipped")
        sys.exit(77)
    with open(os.path.join(deploy, "alternatives", "scaledobject-prometheus.yaml")) as f:
        trig = yaml.safe_load(f)["spec"]["triggers"][0]["metadata"]
    query = trig["query"]
    ns = re.search(r'namespace="([^"]+)"', query).group(1)
    with open(os.path.join(deploy, "prometheus", "prometheusrule.yaml")) as f:
        groups = yaml.safe_load(f)["spec"]["groups"]

    procs = []
    tmp = tempfile.mkdtemp(prefix="swarm-prom-")
    try:
        worker = subprocess.Popen([exe, "--port", "0", "--seconds", "0", "--rate", "200",
                                   "--service-ms", "5", "--max-workers", "4"],
                                  stdout=subprocess.PIPE, text=True)
        procs.append(worker)
        line = worker.stdout.readline()
        target = re.search(r"http://([0-9.]+:[0-9]+)/", line).group(1)
        pport = free_port()
        with open(os.path.join(tmp, "rules.yaml"), "w") as f:
            yaml.safe_dump({"groups": groups}, f, sort_keys=False)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [{
                "job_name": "swarm-worker",
                # What scrape-config.yaml's relabel rules (or a PodMonitor) attach in a cluster.
                "static_configs": [{"targets": [target],
                                    "labels": {"namespace": ns, "pod": "swarm-worker-0"}}],
            }],
        }
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            yaml.safe_dump(config, f)
        log = open(os.path.join(tmp, "prometheus.log"), "w")
        prom = subprocess.Popen([PROMETHEUS, "--config.file=" + os.path.join(tmp, "prometheus.yml"),
                                 "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % pport,
                                 "--log.level=warn"], stdout=log, stderr=log)
        procs.append(prom)
        base = "http://127.0.0.1:%d/api/v1/" % pport

        up = wait_for("the target to be up", lambda: [
            r for r in api(base, "query", query='up{job="swarm-worker"}')["result"]
            if r["value"][1] == "1"])
        names = wait_for("swarm_* series", lambda: [
            n for n in api(base, "label/__name__/values") if n.startswith("swarm_")])

        def keda_value():
            res = api(base, "query", query=query)
            assert res["resultType"] == "vector", res
            return res["result"]
        res = wait_for("the trigger query", keda_value)
        assert len(res) == 1, res
        v = float(res[0]["value"][1])
        assert math.isfinite(v) and v >= 0, v
        other = api(base, "query", query=query.replace('namespace="%s"' % ns,
                                                       'namespace="elsewhere"'))
        assert other["result"] == [], other

        def p99():
            r = api(base, "query",
                    query="namespace_pool:swarm_pool_queue_wait_seconds:p99_5m")["result"]
            return [x for x in r if math.isfinite(float(x["value"][1]))]
        p = wait_for("the p99 recording rule", p99)
        print("prometheus scrape ok: up=%s, %d swarm_* names, KEDA query %r = %g, p99 wait %s s"
              % (up[0]["value"][1], len(names), query, v, p[0]["value"][1]))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
