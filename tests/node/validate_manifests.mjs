// SPDX-License-Identifier: MIT
// Validates every Kubernetes and KEDA manifest under a folder against the real schemas, with the
// npm packages kubernetes-models and @kubernetes-models/keda (installed next to this file by
// `make deps`: npm install --prefix tests/node). meson test 'deploy schemas'.
//
//   node tests/node/validate_manifests.mjs DEPLOY_DIR
//
// Each YAML document is parsed with js-yaml and handed to the model class of its apiVersion and
// kind; validate() throws on any schema violation (wrong type, e.g. a boolean where KEDA wants
// the string "true", unknown enum value, missing required field). A kind with no model fails
// the test unless it is listed in OTHER_CHECKS with the test that covers it, so nothing goes
// unvalidated silently. Exit 77 (skipped) when node_modules is absent.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
if (!fs.existsSync(path.join(here, "node_modules", "kubernetes-models")) ||
    !fs.existsSync(path.join(here, "node_modules", "@kubernetes-models", "keda"))) {
  console.log("node_modules absent (run: npm install --prefix tests/node): skipped");
  process.exit(77);
}

const yaml = (await import("js-yaml")).default;
const core = await import("kubernetes-models/v1");
const apps = await import("kubernetes-models/apps/v1");
const batch = await import("kubernetes-models/batch/v1");
const rbac = await import("kubernetes-models/rbac.authorization.k8s.io/v1");
const keda = await import("@kubernetes-models/keda/keda.sh/v1alpha1");

const MODELS = {
  "v1/Namespace": core.Namespace,
  "v1/Service": core.Service,
  "v1/Secret": core.Secret,
  "v1/ConfigMap": core.ConfigMap,
  "apps/v1/Deployment": apps.Deployment,
  "batch/v1/Job": batch.Job,
  "rbac.authorization.k8s.io/v1/Role": rbac.Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": rbac.RoleBinding,
  "keda.sh/v1alpha1/ScaledObject": keda.ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": keda.TriggerAuthentication,
};
// Kinds these packages have no schema for, and what checks them instead.
const OTHER_CHECKS = {
  "kustomize.config.k8s.io/v1beta1/Kustomization": "deploy/check_manifests.py (resources exist)",
  "monitoring.coreos.com/v1/PrometheusRule": "tests/check_prometheus_rules.py (promtool)",
  "monitoring.coreos.com/v1/PodMonitor": "deploy/check_manifests.py (selector, port name)",
};
// Files that are not Kubernetes objects.
const NOT_MANIFESTS = new Set(["prometheus/rules-test.yaml", "prometheus/scrape-config.yaml"]);

function walk(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith(".yaml") || e.name.endsWith(".yml")) out.push(p);
  }
  return out.sort();
}

const root = process.argv[2];
if (!root) {
  console.error("usage: validate_manifests.mjs DEPLOY_DIR");
  process.exit(2);
}
let validated = 0, failures = 0;
const seen = {};
for (const file of walk(root)) {
  const rel = path.relative(root, file);
  if (NOT_MANIFESTS.has(rel)) continue;
  const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d != null);
  for (const doc of docs) {
    const key = `${doc.apiVersion}/${doc.kind}`;
    const Model = MODELS[key];
    if (!Model) {
      if (OTHER_CHECKS[key]) continue;
      console.error(`${rel}: no schema for ${key}`);
      failures++;
      continue;
    }
    try {
      new Model(doc).validate();
      validated++;
      seen[key] = (seen[key] || 0) + 1;
    } catch (err) {
      console.error(`${rel}: ${key} ${doc.metadata?.name}: ${err.message}`);
      for (const e of err.errors ?? []) console.error(`  ${e.instancePath} ${e.message}`);
      failures++;
    }
  }
}
// The schemas must actually reject something: a ScaledObject with a boolean where the metadata
// map needs strings, and a Deployment with a string replica count.
const bad = [
  new keda.ScaledObject({ metadata: { name: "x" }, spec: { scaleTargetRef: { name: "d" },
    triggers: [{ type: "metrics-api", metadata: { aggregateFromKubeServiceEndpoints: true } }] } }),
  new apps.Deployment({ metadata: { name: "x" }, spec: { replicas: "2",
    selector: { matchLabels: { a: "b" } },
    template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c" }] } } } }),
];
for (const b of bad) {
  let threw = false;
  try { b.validate(); } catch { threw = true; }
  if (!threw) { console.error(`schema accepted a bad ${b.kind}`); failures++; }
}
for (const need of ["apps/v1/Deployment", "keda.sh/v1alpha1/ScaledObject",
                    "keda.sh/v1alpha1/TriggerAuthentication", "v1/Service"]) {
  if (!seen[need]) { console.error(`no ${need} validated`); failures++; }
}
if (failures) {
  console.error(`${failures} manifest(s) failed schema validation`);
  process.exit(1);
}
console.log(`deploy schemas ok: ${validated} documents valid (${JSON.stringify(seen)})`);
