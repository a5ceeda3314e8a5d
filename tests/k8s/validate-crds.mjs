// Validates Prometheus-Operator objects (ServiceMonitor, PodMonitor, PrometheusRule) and KEDA objects
// (ScaledObject, TriggerAuthentication) against their CRD schemas with the kubernetes-models packages
// (@kubernetes-models/prometheus-operator, @kubernetes-models/keda: installed by `make k8s-tools` into
// .cache/node from tests/k8s/package-lock.json).
// Usage: node validate-crds.mjs NODE_MODULES_DIR < objects.json   (a JSON array)
// Prints one JSON result per object; exits 1 if any is invalid or of an unknown kind.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.argv[2];
const v1 = await import(pathToFileURL(join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js")));
const keda = await import(pathToFileURL(join(modules, "@kubernetes-models/keda/keda.sh/v1alpha1/index.js")));
const KINDS = {
  "monitoring.coreos.com/v1": { ServiceMonitor: v1.ServiceMonitor, PodMonitor: v1.PodMonitor, PrometheusRule: v1.PrometheusRule },
  "keda.sh/v1alpha1": { ScaledObject: keda.ScaledObject, TriggerAuthentication: keda.TriggerAuthentication },
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = false;
for (const obj of JSON.parse(input)) {
  const Kind = (KINDS[obj.apiVersion] || {})[obj.kind];
  const name = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
  if (!Kind) {
    console.log(JSON.stringify({ name, ok: false, error: `unknown kind ${obj.apiVersion} ${obj.kind}` }));
    failed = true;
    continue;
  }
  try {
    new Kind(obj).validate();
    console.log(JSON.stringify({ name, ok: true }));
  } catch (e) {
    console.log(JSON.stringify({ name, ok: false, error: String(e.message || e) }));
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
