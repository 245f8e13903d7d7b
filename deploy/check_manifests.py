#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Static checks of deploy/ (meson test 'deploy manifests'); nothing touches a cluster.

usage: check_manifests.py DEPLOY_DIR [METRICS_PRINTER]

Parses every manifest under DEPLOY_DIR (exit 77, "skipped", when PyYAML is missing), then checks
what a schema cannot (tests/node/validate_manifests.mjs checks the schemas):
  - names agree: ScaledObjects target their Deployments, the Service selects the pods and targets
    a named container port, trigger URLs point at the Service's /keda on the pod port, the
    namespace, TriggerAuthentications and the Secret keys they and the pods use;
  - no Deployment sets spec.replicas (KEDA owns it: a `kubectl apply` would reset the scale);
  - the metrics-api trigger aggregates over the Service's endpoints (sum, AverageValue) instead of
    reading one random pod, and a Role lets KEDA's operator list those endpoints;
  - every per-pod target equals what the pods are told to carry, read from their own arguments
    (--max-workers x --target-per-worker, or x --target for rmq_worker), not a constant;
  - the prometheus alternative selects on the `namespace` label that the documented scrape
    configs attach (and says so);
  - probes hit /healthz with explicit timeouts;
  - the Dockerfile copies no directory into the image (a COPY glob over meson's build folder
    matches libswarm.so.0.1.0.p/) and a .dockerignore keeps .git and build folders out of the
    build context.
