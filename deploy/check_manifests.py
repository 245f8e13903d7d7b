#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Static checks of deploy/*.yaml, run by `meson test` (suite 'abi'); nothing touches a cluster.

usage: check_manifests.py DEPLOY_DIR [METRICS_PRINTER]

Parses every manifest (exit 77, "skipped", when PyYAML is missing), then checks that the names
agree with each other: the ScaledObject targets the Deployment, the Service selects its pods and
targets its named port, the trigger URL points at the Service, the namespace, and the port. With
METRICS_PRINTER (tests/test_metrics, which prints a render with `--print json`), it also checks
that the metrics-api trigger's valueLocation resolves to a number in libswarm's real JSON.
"""
import json
import os
import re
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("PyYAML not installed: skipped")
    sys.exit(77)


def fail(msg):
    print("check_manifests: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) not in (2, 3):
        fail(__doc__)
    d = sys.argv[1]
    docs = {}
    for name in sorted(os.listdir(d)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(d, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    docs[(doc.get("kind"), name)] = doc
    kinds = {k: v for (k, _), v in docs.items()}
    for need in ("Kustomization", "Namespace", "Deployment", "Service", "ScaledObject", "Job"):
        if need not in kinds:
            fail("no %s manifest" % need)
    kust, ns = kinds["Kustomization"], kinds["Namespace"]["metadata"]["name"]
    dep, svc, so = kinds["Deployment"], kinds["Service"], kinds["ScaledObject"]

    if kust.get("namespace") != ns:
        fail("kustomization namespace %r != Namespace %r" % (kust.get("namespace"), ns))
    for res in kust["resources"]:
        if not os.path.exists(os.path.join(d, res)):
            fail("kustomization lists missing %s" % res)

    labels = dep["spec"]["template"]["metadata"]["labels"]
    sel = dep["spec"]["selector"]["matchLabels"]
    if any(labels.get(k) != v for k, v in sel.items()):
        fail("Deployment selector does not match its pod labels")
    if any(labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
        fail("Service selector does not match the Deployment's pods")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    svc_port = svc["spec"]["ports"][0]
    if svc_port["targetPort"] not in ports:
        fail("Service targetPort %r is not a container port" % svc_port["targetPort"])
    args = dict(a.split("=", 1) for a in container["args"] if "=" in a)
    if int(args.get("--port", -1)) != ports[svc_port["targetPort"]]:
        fail("--port differs from the container port")
    if args.get("--bind") != "0.0.0.0":
        fail("the worker must listen on 0.0.0.0 in a pod")

    spec = so["spec"]
    if spec["scaleTargetRef"]["name"] != dep["metadata"]["name"]:
        fail("ScaledObject scaleTargetRef is not the Deployment")
    if not 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]:
        fail("need 1 <= minReplicaCount <= maxReplicaCount (in-process metrics cannot wake zero)")
    trig = spec["triggers"][0]
    if trig["type"] != "metrics-api" or trig.get("metricType") != "Value":
        fail("first trigger must be metrics-api with metricType Value")
    meta = trig["metadata"]
    url = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)(/\S*)",
                       meta["url"])
    if not url:
        fail("unexpected trigger url %r" % meta["url"])
    if (url.group(1), url.group(2), int(url.group(3)), url.group(4)) != (
            svc["metadata"]["name"], ns, svc_port["port"], "/keda"):
        fail("trigger url %r does not point at the Service's /keda" % meta["url"])
    target = float(meta["targetValue"])
    workers = int(args.get("--max-workers", 0))
    if target != workers * 4:
        fail("targetValue %g != max workers %d x per-thread target 4" % (target, workers))

    if len(sys.argv) == 3:
        out = subprocess.run([sys.argv[2], "--print", "json"], check=True, capture_output=True,
                             text=True).stdout
        v = json.loads(out)
        for key in meta["valueLocation"].split("."):
            if not isinstance(v, dict) or key not in v:
                fail("valueLocation %r not in libswarm's JSON" % meta["valueLocation"])
            v = v[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            fail("valueLocation %r is not a number" % meta["valueLocation"])
    print("deploy manifests ok: %d documents, trigger %s -> %s" %
          (len(docs), meta["valueLocation"], meta["targetValue"]))


if __name__ == "__main__":
    main()