With METRICS_PRINTER (tests/test_metrics, which prints a render with `--print json`), it also
checks that the metrics-api trigger's valueLocation resolves to a number in libswarm's real JSON.
"""
import fnmatch
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


def load(d):
    docs = []  # (relative path, document)
    for root, _, files in os.walk(d):
        for name in sorted(files):
            if not name.endswith(".yaml"):
                continue
            path = os.path.join(root, name)
            with open(path) as f:
                for doc in yaml.safe_load_all(f):
                    if doc is not None:
                        docs.append((os.path.relpath(path, d), doc))
    return docs


def one(docs, kind, folder):
    found = [doc for path, doc in docs
             if doc.get("kind") == kind and os.path.dirname(path) == folder]
    if len(found) != 1:
        fail("expected one %s in %s/, found %d" % (kind, folder or ".", len(found)))
    return found[0]


def args_of(container):
    return dict(a.split("=", 1) for a in container.get("args", []) if "=" in a)


def check_probes(container, port_name):
    for probe in ("readinessProbe", "livenessProbe"):
        p = container.get(probe)
        if p is None:
            fail("%s: no %s" % (container["name"], probe))
        get = p.get("httpGet", {})
        if get.get("path") != "/healthz" or get.get("port") != port_name:
            fail("%s: %s must GET /healthz on port %s" % (container["name"], probe, port_name))
        if not 1 <= p.get("timeoutSeconds", 1) <= 5 or "timeoutSeconds" not in p:
            fail("%s: %s needs an explicit timeoutSeconds of 1..5" % (container["name"], probe))


def check_dockerfile(d):
    with open(os.path.join(d, "Dockerfile")) as f:
        text = f.read()
    # What meson leaves in the build folder: the library, its symlinks and an object folder.
    tree = {"libswarm.so": "l", "libswarm.so.0": "l", "libswarm.so.0.1.0": "f",
            "libswarm.so.0.1.0.p": "d", "libswarm.a": "f", "examples": "d"}
    for line in re.sub(r"\\\n", " ", text).splitlines():
        words = line.split()
        if not words or words[0].upper() != "COPY" or not any(
                w.startswith("--from=") for w in words):
            continue
        srcs = [w for w in words[1:-1] if not w.startswith("--")]
        for src in srcs:
            base = os.path.basename(src.rstrip("/"))
            if any(ch in base for ch in "*?["):
                hits = [n for n, t in tree.items() if fnmatch.fnmatch(n, base) and t == "d"]
                if hits:
                    fail("Dockerfile: COPY %s also copies the folder(s) %s" % (src, hits))
    ignore = os.path.join(d, "..", ".dockerignore")
    if not os.path.exists(ignore):
        fail("no .dockerignore next to the build context (repository root)")
    with open(ignore) as f:
        pats = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    for need in (".git", "build", "**/node_modules"):
        if need not in pats:
            fail(".dockerignore does not exclude %s" % need)


def check_base(docs, d, printer):
    kust, ns = one(docs, "Kustomization", ""), one(docs, "Namespace", "")["metadata"]["name"]
    dep, svc, so = one(docs, "Deployment", ""), one(docs, "Service", ""), one(docs, "ScaledObject", "")
    one(docs, "Job", "")
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
    pod_port = ports[svc_port["targetPort"]]
    args = args_of(container)
    if int(args.get("--port", -1)) != pod_port:
        fail("--port differs from the container port")
    if args.get("--bind") != "0.0.0.0":
        fail("the worker must listen on 0.0.0.0 in a pod")
    check_probes(container, svc_port["targetPort"])

    spec = so["spec"]
    if spec["scaleTargetRef"]["name"] != dep["metadata"]["name"]:
        fail("ScaledObject scaleTargetRef is not the Deployment")
    if not 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]:
        fail("need 1 <= minReplicaCount <= maxReplicaCount (in-process metrics cannot wake zero)")
    trig = spec["triggers"][0]
    meta = trig["metadata"]
    if trig["type"] != "metrics-api":
        fail("first trigger must be metrics-api")
    # One pod read through the Service is a random sample; KEDA must read every endpoint and
    # add them up, and the HPA must then treat the number as a total.
    if meta.get("aggregateFromKubeServiceEndpoints") != "true" or \
            meta.get("aggregationType") != "sum":
        fail("metrics-api trigger must aggregate: aggregateFromKubeServiceEndpoints \"true\", "
             "aggregationType sum")
    if trig.get("metricType", "AverageValue") != "AverageValue":
        fail("a summed backlog is a total: metricType must be AverageValue")
    url = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)(/\S*)",
                       meta["url"])
    if not url:
        fail("unexpected trigger url %r" % meta["url"])
    # With endpoint aggregation KEDA connects to the pods, so the port is the pod port.
    if (url.group(1), url.group(2), int(url.group(3)), url.group(4)) != (
            svc["metadata"]["name"], ns, pod_port, "/keda"):
        fail("trigger url %r does not point at the Service's /keda on the pod port" % meta["url"])
    # KEDA must be allowed to list the Service's endpoints for the aggregation.
    role, binding = one(docs, "Role", ""), one(docs, "RoleBinding", "")
    if binding["roleRef"]["name"] != role["metadata"]["name"] or not any(
            "endpoints" in r["resources"] and "list" in r["verbs"] for r in role["rules"]):
        fail("no Role letting KEDA list endpoints bound by the RoleBinding")
    if not any(s.get("kind") == "ServiceAccount" and s.get("name") == "keda-operator"
               for s in binding["subjects"]):
        fail("the endpoints RoleBinding does not name KEDA's operator")
    if "keda-endpoints-rbac.yaml" not in kust["resources"]:
        fail("keda-endpoints-rbac.yaml is not in the kustomization")
    workers = int(args["--max-workers"])
    per_worker = float(args["--target-per-worker"])
    if float(meta["targetValue"]) != workers * per_worker:
        fail("targetValue %s != --max-workers %d x --target-per-worker %g"
             % (meta["targetValue"], workers, per_worker))

    if printer:
        out = subprocess.run([printer, "--print", "json"], check=True, capture_output=True,
                             text=True).stdout
        v = json.loads(out)
        for key in meta["valueLocation"].split("."):
            if not isinstance(v, dict) or key not in v:
                fail("valueLocation %r not in libswarm's JSON" % meta["valueLocation"])
            v = v[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            fail("valueLocation %r is not a number" % meta["valueLocation"])

    alt = one(docs, "ScaledObject", "alternatives")
    if alt["spec"]["scaleTargetRef"]["name"] != dep["metadata"]["name"]:
        fail("alternative ScaledObject does not target the Deployment")
    q = alt["spec"]["triggers"][0]["metadata"]["query"]
    if 'namespace="%s"' % ns not in q:
        fail("prometheus query must select namespace=%r: %s" % (ns, q))
    pm = one(docs, "PodMonitor", "prometheus")
    if any(labels.get(k) != v for k, v in pm["spec"]["selector"]["matchLabels"].items()):
        fail("PodMonitor selector does not match the Deployment's pods")
    if any(e.get("port") not in ports or e.get("path") != "/metrics"
           for e in pm["spec"]["podMetricsEndpoints"]):
        fail("PodMonitor must scrape /metrics on a named container port")
    with open(os.path.join(d, "prometheus", "scrape-config.yaml")) as f:
        cfg = yaml.safe_load(f)
    relabels = [r for job in cfg["scrape_configs"] for r in job.get("relabel_configs", [])]
    if not any(r.get("source_labels") == ["__meta_kubernetes_namespace"] and
               r.get("target_label") == "namespace" for r in relabels):
        fail("scrape-config.yaml does not attach the namespace label the query needs")
    if float(alt["spec"]["triggers"][0]["metadata"]["threshold"]) != workers * per_worker:
        fail("prometheus threshold differs from the per-pod target")
    return ns, meta


def check_rabbitmq(docs, d, ns):
    kust = one(docs, "Kustomization", "rabbitmq")
    if kust.get("namespace") != ns:
        fail("rabbitmq kustomization namespace differs")
    for res in kust["resources"]:
        if not os.path.exists(os.path.join(d, "rabbitmq", res)):
            fail("rabbitmq kustomization lists missing %s" % res)
    dep, so = one(docs, "Deployment", "rabbitmq"), one(docs, "ScaledObject", "rabbitmq")
    ta, secret = one(docs, "TriggerAuthentication", "rabbitmq"), one(docs, "Secret", "rabbitmq")
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    if so["spec"]["scaleTargetRef"]["name"] != dep["metadata"]["name"]:
        fail("rabbitmq ScaledObject does not target its Deployment")
    trig = so["spec"]["triggers"][0]
    if trig["type"] != "rabbitmq" or trig["authenticationRef"]["name"] != ta["metadata"]["name"]:
        fail("rabbitmq trigger must use the TriggerAuthentication")
    meta = trig["metadata"]
    if "host" in meta or "hostFromEnv" in meta:
        fail("the broker address belongs in the TriggerAuthentication, not the trigger")
    if meta.get("protocol") != "http" or meta.get("mode") != "QueueLength":
        fail("rabbitmq trigger: protocol http (counts unacked) and mode QueueLength")
    params = {r["parameter"]: r for r in ta["spec"]["secretTargetRef"]}
    if "host" not in params:
        fail("TriggerAuthentication does not provide host")
    for r in params.values():
        if r["name"] != secret["metadata"]["name"] or r["key"] not in keys:
            fail("TriggerAuthentication refers to a missing secret key %r" % r["key"])
    container = dep["spec"]["template"]["spec"]["containers"][0]
    for env in container.get("env", []):
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref and (ref["name"] != secret["metadata"]["name"] or ref["key"] not in keys):
            fail("worker env %s refers to a missing secret key" % env["name"])
    args = args_of(container)
    if args.get("--queue") != meta["queueName"]:
        fail("worker --queue %r != trigger queueName %r" % (args.get("--queue"), meta["queueName"]))
    if float(meta["value"]) != int(args["--max-workers"]) * float(args["--target"]):
        fail("rabbitmq value %s != --max-workers x --target" % meta["value"])


def main():
    if len(sys.argv) not in (2, 3):
        fail(__doc__)
    d = sys.argv[1]
    docs = load(d)
    for path, doc in docs:
        if doc.get("kind") == "Deployment" and "replicas" in doc["spec"]:
            fail("%s: Deployment sets spec.replicas; KEDA owns it (every apply would reset the "
                 "scale)" % path)
    ns, meta = check_base(docs, d, sys.argv[2] if len(sys.argv) == 3 else None)
    check_rabbitmq(docs, d, ns)
    check_dockerfile(d)
    print("deploy manifests ok: %d documents, trigger %s -> %s (sum over endpoints)" %
          (len(docs), meta["valueLocation"], meta["targetValue"]))


if __name__ == "__main__":
    main()
