"""The Helm chart and the Dockerfile, checked with the real tools: helm lint/template,
kubernetes-validate (k8s schemas), the Prometheus-Operator and KEDA CRD models, promtool, hadolint.
No Kubernetes API server can run here, so nothing is installed into a cluster.
(tests/e2e/test_chart_consumers.py: the chart as others consume it: subchart, kustomize, GitOps, README.)"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

CHART = ROOT / "helm" / "ocr-service"
HELM = ROOT / ".cache" / "tools" / "helm"
NODE_MODULES = ROOT / ".cache" / "node" / "node_modules"
VALIDATE_CRDS = ROOT / "tests" / "k8s" / "validate-crds.mjs"
CORE_KINDS = {"ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
              "NetworkPolicy", "Pod", "ServiceAccount"}
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ScaledObject"}
ALL_ON = ["--set", "backend=triton,networkPolicy.enabled=true,metrics.serviceMonitor.enabled=true,"
          "metrics.prometheusRule.enabled=true,metrics.grafanaDashboard.enabled=true"]
DIGEST = "sha256:" + "ab" * 32
TRITON_DIGEST = "sha256:" + "cd" * 32
KEDA_ON = ["--set", "autoscaling.keda.enabled=true,autoscaling.keda.serverAddress=http://prometheus-operated.monitoring.svc:9090"]
ALLOW_LIST = ["--set", "backend=triton,networkPolicy.enabled=true",
              "--set-json", 'networkPolicy.serviceIngressFrom=[{"namespaceSelector":{"matchLabels":{"team":"web"}}}]']

VALUE_SETS = {
    "defaults": [],
    "gpu-cluster": ["-f", str(CHART / "ci" / "gpu-cluster-values.yaml")],
    "existing-secret": ["--set", "auth.existingSecret=my-tokens"],
    "autoscaling": ["--set", "autoscaling.enabled=true,podDisruptionBudget.enabled=true"],
    "triton-pvc": ["--set", "backend=triton,triton.modelRepository.source=pvc,triton.modelRepository.claimName=models"],
    "triton-s3": ["--set", "backend=triton,triton.modelRepository.source=url,triton.modelRepository.url=s3://bucket/models,"
                  "triton.modelRepository.credentialsSecret=s3-creds,triton.gpus=0"],
    "everything-on": ALL_ON,
    "keda": [*ALL_ON, *KEDA_ON, "--set-json",
             'autoscaling.keda.authenticationRef={"name":"prometheus-auth","kind":"TriggerAuthentication"}'],
    "prometheus-adapter": ["--set", "autoscaling.enabled=true,autoscaling.prometheusAdapter.enabled=true,"
                           "autoscaling.targetCPUUtilizationPercentage=null"],
    "irsa-s3": ["--set", "backend=triton,triton.modelRepository.source=url,triton.modelRepository.url=s3://bucket/models",
                "--set-string", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/m"],
    "images-and-placement": ["--set", f"backend=triton,global.imageRegistry=mirror.example.com,image.digest={DIGEST},"
                             f"triton.image.digest={TRITON_DIGEST},priorityClassName=ocr-high,runtimeClassName=gvisor,"
                             "triton.priorityClassName=gpu-high,triton.runtimeClassName=nvidia",
                             "--set-json", 'topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone",'
                             '"whenUnsatisfiable":"ScheduleAnyway"}]',
                             "--set-json", 'triton.topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"kubernetes.io/hostname",'
                             '"whenUnsatisfiable":"DoNotSchedule","labelSelector":{"matchLabels":{"gpu":"a100"}}}]'],
    "servicemonitor-options": [*ALL_ON, "--set", "metrics.serviceMonitor.namespace=monitoring,metrics.serviceMonitor.scrapeTimeout=10s,"
                               "metrics.serviceMonitor.honorLabels=true,metrics.prometheusRule.namespace=monitoring,"
                               "metrics.grafanaDashboard.namespace=grafana,metrics.grafanaDashboard.annotations.grafana_folder=OCR",
                               "--set-json", 'metrics.serviceMonitor.relabelings=[{"sourceLabels":["__meta_kubernetes_pod_node_name"],'
                               '"targetLabel":"node"}]',
                               "--set-json", 'metrics.serviceMonitor.metricRelabelings=[{"sourceLabels":["__name__"],'
                               '"regex":"python_gc_.*","action":"drop"}]',
                               "--set-json", 'metrics.serviceMonitor.targetLabels=["app.kubernetes.io/version"]'],
    "network-allow-list": ALLOW_LIST,
    # Triton as a sidecar of the API pods, tensors through a shared /dev/shm
    "triton-colocated": ["--set", "backend=triton,triton.colocated.enabled=true"],
    "triton-colocated-gpu": ["-f", str(CHART / "ci" / "gpu-cluster-values.yaml"), "--set",
                             "triton.colocated.enabled=true,triton.autoscaling.enabled=false,triton.colocated.shmRegions=16,"
                             "triton.colocated.shmRegionMiB=12,triton.shmSize=2Gi,metrics.serviceMonitor.namespace=monitoring"],
    # extra labels and annotations that overlap the chart's own: each key must still come out once
    "overlapping-extras": [*ALL_ON, "--set-string", "podLabels.app\\.kubernetes\\.io/name=mine,podLabels.team=ocr,"
                           "podAnnotations.prometheus\\.io/scrape=false,triton.podLabels.app\\.kubernetes\\.io/component=x,"
                           "metrics.serviceMonitor.labels.app\\.kubernetes\\.io/instance=y,"
                           "metrics.grafanaDashboard.labels.grafana_dashboard=1"],
}
# every escape hatch of both pods at once, through the validators like any value set
ESCAPE_HATCHES = [
    "--set", "backend=triton",
    "--set-json", 'extraEnv=[{"name":"OCR_CLS_THRESH","value":"0.8"}]',
    "--set-json", 'extraEnvFrom=[{"secretRef":{"name":"more-settings"}}]',
    "--set-json", 'extraVolumes=[{"name":"fonts","configMap":{"name":"fonts"}}]',
    "--set-json", 'extraVolumeMounts=[{"name":"fonts","mountPath":"/fonts","readOnly":true}]',
    "--set-json", 'initContainers=[{"name":"wait","image":"busybox:1.36","command":["true"]}]',
    "--set-json", 'sidecars=[{"name":"proxy","image":"envoyproxy/envoy:v1.31.0"}]',
    "--set-json", 'triton.extraEnv=[{"name":"CUDA_MODULE_LOADING","value":"LAZY"}]',
    "--set-json", 'triton.extraEnvFrom=[{"configMapRef":{"name":"triton-env"}}]',
    "--set-json", 'triton.extraVolumes=[{"name":"trt-cache","emptyDir":{"sizeLimit":"4Gi"}}]',
    "--set-json", 'triton.extraVolumeMounts=[{"name":"trt-cache","mountPath":"/tmp/trt-cache"}]',
    "--set-json", 'triton.initContainers=[{"name":"warm","image":"busybox:1.36","command":["true"]}]',
    "--set-json", 'triton.sidecars=[{"name":"dcgm","image":"nvcr.io/nvidia/k8s/dcgm-exporter:3.3.8-3.6.0-ubuntu22.04"}]',
]
VALUE_SETS["escape-hatches"] = ESCAPE_HATCHES
VALUE_SETS["triton-keda"] = [*ALL_ON, "--set", "triton.autoscaling.keda.enabled=true,"
                              "triton.autoscaling.keda.serverAddress=http://prometheus.monitoring:9090"]
VALUE_SETS["triton-external"] = [*ALL_ON, "--set", "triton.external.url=triton.inference.svc:8000"]
# the embedded backend on GPU nodes (the image's GPU variant): the production values and the bare switch
VALUE_SETS["gpu-embedded"] = ["-f", str(CHART / "ci" / "gpu-embedded-values.yaml")]
VALUE_SETS["gpu-embedded-switch"] = ["--set", "gpu.enabled=true"]


def _helm() -> str:
    if not HELM.exists():
        pytest.fail(f"{HELM} missing: `make test` fetches it (make k8s-tools)")
    return str(HELM)


def helm_template(args: list[str], release: str = "rel", namespace: str = "ocr") -> subprocess.CompletedProcess:
    return subprocess.run([_helm(), "template", release, str(CHART), "--namespace", namespace, *args],
                          capture_output=True, text=True)


def render(args: list[str], release: str = "rel", namespace: str = "ocr") -> list[dict]:
    out = helm_template(args, release, namespace)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render_fails(args: list[str]) -> str:
    out = helm_template(args)
    assert out.returncode != 0, "rendered, but should not have"
    return out.stderr


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def named(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in by_kind(docs, kind)])
    return found[0]


def validate_crds(objs: list[dict]) -> subprocess.CompletedProcess:
    if not (NODE_MODULES / "@kubernetes-models" / "keda").exists():
        pytest.fail(f"{NODE_MODULES} lacks the CRD models: `make k8s-tools` installs them")
    return subprocess.run(["node", str(VALIDATE_CRDS), str(NODE_MODULES)], input=json.dumps(objs),
                          capture_output=True, text=True)


def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool not found: `make test` installs Debian's prometheus package")
    return path


# --- PromQL selectors -------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def selectors(expr: str) -> list[tuple[str, dict | None]]:
    """Every selector of an ocr_*, ocr:*, nv_* or up series in a PromQL expression, with its matchers
    ({label: (op, value)}, None when the metric has no braces at all)."""
    masked = re.sub(r'"[^"]*"', lambda m: '"' + "_" * (len(m.group()) - 2) + '"', expr)
    out = []
    for m in _IDENT.finditer(masked):
        name = m.group()
        if not (name.startswith(("ocr_", "ocr:", "nv_", "DCGM_")) or name == "up"):
            continue
        rest = masked[m.end():]
        if not rest.lstrip().startswith("{"):
            out.append((name, None))
            continue
        start = m.end() + len(rest) - len(rest.lstrip())
        block = expr[start + 1:masked.index("}", start)]
        out.append((name, {k: (op, v) for k, op, v in _MATCHER.findall(block)}))
    return out


def test_the_selector_audit_sees_unscoped_series():
    sel = selectors('sum(rate(ocr_http_requests_total{route="/v1/ocr", job="a"}[5m])) / up + nv_gpu_utilization{x=~"ocr_q"}')
    assert sel == [("ocr_http_requests_total", {"route": ("=", "/v1/ocr"), "job": ("=", "a")}), ("up", None),
                   ("nv_gpu_utilization", {"x": ("=~", "ocr_q")})]


# --- lint, schemas, CRDs -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict(name):
    r = subprocess.run([_helm(), "lint", "--strict", str(CHART), "--namespace", "ocr", *VALUE_SETS[name]],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_core_kinds_pass_kubernetes_validate_strict(name, tmp_path):
    docs = render(VALUE_SETS[name])
    kinds = {d["kind"] for d in docs}
    assert kinds <= CORE_KINDS | CRD_KINDS, kinds
    core = [d for d in docs if d["kind"] in CORE_KINDS]
    f = tmp_path / "core.yaml"
    f.write_text(yaml.safe_dump_all(core))
    validator = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent / "kubernetes-validate")
    for version in ("1.25", "1.31"):
        r = subprocess.run([validator, "--strict", "-k", version, str(f)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count("passed for resource") == len(core)


@pytest.mark.parametrize("name,kinds", [("gpu-cluster", {"ServiceMonitor", "PrometheusRule"}),
                                        ("everything-on", {"ServiceMonitor", "PrometheusRule"}),
                                        ("servicemonitor-options", {"ServiceMonitor", "PrometheusRule"}),
                                        ("keda", {"ServiceMonitor", "PrometheusRule", "ScaledObject"}),
                                        ("triton-colocated-gpu", {"ServiceMonitor", "PrometheusRule"}),
                                        ("triton-keda", {"ServiceMonitor", "PrometheusRule", "ScaledObject"})])
def test_custom_resources_pass_their_crd_schemas(name, kinds):
    crds = [d for d in render(VALUE_SETS[name]) if d["kind"] in CRD_KINDS]
    assert {d["kind"] for d in crds} == kinds
    r = validate_crds(crds)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count('"ok":true') == len(crds)


def test_the_crd_check_catches_bad_objects():
    docs = render(VALUE_SETS["keda"])
    sm = by_kind(docs, "ServiceMonitor")[0]
    sm["spec"]["endpoints"][0]["interval"] = 15
    r = validate_crds([sm])
    assert r.returncode == 1 and "interval must be string" in r.stdout
    so = by_kind(docs, "ScaledObject")[0]
    so["spec"]["triggers"][0]["metadata"]["threshold"] = 4
    r = validate_crds([so])
    assert r.returncode == 1 and "threshold must be string" in r.stdout
    so["spec"]["triggers"][0]["metadata"]["threshold"] = "4"
    so["spec"]["minReplicaCount"] = "2"
    r = validate_crds([so])
    assert r.returncode == 1 and "minReplicaCount must be integer" in r.stdout


@pytest.mark.parametrize("bad", ["backend=gpu", "config.modelSet=v9", "service.port=0", "triton.modelRepository.url=http://x",
                                 "auth.tokens[0]=short", "surprise=1", "config.workers=2", "image.digest=sha256:abc",
                                 "autoscaling.keda.serverAddress=prometheus:9090", "monitoring.runbookBaseUrl=docs/operations.md",
                                 "metrics.serviceMonitor.scrapeTimeout=10", "autoscaling.behavior.scaleDown.selectPolicy=Avg",
                                 "serviceAccount.name=Not_A_Name", "global.imageRegistry[0]=x"])
def test_values_schema_rejects_bad_values(bad):
    assert "values don't meet the specifications of the schema" in render_fails(["--set", bad])


# --- one worker per pod, images, service account, placement --------------------------------------------

def test_one_uvicorn_worker_per_pod():
    for name in ("defaults", "gpu-cluster"):
        assert by_kind(render(VALUE_SETS[name]), "ConfigMap")[0]["data"]["OCR_WORKERS"] == "1"
    assert yaml.safe_load((CHART / "ci" / "gpu-cluster-values.yaml").read_text())["config"].get("workers", 1) == 1
    gpu = render(VALUE_SETS["gpu-cluster"])
    api = named(gpu, "Deployment", "rel-ocr-service")
    assert api["spec"].get("replicas") is None  # the HPA owns it
    assert named(gpu, "HorizontalPodAutoscaler", "rel-ocr-service")["spec"]["minReplicas"] >= 6


def test_images_registry_digest_and_global_registry():
    docs = render(VALUE_SETS["images-and-placement"])
    api = named(docs, "Deployment", "rel-ocr-service")["spec"]["template"]["spec"]
    triton = named(docs, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["spec"]
    test_pod = by_kind(docs, "Pod")[0]["spec"]
    assert api["containers"][0]["image"] == f"mirror.example.com/example/ocr-service@{DIGEST}"
    # the models come from the service image of the chart's appVersion, not the API's digest
    assert triton["initContainers"][0]["image"] == "mirror.example.com/example/ocr-service:0.1.0"
    assert test_pod["containers"][0]["image"] == f"mirror.example.com/example/ocr-service@{DIGEST}"
    assert triton["containers"][0]["image"] == f"mirror.example.com/nvidia/tritonserver@{TRITON_DIGEST}"
    defaults = render(["--set", "backend=triton"])
    assert named(defaults, "Deployment", "rel-ocr-service")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "ghcr.io/example/ocr-service:0.1.0"
    assert named(defaults, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "nvcr.io/nvidia/tritonserver:24.10-py3"
    gpu = render(VALUE_SETS["gpu-cluster"])
    assert named(gpu, "Deployment", "rel-ocr-service")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.example.com/ocr/ocr-service:0.1.0"
    plain = render(["--set", "image.registry=,image.repository=localhost:5000/ocr,image.tag=dev"])
    assert by_kind(plain, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost:5000/ocr:dev"
    # an old-style repository that names its registry, with a registry set too: a clear failure, not a bad pull
    err = render_fails(["--set", "image.repository=registry.example.com/ocr/ocr-service"])
    assert "put the registry in image.registry" in err


def test_service_account_for_irsa_and_workload_identity():
    docs = render(VALUE_SETS["irsa-s3"])
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/m"}
    sa = named(docs, "ServiceAccount", "rel-ocr-service-triton")  # Triton's own account gets the role
    assert sa["metadata"]["annotations"] == role and sa["automountServiceAccountToken"] is False
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in by_kind(docs, "Deployment")}
    pods |= {d["metadata"]["name"]: d["spec"] for d in by_kind(docs, "Pod")}
    assert len(pods) == 3
    for name, pod in pods.items():
        expected = "rel-ocr-service-triton" if name == "rel-ocr-service-triton" else "rel-ocr-service"
        assert pod["serviceAccountName"] == expected and pod["automountServiceAccountToken"] is False, name
    # set on Triton's account alone, the role stays off the API's
    apart = render(["--set", "backend=triton,triton.modelRepository.source=url,triton.modelRepository.url=s3://b/m",
                    "--set-string", "triton.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/t"])
    assert "annotations" not in named(apart, "ServiceAccount", "rel-ocr-service")["metadata"]
    assert named(apart, "ServiceAccount", "rel-ocr-service-triton")["metadata"]["annotations"] == \
        {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/t"}
    triton = named(docs, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["spec"]["containers"][0]
    assert "--model-repository=s3://bucket/models" in triton["args"] and "envFrom" not in triton  # no key Secret
    own = render(["--set", "serviceAccount.create=false,serviceAccount.name=shared-reader"])
    assert not by_kind(own, "ServiceAccount")
    assert by_kind(own, "Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"] == "shared-reader"
    none = render(["--set", "serviceAccount.create=false"])
    assert by_kind(none, "Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"] == "default"
    mounted = render(["--set", "serviceAccount.automountServiceAccountToken=true"])
    assert by_kind(mounted, "Deployment")[0]["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


def test_topology_spread_priority_and_runtime_class():
    docs = render(VALUE_SETS["images-and-placement"])
    api = named(docs, "Deployment", "rel-ocr-service")
    triton = named(docs, "Deployment", "rel-ocr-service-triton")
    a, t = api["spec"]["template"]["spec"], triton["spec"]["template"]["spec"]
    assert (a["priorityClassName"], a["runtimeClassName"]) == ("ocr-high", "gvisor")
    assert (t["priorityClassName"], t["runtimeClassName"]) == ("gpu-high", "nvidia")
    # a constraint without a labelSelector counts the pods of its own Deployment; a given one is kept
    assert a["topologySpreadConstraints"] == [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                               "whenUnsatisfiable": "ScheduleAnyway",
                                               "labelSelector": {"matchLabels": api["spec"]["selector"]["matchLabels"]}}]
    assert t["topologySpreadConstraints"][0]["labelSelector"] == {"matchLabels": {"gpu": "a100"}}
    gpu = render(VALUE_SETS["gpu-cluster"])
    gt = named(gpu, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["spec"]
    ga = named(gpu, "Deployment", "rel-ocr-service")
    assert gt["runtimeClassName"] == "nvidia" and "runtimeClassName" not in ga["spec"]["template"]["spec"]
    for c in ga["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert c["labelSelector"]["matchLabels"] == ga["spec"]["selector"]["matchLabels"]
    plain = by_kind(render([]), "Deployment")[0]["spec"]["template"]["spec"]
    assert not {"priorityClassName", "runtimeClassName", "topologySpreadConstraints"} & set(plain)


# --- autoscaling: HPA behavior, prometheus-adapter, KEDA ---------------------------------------------------

def test_hpa_behavior_scales_up_fast_and_down_slowly():
    docs = render(VALUE_SETS["gpu-cluster"])
    hpas = {h["metadata"]["name"]: h["spec"] for h in by_kind(docs, "HorizontalPodAutoscaler")}
    api, triton = hpas["rel-ocr-service"], hpas["rel-ocr-service-triton"]
    assert api["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert api["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert {p["type"] for p in api["behavior"]["scaleUp"]["policies"]} == {"Percent", "Pods"}
    assert triton["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= api["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
    custom = render(["--set", "autoscaling.enabled=true,autoscaling.behavior.scaleDown.stabilizationWindowSeconds=900"])
    assert by_kind(custom, "HorizontalPodAutoscaler")[0]["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 900


def _adapter_rule_in_values_comment() -> list:
    text = (CHART / "values.yaml").read_text()
    block = re.search(r"## ```yaml\n(.*?)## ```", text, re.S).group(1)
    return yaml.safe_load("\n".join(line.removeprefix("## ") for line in block.splitlines()))


def test_hpa_on_jobs_per_pod_through_prometheus_adapter():
    docs = render(VALUE_SETS["prometheus-adapter"])
    hpa = by_kind(docs, "HorizontalPodAutoscaler")[0]["spec"]
    assert hpa["metrics"] == [{"type": "Pods", "pods": {"metric": {"name": "ocr_jobs_per_pod"},
                                                        "target": {"type": "AverageValue", "averageValue": "4"}}}]
    cm = named(docs, "ConfigMap", "rel-ocr-service-prometheus-adapter-rule")
    rules = yaml.safe_load(cm["data"]["rules.yaml"])["rules"]
    assert rules == yaml.safe_load((CHART / "files" / "prometheus-adapter-rules.yml").read_text())["rules"]
    assert rules == _adapter_rule_in_values_comment()  # the README's example is the rule itself
    assert rules[0]["name"]["as"] == "ocr_jobs_per_pod"
    both = render(["--set", "autoscaling.enabled=true,autoscaling.prometheusAdapter.enabled=true"])
    assert [m["type"] for m in by_kind(both, "HorizontalPodAutoscaler")[0]["spec"]["metrics"]] == ["Resource", "Pods"]
    assert "needs a metric" in render_fails(["--set", "autoscaling.enabled=true,autoscaling.targetCPUUtilizationPercentage=null"])


def test_keda_scaled_object_replaces_the_hpa():
    docs = render(VALUE_SETS["keda"])
    assert not by_kind(docs, "HorizontalPodAutoscaler") or all(
        h["metadata"]["name"].endswith("-triton") for h in by_kind(docs, "HorizontalPodAutoscaler"))
    api = named(docs, "Deployment", "rel-ocr-service")
    assert "replicas" not in api["spec"]  # KEDA's HPA owns it
    so = by_kind(docs, "ScaledObject")[0]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rel-ocr-service"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 10)
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert trigger["authenticationRef"] == {"name": "prometheus-auth", "kind": "TriggerAuthentication"}
    meta = trigger["metadata"]
    assert meta["serverAddress"] == "http://prometheus-operated.monitoring.svc:9090" and meta["threshold"] == "4"
    [(_, matchers)] = [s for s in selectors(meta["query"].replace("{__name__", "ocr_jobs{__name__"))]
    assert matchers == {"__name__": ("=~", "ocr_jobs_in_flight|ocr_jobs_waiting"), "namespace": ("=", "ocr"),
                        "job": ("=", "rel-ocr-service")}
    other = render([*KEDA_ON, "--set", "monitoring.apiJob=kubernetes-pods"], release="shop", namespace="prod")
    query = by_kind(other, "ScaledObject")[0]["spec"]["triggers"][0]["metadata"]["query"]
    assert 'namespace="prod"' in query and 'job="kubernetes-pods"' in query


def test_keda_and_the_cpu_hpa_are_mutually_exclusive_and_keda_needs_prometheus():
    err = render_fails([*KEDA_ON, "--set", "autoscaling.enabled=true"])
    assert "cannot both be on" in err
    err = render_fails(["--set", "autoscaling.keda.enabled=true"])
    assert "autoscaling.keda.serverAddress is required" in err
    assert not by_kind(render([]), "ScaledObject")  # off by default


def test_the_scaling_queries_compute_jobs_per_pod_with_promtool(tmp_path):
    """The KEDA query and the prometheus-adapter rule, evaluated by promtool on series of this release
    (2 pods: 4+6 and 4+0 jobs) and of another one: KEDA sees 14 jobs (7 per pod with 2 pods); the
    adapter 10 and 4 for the two pods."""
    query = by_kind(render(VALUE_SETS["keda"]), "ScaledObject")[0]["spec"]["triggers"][0]["metadata"]["query"]
    adapter = yaml.safe_load((CHART / "files" / "prometheus-adapter-rules.yml").read_text())["rules"][0]
    adapter_query = adapter["metricsQuery"].replace("<<.GroupBy>>", "pod").replace(
        "<<.LabelMatchers>>", 'namespace="ocr",pod=~"rel-a|rel-b"')
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "scaling", "rules": [
        {"record": "keda:jobs", "expr": query}, {"record": "adapter:jobs_per_pod", "expr": adapter_query}]}]}))
    series = [("ocr_jobs_in_flight", "ocr", "rel-ocr-service", "rel-a", 4), ("ocr_jobs_waiting", "ocr", "rel-ocr-service", "rel-a", 6),
              ("ocr_jobs_in_flight", "ocr", "rel-ocr-service", "rel-b", 4), ("ocr_jobs_waiting", "ocr", "rel-ocr-service", "rel-b", 0),
              ("ocr_jobs_in_flight", "ocr", "other-ocr-service", "other-a", 50),
              ("ocr_jobs_waiting", "prod", "rel-ocr-service", "rel-c", 70)]
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m",
                   "input_series": [{"series": f'{m}{{namespace="{ns}", job="{job}", pod="{pod}"}}', "values": f"{v}x5"}
                                    for m, ns, job, pod, v in series],
                   "promql_expr_test": [
                       {"expr": "keda:jobs", "eval_time": "2m", "exp_samples": [{"labels": "keda:jobs", "value": 14}]},
                       {"expr": "adapter:jobs_per_pod", "eval_time": "2m", "exp_samples": [
                           {"labels": 'adapter:jobs_per_pod{pod="rel-a"}', "value": 10},
                           {"labels": 'adapter:jobs_per_pod{pod="rel-b"}', "value": 4}]}]}]}))
    r = subprocess.run([promtool(), "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


# --- Triton, probes, model repository ------------------------------------------------------------------

def test_gpu_limit_node_placement_and_probes_in_triton_mode():
    docs = render(VALUE_SETS["gpu-cluster"])
    triton = named(docs, "Deployment", "rel-ocr-service-triton")
    pod = triton["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert "ppocrv6_small_rec" in _triton_models(docs) and "--model-repository=/models" in c["args"]
    assert pod["initContainers"][0]["name"] == "copy-models"
    cfg = by_kind(docs, "ConfigMap")[0]["data"]
    assert cfg["OCR_BACKEND"] == "triton" and cfg["OCR_TRITON_URL"] == "rel-ocr-service-triton-headless:8000"
    hpas = {h["metadata"]["name"]: h for h in by_kind(docs, "HorizontalPodAutoscaler")}
    assert hpas["rel-ocr-service"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpas["rel-ocr-service-triton"]["spec"]["metrics"][0]["pods"]["metric"]["name"] == "avg_time_queue_us"
    assert len(by_kind(docs, "PodDisruptionBudget")) == 2


@pytest.mark.parametrize("name", ["gpu-cluster", "everything-on", "triton-pvc", "triton-s3"])
def test_the_api_readiness_never_waits_for_triton(name):
    """The API stays Ready while Triton is down (it answers 503 backend_unavailable): no init container
    waits for Triton and the probes ask the API's own endpoints."""
    docs = render(VALUE_SETS[name])
    pod = named(docs, "Deployment", "rel-ocr-service")["spec"]["template"]["spec"]
    assert not pod.get("initContainers")
    assert "rel-ocr-service-triton" not in json.dumps(pod) and "8000" not in json.dumps(pod)
    [c] = pod["containers"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_embedded_mode_has_no_triton():
    docs = render([])
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == ["rel-ocr-service"]
    assert by_kind(docs, "ConfigMap")[0]["data"]["OCR_BACKEND"] == "onnxruntime"
    assert not any("nvidia.com/gpu" in json.dumps(d) for d in docs)


def _triton_models(docs, deployment: str = "rel-ocr-service-triton") -> list[str]:
    """The models Triton serves: the folders copy-models copies (model control none), or the
    --load-model list (explicit model control, pvc and url repositories)."""
    pod = named(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    [triton] = [c for c in pod["containers"] if c["name"] == "triton"]
    copy = [c for c in pod.get("initContainers", []) if c["name"] == "copy-models"]
    if copy:
        assert "--model-control-mode=none" in triton["args"]
        assert not any(a.startswith("--load-model=") for a in triton["args"])
        return copy[0]["args"]
    assert "--model-control-mode=explicit" in triton["args"]
    return [a.split("=", 1)[1] for a in triton["args"] if a.startswith("--load-model=")]


def test_triton_serves_only_the_sets_models_with_no_model_control():
    """The default (copy): only the set's folders reach Triton's repository and nothing can load or
    unload a model afterwards; a pvc or url repository may hold more: explicit, the set's only."""
    docs = render(["--set", "backend=triton"])
    assert _triton_models(docs) == ["ppocrv6_small_det", "ppocrv6_small_rec", "ppocr_textline_cls"]
    copy = named(docs, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["spec"]["initContainers"][0]
    assert "sys.argv[1:]" in copy["command"][2] and "/app/model_repository/" in copy["command"][2]
    assert _triton_models(render(VALUE_SETS["triton-pvc"])) == ["ppocrv6_small_det", "ppocrv6_small_rec",
                                                                "ppocr_textline_cls"]
    assert _triton_models(render(VALUE_SETS["triton-s3"])) == ["ppocrv6_small_det_int8", "ppocrv6_small_rec_int8",
                                                               "ppocr_textline_cls"]  # triton.gpus 0: the CPU set
    assert _triton_models(render(VALUE_SETS["triton-colocated"]), "rel-ocr-service") == \
        ["ppocrv6_small_det", "ppocrv6_small_rec", "ppocr_textline_cls"]


def test_model_repository_sources():
    s3 = render(VALUE_SETS["triton-s3"])
    t = named(s3, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["spec"]
    assert "--model-repository=s3://bucket/models" in t["containers"][0]["args"]
    assert "initContainers" not in t and t["containers"][0]["envFrom"][0]["secretRef"]["name"] == "s3-creds"
    assert "nvidia.com/gpu" not in json.dumps(t["containers"][0]["resources"])  # gpus: 0 runs Triton on CPU
    pvc = render(VALUE_SETS["triton-pvc"])
    t = named(pvc, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["spec"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in t["volumes"]


def test_security_contexts_everywhere():
    docs = render(VALUE_SETS["everything-on"])
    pods = [d["spec"]["template"]["spec"] for d in by_kind(docs, "Deployment")] + [d["spec"] for d in by_kind(docs, "Pod")]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "resources" in c


# --- Triton colocated: a sidecar sharing /dev/shm ----------------------------------------------------------

def test_colocated_triton_is_a_sidecar_sharing_dev_shm_with_the_api():
    from preprocess_service.settings import Settings

    docs = render(VALUE_SETS["triton-colocated"])
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == ["rel-ocr-service"]  # no Triton Deployment
    # nor its inference Service: only the metrics-only one (annotation scraping finds Triton's port there)
    assert [d["metadata"]["name"] for d in by_kind(docs, "Service")] == ["rel-ocr-service", "rel-ocr-service-triton-metrics"]
    pod = named(docs, "Deployment", "rel-ocr-service")["spec"]["template"]["spec"]
    api, triton = pod["containers"]
    assert (api["name"], triton["name"]) == ("api", "triton")
    assert triton["image"].startswith("nvcr.io/nvidia/tritonserver:")
    # one in-memory emptyDir at /dev/shm in both containers, sized by triton.shmSize
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["shm"] == {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}
    for c in (api, triton):
        assert {"name": "shm", "mountPath": "/dev/shm"} in c["volumeMounts"], c["name"]
    # the models come from the service image through an init container, as for the Triton Deployment
    assert [c["name"] for c in pod["initContainers"]] == ["copy-models"]
    assert "--model-repository=/models" in triton["args"] and "ppocrv6_small_det" in _triton_models(docs, "rel-ocr-service")
    # port names are unique in the pod; the sidecar's probes use its own
    names = [p["name"] for c in pod["containers"] for p in c["ports"]]
    assert len(names) == len(set(names)) and "triton-http" in names and "triton-metrics" in names
    # bound to loopback, it is probed from inside (tests/e2e/test_triton_lockdown.py runs the probes)
    assert "/v2/health/ready" in triton["readinessProbe"]["exec"]["command"][2]
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # both run as the pod's user (the service's regions are mode 0600)
    assert "runAsUser" not in api["securityContext"] and "runAsUser" not in triton["securityContext"]
    # the service calls the sidecar on loopback through shared memory; every key is a setting
    cfg = by_kind(docs, "ConfigMap")[0]["data"]
    assert cfg["OCR_TRITON_URL"] == "127.0.0.1:8000" and cfg["OCR_TRITON_SHM"] == "true"
    assert (cfg["OCR_TRITON_SHM_REGIONS"], cfg["OCR_TRITON_SHM_REGION_MIB"]) == ("8", "0")
    settings = Settings(**{k.removeprefix("OCR_").lower(): v for k, v in cfg.items() if k != "OCR_API_TOKENS_FILE"},
                        api_tokens="x" * 16)
    assert settings.triton_shm and settings.triton_shm_regions == 8
    # Triton outlives the API's drain: both get SIGTERM at once, Triton's preStop waits for the drain
    sleep = int(triton["lifecycle"]["preStop"]["exec"]["command"][1])
    assert sleep >= float(cfg["OCR_SHUTDOWN_DELAY_S"]) + float(cfg["OCR_SHUTDOWN_GRACE_S"])
    assert sleep < pod["terminationGracePeriodSeconds"]
    embedded = by_kind(render(VALUE_SETS["everything-on"]), "ConfigMap")[0]["data"]
    assert "OCR_TRITON_SHM" not in embedded and embedded["OCR_TRITON_URL"] == "rel-ocr-service-triton-headless:8000"


def test_colocated_triton_on_gpu_nodes_metrics_and_network_policy():
    docs = render(VALUE_SETS["triton-colocated-gpu"])
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == ["rel-ocr-service"]
    assert [h["metadata"]["name"] for h in by_kind(docs, "HorizontalPodAutoscaler")] == ["rel-ocr-service"]
    assert [p["metadata"]["name"] for p in by_kind(docs, "PodDisruptionBudget")] == ["rel-ocr-service"]
    dep = named(docs, "Deployment", "rel-ocr-service")
    pod = dep["spec"]["template"]["spec"]
    triton = pod["containers"][1]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    # the pod goes where Triton may run: its node selector, tolerations and runtime class
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu" and pod["runtimeClassName"] == "nvidia"
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in pod["volumes"]
    cfg = by_kind(docs, "ConfigMap")[0]["data"]
    assert (cfg["OCR_TRITON_SHM_REGIONS"], cfg["OCR_TRITON_SHM_REGION_MIB"]) == ("16", "12")
    # Triton's metrics: a Service of their own names the job the alert rules select
    svc = named(docs, "Service", "rel-ocr-service-triton-metrics")
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["triton-metrics"]
    assert _selects({"matchLabels": svc["spec"]["selector"]}, dep["spec"]["template"]["metadata"]["labels"])
    sm = named(docs, "ServiceMonitor", "rel-ocr-service-triton-metrics")
    assert _selects(sm["spec"]["selector"], svc["metadata"]["labels"])
    assert not _selects(named(docs, "ServiceMonitor", "rel-ocr-service")["spec"]["selector"], svc["metadata"]["labels"])
    rules = json.dumps(by_kind(docs, "PrometheusRule")[0]["spec"])
    assert 'job=\\"rel-ocr-service-triton-metrics\\"' in rules and 'job=\\"rel-ocr-service-triton\\"' not in rules
    # NetworkPolicy: Prometheus reaches the sidecar's metrics port; nobody reaches its inference ports
    policies = by_kind(docs, "NetworkPolicy")
    assert [p["metadata"]["name"] for p in policies] == ["rel-ocr-service"]
    dest = {"labels": dep["spec"]["template"]["metadata"]["labels"],
            "ports": {p["name"]: p["containerPort"] for c in pod["containers"] for p in c["ports"]}}
    prometheus = {"labels": {"app.kubernetes.io/name": "prometheus"}, "ns": "monitoring",
                  "ns_labels": {"kubernetes.io/metadata.name": "monitoring"}}
    stranger = {"labels": {"app": "batch"}, "ns": "ocr", "ns_labels": {"kubernetes.io/metadata.name": "ocr"}}
    assert allowed(policies, dest, prometheus, 8002) and allowed(policies, dest, prometheus, 8080)
    for port in (8000, 8001, 8002):
        assert not allowed(policies, dest, stranger, port), port
    assert allowed(policies, dest, stranger, 8080)  # no allow-list in these values: the API is open


@pytest.mark.parametrize("args,message", [
    (["--set", "triton.colocated.enabled=true"], "triton.colocated.enabled needs backend: triton"),
    (["--set", "backend=triton,triton.colocated.enabled=true,triton.autoscaling.enabled=true"], "scale the API pods"),
    (["--set", "backend=triton,triton.colocated.enabled=true,triton.shmSize=32Mi"], "8 x 8 MiB = 64 MiB"),
    (["--set", "backend=triton,triton.colocated.enabled=true,config.detLimitSideLen=2000,triton.shmSize=200Mi"], "8 x 28 MiB"),
    (["--set", "backend=triton,triton.colocated.enabled=true,triton.colocated.shmRegions=0"], "schema"),
    (["--set", "backend=triton,triton.colocated.enabled=true,triton.shmSize=lots"], "schema"),
])
def test_colocated_refuses_values_that_cannot_go_with_it(args, message):
    assert message in render_fails(args)


def test_the_chart_sizes_regions_as_the_service_does():
    from preprocess_service.backends.triton_shm import MIB, auto_region_bytes

    for side in (640, 960, 1280, 2000):
        need = 8 * auto_region_bytes(side) // MIB
        err = render_fails(["--set", f"backend=triton,triton.colocated.enabled=true,config.detLimitSideLen={side},"
                            f"triton.shmSize={need - 1}Mi"])
        assert f"= {need} MiB" in err, (side, err)
        render(["--set", f"backend=triton,triton.colocated.enabled=true,config.detLimitSideLen={side},triton.shmSize={need}Mi"])


# --- tokens ---------------------------------------------------------------------------------------------

def test_tokens_secret_is_mounted_and_never_rendered_with_existing_secret():
    given = "given-token-0123456789abcdef"
    docs = render(["--set", f"auth.tokens[0]={given}"])
    secret = by_kind(docs, "Secret")[0]
    assert base64.b64decode(secret["data"]["tokens"]).decode() == given
    assert given not in json.dumps([d for d in docs if d["kind"] != "Secret"])  # only in the Secret
    docs = render(["--set", f"auth.existingSecret=my-tokens,auth.tokens[0]={given}"])
    assert not by_kind(docs, "Secret")
    assert given not in json.dumps(docs)
    api = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    assert {"name": "tokens", "secret": {"secretName": "my-tokens", "items": [{"key": "tokens", "path": "tokens"}],
                                         "defaultMode": 0o440}} in api["volumes"]
    assert by_kind(docs, "ConfigMap")[0]["data"]["OCR_API_TOKENS_FILE"] == "/var/run/secrets/ocr/tokens"


def test_generated_token_differs_per_render_and_is_long():
    t1 = base64.b64decode(by_kind(render([]), "Secret")[0]["data"]["tokens"]).decode()
    t2 = base64.b64decode(by_kind(render([]), "Secret")[0]["data"]["tokens"]).decode()
    assert len(t1) >= 40 and t1 != t2


# --- network policies -----------------------------------------------------------------------------------

def _selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # the chart uses matchLabels only
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_allows(peer: dict, src: dict) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer and not _selects(peer["namespaceSelector"], src["ns_labels"]):
        return False
    if "podSelector" in peer:
        same_ns_only = "namespaceSelector" not in peer
        if (same_ns_only and src["ns"] != "ocr") or not _selects(peer["podSelector"], src["labels"]):
            return False
    return True


def allowed(policies: list[dict], dest: dict, src: dict, port: int) -> bool:
    """Whether the NetworkPolicies (in namespace ocr) let pod `src` open `port` on pod `dest`:
    dest = {labels, ports: {name: number}}, src = {labels, ns, ns_labels}. Policies are or-ed; a pod
    no policy selects is open."""
    mine = [p["spec"] for p in policies if _selects(p["spec"]["podSelector"], dest["labels"])]
    if not mine:
        return True
    for spec in mine:
        assert spec["policyTypes"] == ["Ingress"]
        for rule in spec.get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") in (port, *[n for n, v in dest["ports"].items() if v == port]) for p in ports):
                continue
            if "from" not in rule or any(_peer_allows(peer, src) for peer in rule["from"]):
                return True
    return False


def _pods(docs):
    out = {}
    for d in by_kind(docs, "Deployment"):
        spec, labels = d["spec"]["template"]["spec"], d["spec"]["template"]["metadata"]["labels"]
        out[d["metadata"]["name"]] = {"labels": labels, "ports": {p["name"]: p["containerPort"] for p in spec["containers"][0]["ports"]}}
    for d in by_kind(docs, "Pod"):
        out[d["metadata"]["name"]] = {"labels": d["metadata"]["labels"], "ports": {}}
    return out


def test_network_policy_selects_the_right_pods():
    docs = render(VALUE_SETS["everything-on"])
    pods = _pods(docs)
    api_labels, triton_labels = pods["rel-ocr-service"]["labels"], pods["rel-ocr-service-triton"]["labels"]
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs, "NetworkPolicy")}
    tp = policies["rel-ocr-service-triton"]
    assert _selects(tp["podSelector"], triton_labels) and not _selects(tp["podSelector"], api_labels)
    inference, metrics = tp["ingress"]
    assert _selects(inference["from"][0]["podSelector"], api_labels)
    assert not _selects(inference["from"][0]["podSelector"], triton_labels)
    assert {p["port"] for p in inference["ports"]} == {8000}  # gRPC is off unless triton.grpc.enabled
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert {p["port"] for p in metrics["ports"]} == {8002}
    assert _selects(policies["rel-ocr-service"]["podSelector"], api_labels)


@pytest.mark.parametrize("name", ["everything-on", "network-allow-list", "gpu-cluster"])
def test_network_policies_let_the_right_peers_in(name):
    """With or without an allow-list: the metrics namespace scrapes the API's port and Triton's
    metrics port (not Triton's inference ports); `helm test`'s pod reaches the API; only the API pods
    reach Triton's inference ports; an allow-listed client reaches the API, an unlisted one only when
    there is no allow-list."""
    docs = render(VALUE_SETS[name])
    policies, pods = by_kind(docs, "NetworkPolicy"), _pods(docs)
    api, triton, test_pod = pods["rel-ocr-service"], pods["rel-ocr-service-triton"], pods["rel-ocr-service-test-ocr"]
    prometheus = {"labels": {"app.kubernetes.io/name": "prometheus"}, "ns": "monitoring",
                  "ns_labels": {"kubernetes.io/metadata.name": "monitoring"}}
    web = {"labels": {"app": "shop"}, "ns": "web", "ns_labels": {"kubernetes.io/metadata.name": "web", "team": "web"}}
    stranger = {"labels": {"app": "batch"}, "ns": "ocr", "ns_labels": {"kubernetes.io/metadata.name": "ocr"}}
    in_ocr = {"ns": "ocr", "ns_labels": {"kubernetes.io/metadata.name": "ocr"}}
    api_port, metrics_port = api["ports"]["http"], triton["ports"]["metrics"]
    assert allowed(policies, api, prometheus, api_port)  # the API's /metrics is on its port
    assert allowed(policies, triton, prometheus, metrics_port)
    assert not allowed(policies, triton, prometheus, triton["ports"]["http"])
    assert allowed(policies, api, {"labels": test_pod["labels"], **in_ocr}, api_port)
    assert allowed(policies, api, web, api_port)
    assert allowed(policies, triton, {"labels": api["labels"], **in_ocr}, triton["ports"]["http"])
    if "grpc" in triton["ports"]:  # only where the value set turns gRPC on
        assert allowed(policies, triton, {"labels": api["labels"], **in_ocr}, triton["ports"]["grpc"])
    assert not allowed(policies, triton, {"labels": test_pod["labels"], **in_ocr}, triton["ports"]["http"])
    assert not allowed(policies, triton, stranger, triton["ports"]["http"])
    assert allowed(policies, api, stranger, api_port) == (name != "network-allow-list")
    assert not allowed(policies, api, web, 9999)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_pod_runs_with_the_runtime_default_seccomp_profile(name):
    """docs/security.md: every pod of every value set runs under the RuntimeDefault seccomp profile."""
    for doc in render(VALUE_SETS[name]):
        spec = _pod_spec(doc)
        if spec is not None:
            profile = (spec.get("securityContext") or {}).get("seccompProfile", {}).get("type")
            assert profile == "RuntimeDefault", (name, doc["kind"], doc["metadata"]["name"], profile)


def _pod_spec(doc: dict) -> dict | None:
    if doc.get("kind") == "Pod":
        return doc["spec"]
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    return None


def test_the_network_policy_check_catches_a_closed_metrics_port():
    docs = render(VALUE_SETS["network-allow-list"])
    policies, pods = by_kind(docs, "NetworkPolicy"), _pods(docs)
    api_policy = [p for p in policies if p["metadata"]["name"] == "rel-ocr-service"][0]
    api_policy["spec"]["ingress"] = api_policy["spec"]["ingress"][:1]  # the allow-list rule alone (the old chart)
    prometheus = {"labels": {}, "ns": "monitoring", "ns_labels": {"kubernetes.io/metadata.name": "monitoring"}}
    assert not allowed(policies, pods["rel-ocr-service"], prometheus, 8080)


# --- monitoring: alert rules, dashboard, service monitors ----------------------------------------------------

RULES_FILE = CHART / "files" / "alert-rules.yml"


def _alerts(spec: dict) -> list[dict]:
    return [r for g in spec["groups"] for r in g["rules"] if "alert" in r]


def test_rendered_alert_rules_pass_promtool(tmp_path):
    rule = by_kind(render(ALL_ON), "PrometheusRule")[0]
    f = tmp_path / "rules.yml"
    f.write_text(yaml.safe_dump(rule["spec"]))
    r = subprocess.run([promtool(), "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0 and "15 rules found" in r.stdout, r.stdout + r.stderr
    # `helm install ocr-service -n ocr` gets the file as it is
    same = by_kind(render(ALL_ON, release="ocr-service", namespace="ocr"), "PrometheusRule")[0]
    assert same["spec"] == yaml.safe_load(RULES_FILE.read_text())
    embedded = by_kind(render(["--set", "metrics.prometheusRule.enabled=true"]), "PrometheusRule")[0]
    assert [g["name"] for g in embedded["spec"]["groups"]] == ["ocr-service"]  # no Triton, no Triton alerts


def test_every_rule_selects_the_file_scope():
    """Every ocr_*, up and nv_* selector of the rule file names namespace="ocr" and its job: what the
    chart substitutes, so nothing is left unscoped."""
    for group in yaml.safe_load(RULES_FILE.read_text())["groups"]:
        for rule in group["rules"]:
            sel = selectors(rule["expr"])
            assert sel, rule
            for name, matchers in sel:
                assert matchers is not None, (rule.get("alert") or rule.get("record"), name)
                assert matchers.get("namespace") == ("=", "ocr"), (rule, name)
                assert matchers.get("job") in {("=", "ocr-service"), ("=", "ocr-service-triton")}, (rule, name)
                assert (matchers["job"][1] == "ocr-service-triton") == (group["name"] == "triton"), (rule, name)


def test_the_prometheus_rule_is_scoped_to_the_release(tmp_path):
    docs = render([*ALL_ON, "--set", "monitoring.runbookBaseUrl=https://runbooks.example.com/ocr/"],
                  release="shop", namespace="prod")
    spec = by_kind(docs, "PrometheusRule")[0]["spec"]
    text = json.dumps(spec)
    assert 'namespace=\\"ocr\\"' not in text and 'job=\\"ocr-service' not in text
    jobs = {"ocr-service": "shop-ocr-service", "ocr-service-triton": "shop-ocr-service-triton"}
    for group in spec["groups"]:
        for rule in group["rules"]:
            for name, matchers in selectors(rule["expr"]):
                assert matchers["namespace"] == ("=", "prod"), (rule, name)
                assert matchers["job"][1] in jobs.values(), (rule, name)
                if name.startswith("nv_"):
                    assert matchers["job"] == ("=", "shop-ocr-service-triton")
                if name.startswith("ocr"):
                    assert matchers["job"] == ("=", "shop-ocr-service")
    # an independent substitution of the file gives the same rules
    expected = RULES_FILE.read_text()
    for old, new in [('job="ocr-service-triton"', 'job="shop-ocr-service-triton"'), ('job="ocr-service"', 'job="shop-ocr-service"'),
                     ('namespace="ocr"', 'namespace="prod"'),
                     ("https://github.com/example/ocr-service/blob/main/docs/operations.md#", "https://runbooks.example.com/ocr#")]:
        expected = expected.replace(old, new)
    assert spec == yaml.safe_load(expected)
    f = tmp_path / "rules.yml"
    f.write_text(yaml.safe_dump(spec))
    r = subprocess.run([promtool(), "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs_set = render([*ALL_ON, "--set", "monitoring.apiJob=kubernetes-pods,monitoring.tritonJob=triton-pods"])
    text = json.dumps(by_kind(jobs_set, "PrometheusRule")[0]["spec"])
    assert 'job=\\"kubernetes-pods\\"' in text and 'job=\\"triton-pods\\"' in text and "rel-ocr-service" not in text


@pytest.mark.parametrize("colocated", [False, True])
def test_alerts_find_their_series_under_annotation_scraping(tmp_path, colocated):
    """Issue: with annotation scraping (the default: no ServiceMonitor) the alerts selected jobs that
    only a ServiceMonitor creates, so none could fire. Now they select Prometheus' conventional
    annotation jobs narrowed by the component's own labels: promtool fires TritonTargetDown for a
    Triton target and not for an API pod of the same job, OCRTargetDown the other way round, and
    the absent() alerts only when the release's targets are gone."""
    layout = ["--set", "triton.colocated.enabled=true"] if colocated else []
    docs = render(["--set", "backend=triton,metrics.prometheusRule.enabled=true", *layout])
    spec = by_kind(docs, "PrometheusRule")[0]["spec"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(spec))
    triton_job = "kubernetes-service-endpoints" if colocated else "kubernetes-pods"
    labels = 'namespace="ocr", instance="{i}", pod="{p}", app_kubernetes_io_instance="{r}", app_kubernetes_io_component="{c}"'
    series = [("kubernetes-pods", "10.0.0.1:8080", "rel-ocr-service-a", "rel", "api", "0x10"),
              (triton_job, "10.0.0.2:8002", "rel-ocr-service-triton-a", "rel", "triton", "0x10"),
              ("kubernetes-pods", "10.0.0.3:8080", "other-ocr-service-a", "other", "api", "1x10")]
    input_series = [{"series": f'up{{job="{j}", ' + labels.format(i=i, p=p, r=r, c=c) + "}", "values": v}
                     for j, i, p, r, c, v in series]

    def fired(alert: str, job: str, instance: str, pod: str, component: str) -> dict:
        return {"eval_time": "6m", "alertname": alert, "exp_alerts": [{"exp_labels": {
            "severity": "warning", "job": job, "namespace": "ocr", "instance": instance, "pod": pod,
            "app_kubernetes_io_instance": "rel", "app_kubernetes_io_component": component}, "exp_annotations": {
            **next(a for a in _alerts(spec) if a["alert"] == alert)["annotations"]}}]}

    def rendered(alert: str, job: str, instance: str, pod: str, component: str) -> dict:
        want = fired(alert, job, instance, pod, component)
        ann = want["exp_alerts"][0]["exp_annotations"]
        ann["summary"] = ann["summary"].replace("{{ $labels.instance }}", instance)
        ann["description"] = ann["description"].replace("{{ $labels.pod }}", pod).replace(
            "{{ $labels.instance }}", instance).replace("{{ $labels.job }}", job)
        return want

    tests = [{"interval": "1m", "input_series": input_series, "alert_rule_test": [
        rendered("TritonTargetDown", triton_job, "10.0.0.2:8002", "rel-ocr-service-triton-a", "triton"),
        rendered("OCRTargetDown", "kubernetes-pods", "10.0.0.1:8080", "rel-ocr-service-a", "api"),
        {"eval_time": "15m", "alertname": "TritonTargetsMissing", "exp_alerts": []},
        {"eval_time": "15m", "alertname": "OCRTargetsMissing", "exp_alerts": []}]}]
    (tmp_path / "test.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                      "tests": tests}))
    r = subprocess.run([promtool(), "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    with_monitor = by_kind(render(["--set", "backend=triton,metrics.prometheusRule.enabled=true,"
                                   "metrics.serviceMonitor.enabled=true", *layout]), "PrometheusRule")[0]["spec"]
    text = json.dumps(with_monitor)
    assert "kubernetes-pods" not in text and "app_kubernetes_io_component" not in text


def test_every_alert_has_a_runbook_severity_and_the_required_alerts_exist():
    spec = by_kind(render([*ALL_ON, "--set", "monitoring.runbookBaseUrl=https://wiki.example.com/ocr"]), "PrometheusRule")[0]["spec"]
    alerts = _alerts(spec)
    for a in alerts:
        assert a["annotations"]["runbook_url"] == f"https://wiki.example.com/ocr#{a['alert'].lower()}", a["alert"]
        assert a["labels"]["severity"] in {"critical", "warning", "info"} and a["annotations"]["summary"]
    by_name = {a["alert"]: a for a in alerts}
    assert {"OCRHighErrorRatio", "OCRHighLatency", "OCRBackendErrors", "OCRBackendDown", "OCRTargetDown", "OCRTargetsMissing",
            "OCRQueueBacklog", "OCRRequestsRejected", "OCRClientRequestsRejected", "TritonQueueTimeHigh",
            "TritonInferenceFailures", "TritonTargetDown"} <= set(by_name)
    assert "ocr_backend_up" in by_name["OCRBackendDown"]["expr"] and by_name["OCRBackendDown"]["for"] == "2m"
    assert by_name["OCRTargetsMissing"]["expr"].strip().startswith("absent(up{")
    assert "ocr_jobs_waiting" in by_name["OCRQueueBacklog"]["expr"] and by_name["OCRQueueBacklog"]["for"] == "5m"
    assert "ocr_rejected_total" in by_name["OCRRequestsRejected"]["expr"] and "by (namespace, job, reason)" in \
        by_name["OCRRequestsRejected"]["expr"]
    for name in ("OCRTargetDown", "TritonTargetDown"):
        assert re.fullmatch(r'up\{[^}]*\} == 0', by_name[name]["expr"].strip())
    # every client route, not only /v1/ocr: no rule pins route to one value
    for group in spec["groups"]:
        for rule in group["rules"]:
            for name, matchers in selectors(rule["expr"]):
                if name.startswith("ocr_http_"):
                    assert matchers.get("route", ("!~", ""))[0] == "!~", (rule, matchers)
    # the runbook page's anchors default to docs/operations.md of the repository
    default = by_kind(render(ALL_ON), "PrometheusRule")[0]["spec"]
    assert all("/docs/operations.md#" in a["annotations"]["runbook_url"] for a in _alerts(default))


DASHBOARD_FILE = CHART / "files" / "grafana-dashboard.json"
API_SCOPE = {"namespace": ("=~", "$namespace"), "job": ("=~", "$job"), "pod": ("=~", "$pod")}
TRITON_SCOPE = {"namespace": ("=~", "$namespace"), "job": ("=~", "$triton_job")}
# dcgm-exporter's series name the GPU's pod (its pod mapping), not a job of ours
DCGM_SCOPE = {"namespace": ("=~", "$namespace"), "pod": ("=~", "$triton_job-.*")}


def test_service_probes_annotations_and_dashboard():
    docs = render(VALUE_SETS["everything-on"])
    api = named(docs, "Deployment", "rel-ocr-service")["spec"]["template"]
    c = api["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    dash = named(docs, "ConfigMap", "rel-ocr-service-dashboard")
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dash["data"]["ocr-service.json"]) == json.loads(DASHBOARD_FILE.read_text())
    test_pod = by_kind(docs, "Pod")[0]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "Authorization" in json.dumps(test_pod)


def _dashboard_targets():
    dash = json.loads(DASHBOARD_FILE.read_text())
    return dash, [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def test_the_dashboard_selects_one_release():
    dash, targets = _dashboard_targets()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert {"datasource", "namespace", "job", "pod", "triton_job"} <= set(variables)
    assert "namespace=~\"$namespace\"" in variables["job"]["definition"]
    assert "job=~\"$job\"" in variables["pod"]["definition"] and variables["pod"]["includeAll"]
    for title, expr in targets:
        sel = selectors(expr)
        assert sel, (title, expr)
        for name, matchers in sel:
            scope = TRITON_SCOPE if name.startswith("nv_") or (name == "up" and "triton_job" in str(matchers)) else API_SCOPE
            scope = DCGM_SCOPE if name.startswith("DCGM_") else scope
            assert matchers is not None and {k: matchers.get(k) for k in scope} == scope, (title, name, matchers)
        if "ocr_http_request" in expr:  # every client route, not only /v1/ocr
            assert 'route="/v1/ocr"' not in expr, title


def test_the_dashboard_has_the_operational_panels():
    _, targets = _dashboard_targets()
    metrics_of = {}
    for title, expr in targets:
        for name, _ in selectors(expr):
            metrics_of.setdefault(name, set()).add(title)
    for metric in ("ocr_jobs_waiting", "ocr_jobs_in_flight", "ocr_rejected_total", "ocr_memory_budget_bytes", "ocr_backend_up",
                   "nv_gpu_utilization", "nv_gpu_memory_used_bytes", "nv_gpu_power_usage", "nv_inference_queue_duration_us", "up",
                   "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"):
        assert metric in metrics_of, metric
    rejected = [e for _, e in targets if "ocr_rejected_total" in e]
    assert any("by (reason)" in e for e in rejected)
    memory = [e for _, e in targets if "ocr_memory_budget_bytes" in e][0]
    assert 'kind="reserved"' in memory and 'kind="capacity"' in memory


def test_every_dashboard_query_parses_with_promtool(tmp_path):
    _, targets = _dashboard_targets()
    rules = [{"record": f"dashboard:q{i}", "expr": expr.replace("$__rate_interval", "1m").replace("$namespace", "ocr")
              .replace("$triton_job", "rel-ocr-service-triton").replace("$job", "rel-ocr-service").replace("$pod", ".*")}
             for i, (_, expr) in enumerate(targets)]
    f = tmp_path / "dashboard-queries.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = subprocess.run([promtool(), "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0 and f"{len(rules)} rules found" in r.stdout, r.stdout + r.stderr


def test_service_monitor_options():
    docs = render(VALUE_SETS["servicemonitor-options"])
    sms = {s["metadata"]["name"]: s for s in by_kind(docs, "ServiceMonitor")}
    assert set(sms) == {"rel-ocr-service", "rel-ocr-service-triton"}
    for name, sm in sms.items():
        assert sm["metadata"]["namespace"] == "monitoring"
        spec = sm["spec"]
        assert spec["namespaceSelector"] == {"matchNames": ["ocr"]}  # the Services stay in the release's namespace
        assert spec["targetLabels"] == ["app.kubernetes.io/version"]
        [ep] = spec["endpoints"]
        assert ep["port"] == ("metrics" if name.endswith("-triton") else "http")
        assert (ep["interval"], ep["scrapeTimeout"], ep["honorLabels"]) == ("15s", "10s", True)
        assert ep["relabelings"][0]["targetLabel"] == "node" and ep["metricRelabelings"][0]["action"] == "drop"
    assert by_kind(docs, "PrometheusRule")[0]["metadata"]["namespace"] == "monitoring"
    dash = named(docs, "ConfigMap", "rel-ocr-service-dashboard")
    assert dash["metadata"]["namespace"] == "grafana" and dash["metadata"]["annotations"] == {"grafana_folder": "OCR"}
    plain = by_kind(render(ALL_ON), "ServiceMonitor")[0]
    assert "namespace" not in plain["metadata"] and "namespaceSelector" not in plain["spec"]
    assert "scrapeTimeout" not in plain["spec"]["endpoints"][0]


# --- misc ------------------------------------------------------------------------------------------------

def test_dockerfile_is_hadolint_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    r = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=" in text and "USER 10001" in text and "HEALTHCHECK" in text and "EXPOSE 8080" in text
    ignore = (ROOT / ".dockerignore").read_text()
    assert "!.secrets" not in ignore and ignore.splitlines()[1] == "*"  # secrets and venvs never enter the image


def test_shutdown_grace_covers_the_request_deadline_and_the_drain():
    for args, grace in [([], 75), (["--set", "terminationGracePeriodSeconds=90,config.shutdownDelaySeconds=5"], 90),
                        (["--set", "config.requestTimeoutSeconds=20,config.shutdownDelaySeconds=2"], 32)]:
        docs = render(args)
        cfg = by_kind(docs, "ConfigMap")[0]["data"]
        pod = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] == grace
        delay, drain = float(cfg["OCR_SHUTDOWN_DELAY_S"]), float(cfg["OCR_SHUTDOWN_GRACE_S"])
        assert delay + drain < grace  # the service is done before the kubelet's SIGKILL
        assert drain >= float(cfg["OCR_REQUEST_TIMEOUT_S"]) + 1  # a request admitted at SIGTERM can finish
    assert "must cover config.requestTimeoutSeconds" in render_fails(["--set", "terminationGracePeriodSeconds=40"])


@pytest.mark.parametrize("quantity,mib", [("2Gi", "2048"), ("1536Mi", "1536"), ("1.5Gi", "1536"), ("3G", "2861")])
def test_the_memory_budget_comes_from_the_container_limit(quantity, mib):
    docs = render(["--set", f"resources.limits.memory={quantity}"])
    cfg = by_kind(docs, "ConfigMap")[0]["data"]
    container = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert str(container["resources"]["limits"]["memory"]) == quantity
    assert cfg["OCR_MEMORY_LIMIT_MIB"] == mib and cfg["OCR_MEMORY_BUDGET_FRACTION"] == "0.75"


def test_a_pod_without_a_memory_limit_does_not_render():
    assert "memory" in render_fails(["--set", "resources.limits.memory=null"])


# --- the embedded backend on GPU nodes (gpu.enabled: the image's GPU variant) ----------------------------

def _api_pod(docs: list[dict]) -> dict:
    return named(docs, "Deployment", "rel-ocr-service")["spec"]["template"]["spec"]


def test_embedded_gpu_values_run_the_gpu_image_with_a_gpu_per_pod_on_gpu_nodes():
    from preprocess_service.settings import Settings

    docs = render(VALUE_SETS["gpu-embedded"])
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == ["rel-ocr-service"]  # no Triton
    pod = _api_pod(docs)
    [api] = pod["containers"]
    # the GPU variant of the image: `make image-gpu` tags <tag>-gpu; the helm test pod runs the same image
    assert api["image"] == "registry.example.com/ocr/ocr-service:0.1.0-gpu"
    assert by_kind(docs, "Pod")[0]["spec"]["containers"][0]["image"] == api["image"]
    # one GPU per API pod, beside the container's own CPU and memory
    assert api["resources"]["limits"] == {"cpu": "4", "memory": "4Gi", "nvidia.com/gpu": 1}
    assert api["resources"]["requests"] == {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": 1}
    # on GPU nodes: their label, the NVIDIA RuntimeClass, the GPU taint tolerated
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    # CUDA first, no silent CPU fallback: the settings the service reads from the ConfigMap
    cfg = by_kind(docs, "ConfigMap")[0]["data"]
    assert cfg["OCR_BACKEND"] == "onnxruntime"
    assert cfg["OCR_ORT_PROVIDERS"] == "CUDAExecutionProvider,CPUExecutionProvider"
    assert cfg["OCR_ORT_ALLOW_CPU_FALLBACK"] == "false"
    settings = Settings(**{k.removeprefix("OCR_").lower(): v for k, v in cfg.items() if k != "OCR_API_TOKENS_FILE"},
                        api_tokens="x" * 16)
    assert settings.ort_providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert settings.ort_allow_cpu_fallback is False and settings.backend == "onnxruntime"
    assert cfg["OCR_MEMORY_LIMIT_MIB"] == "4096"


def test_the_gpu_switch_alone_and_how_it_combines_with_the_api_pods_placement():
    pod = _api_pod(render(VALUE_SETS["gpu-embedded-switch"]))
    assert pod["containers"][0]["image"] == "ghcr.io/example/ocr-service:0.1.0-gpu"  # appVersion + gpu.tagSuffix
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "nodeSelector" not in pod and "runtimeClassName" not in pod
    # the API pods' own placement stays; the GPU's adds to it, and gpu.runtimeClassName wins when set
    both = _api_pod(render(["--set", "gpu.enabled=true,runtimeClassName=gvisor,gpu.runtimeClassName=nvidia",
                            "--set-string", "nodeSelector.zone=a,gpu.nodeSelector.gpu-type=l4",
                            "--set-json", 'tolerations=[{"key":"dedicated","operator":"Equal","value":"ocr","effect":"NoSchedule"}]']))
    assert both["runtimeClassName"] == "nvidia"
    assert both["nodeSelector"] == {"zone": "a", "gpu-type": "l4"}
    assert [t["key"] for t in both["tolerations"]] == ["dedicated", "nvidia.com/gpu"]
    assert _api_pod(render(["--set", "gpu.enabled=true,runtimeClassName=nvidia-cdi"]))["runtimeClassName"] == "nvidia-cdi"
    # a MIG slice instead of a whole GPU; a digest is the GPU image's own; the fallback can be allowed
    mig = _api_pod(render(["--set", "gpu.enabled=true,gpu.resourceName=nvidia.com/mig-1g.10gb"]))
    assert mig["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "2Gi", "nvidia.com/mig-1g.10gb": 1}
    assert _api_pod(render(["--set", f"gpu.enabled=true,image.digest={DIGEST}"]))["containers"][0]["image"] == \
        f"ghcr.io/example/ocr-service@{DIGEST}"
    assert _api_pod(render(["--set", "gpu.enabled=true,image.tag=2.0.0,gpu.tagSuffix=-cuda13"]))["containers"][0]["image"] == \
        "ghcr.io/example/ocr-service:2.0.0-cuda13"
    cfg = by_kind(render(["--set", "gpu.enabled=true,gpu.allowCpuFallback=true"]), "ConfigMap")[0]["data"]
    assert cfg["OCR_ORT_ALLOW_CPU_FALLBACK"] == "true"


def test_without_the_gpu_switch_nothing_changes():
    docs = render([])
    pod = _api_pod(docs)
    assert pod["containers"][0]["image"] == "ghcr.io/example/ocr-service:0.1.0"
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    assert "tolerations" not in pod
    cfg = by_kind(docs, "ConfigMap")[0]["data"]
    assert "OCR_ORT_PROVIDERS" not in cfg and "OCR_ORT_ALLOW_CPU_FALLBACK" not in cfg  # the CPU image's defaults
    assert not any("nvidia" in json.dumps(d) for d in docs)


@pytest.mark.parametrize("args,message", [
    (["--set", "backend=triton,gpu.enabled=true"], "with backend triton the GPUs are Triton's"),
    (["--set", "gpu.enabled=true,gpu.count=0"], "schema"),
    (["--set", "gpu.enabled=true,gpu.count=2"], "schema"),  # the embedded backend uses one GPU: more would idle
    (["--set", "gpu.enabled=true,gpu.providers=CUDA"], "schema"),
    (["--set", "gpu.enabled=true,gpu.resourceName=gpu"], "schema"),
    (["--set", "gpu.enabled=true,gpu.tagSuffix=-gpu:latest"], "schema"),
    (["--set", "gpu.enabled=yes"], "schema"),
    (["--set", "gpu.surprise=1"], "schema"),
])
def test_the_gpu_values_refuse_what_cannot_work(args, message):
    assert message in render_fails(args)


@pytest.mark.parametrize("args, model_set, triton_models", [
    ([], "ppocrv6_small_int8", None),  # the embedded default on CPUs: the INT8 set
    (["--set", "gpu.enabled=true"], "ppocrv6_small", None),  # embedded on GPUs: the float set
    (["--set", "backend=triton"], "ppocrv6_small", "ppocrv6_small_rec"),  # Triton with GPUs (triton.gpus 1)
    (["--set", "backend=triton", "--set", "triton.gpus=0"], "ppocrv6_small_int8", "ppocrv6_small_det_int8"),
    (["--set", "gpu.enabled=true", "--set", "config.modelSet=ppocrv6_small_int8rec"], "ppocrv6_small", None),
    (["--set", "backend=triton", "--set", "triton.gpus=0", "--set", "config.modelSet=ppocrv6_small_int8rec"],
     "ppocrv6_small_int8rec", "ppocrv6_small_det"),
    (["--set", "gpu.enabled=true", "--set", "config.modelSet=ppocrv6_tiny"], "ppocrv6_tiny", None),  # as asked
])
def test_the_int8_default_is_for_cpus(args, model_set, triton_models):
    """config.modelSet's INT8 default becomes the float set where the models run on GPUs, for the
    API's OCR_MODEL_SET and for the models Triton loads alike; any other set is kept as asked."""
    docs = render(args)
    assert by_kind(docs, "ConfigMap")[0]["data"]["OCR_MODEL_SET"] == model_set
    if triton_models:
        loaded = _triton_models(docs)
        assert triton_models in loaded and ("ppocrv6_small_rec_int8" in loaded) == ("_int8" in model_set)


@pytest.mark.parametrize("args, config_name, models", [
    (["--set", "backend=triton"], True, ["ppocrv6_small_det", "ppocrv6_small_rec", "ppocr_textline_cls"]),
    (["--set", "backend=triton", "--set", "config.modelSet=ppocrv6_small_fp16"], True,
     ["ppocrv6_small_det_fp16", "ppocrv6_small_rec_fp16", "ppocr_textline_cls"]),
    (["--set", "backend=triton", "--set", "triton.gpus=0"], False,
     ["ppocrv6_small_det_int8", "ppocrv6_small_rec_int8", "ppocr_textline_cls"]),
])
def test_triton_with_gpus_loads_the_gpu_configs(args, config_name, models, repository):
    """A Triton with GPUs starts with --model-config-name=gpu (configs/gpu.pbtxt: KIND_GPU, the
    service's batch sizes), and every model it loads has that config; without GPUs the default one."""
    docs = render(args)
    a = named(docs, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert ("--model-config-name=gpu" in a) == config_name
    loaded = _triton_models(docs)
    assert loaded == models
    if config_name:
        assert all((repository / m / "configs" / "gpu.pbtxt").exists() for m in loaded)
        assert not any(m.endswith("_int8") for m in loaded)


def test_the_embedded_gpu_mode_batches_across_requests():
    data = by_kind(render(["--set", "gpu.enabled=true", "--set", "gpu.batchDelayUs=1500"]), "ConfigMap")[0]["data"]
    assert data["OCR_BATCH_DELAY_US"] == "1500" and data["OCR_ORT_PROVIDERS"].startswith("CUDAExecutionProvider")
    assert "OCR_BATCH_DELAY_US" not in by_kind(render([]), "ConfigMap")[0]["data"]  # CPU: no batcher
    assert "schema" in render_fails(["--set", "gpu.batchDelayUs=-1"])


def test_the_charts_model_sets_are_the_services():
    """Every model set the service knows is offered by the chart (values.schema.json) and loads
    folders that exist in the model set registry on Triton."""
    from preprocess_service.model_sets import MODEL_SETS

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert sorted(schema["properties"]["config"]["properties"]["modelSet"]["enum"]) == sorted(MODEL_SETS)
    for name, ms in MODEL_SETS.items():
        docs = render(["--set", "backend=triton", "--set", "triton.gpus=0", "--set", f"config.modelSet={name}"])
        assert _triton_models(docs) == [ms.det, ms.rec, ms.cls], name


# --- a GPU pool: schedulable, drains that finish, rollouts without a spare GPU ------------------

def _triton_pod(docs) -> dict:
    return named(docs, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["spec"]


def test_triton_tolerates_the_gpu_taint_and_takes_any_gpu_resource():
    pod = _triton_pod(render(["--set", "backend=triton"]))
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    mig = _triton_pod(render(["--set", "backend=triton", "--set", "triton.gpuResourceName=nvidia.com/mig-1g.10gb"]))
    res = mig["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/mig-1g.10gb"] == 1 == res["requests"]["nvidia.com/mig-1g.10gb"]
    assert "nvidia.com/gpu" not in res["limits"] and "nvidia.com/gpu" not in res["requests"]
    assert "schema" in render_fails(["--set", "backend=triton", "--set", "triton.gpuResourceName=gpu"])


def test_disruption_budgets_let_a_drain_finish():
    args = ["--set", "backend=triton", "--set", "podDisruptionBudget.enabled=true",
            "--set", "triton.podDisruptionBudget.enabled=true"]
    pdbs = {p["metadata"]["name"]: p["spec"] for p in by_kind(render(args), "PodDisruptionBudget")}
    assert pdbs["rel-ocr-service"].get("maxUnavailable") == 1 and "minAvailable" not in pdbs["rel-ocr-service"]
    assert pdbs["rel-ocr-service-triton"].get("maxUnavailable") == 1  # one Triton replica: still drainable
    # a minAvailable at the replica count would block every drain: refused
    assert "no voluntary disruption" in render_fails(args + ["--set", "triton.podDisruptionBudget.minAvailable=1"])
    assert "no voluntary disruption" in render_fails(args + ["--set", "podDisruptionBudget.minAvailable=2"])
    ok = {p["metadata"]["name"]: p["spec"] for p in by_kind(render(args + ["--set", "podDisruptionBudget.minAvailable=1"]),
                                                           "PodDisruptionBudget")}
    assert ok["rel-ocr-service"]["minAvailable"] == 1 and "maxUnavailable" not in ok["rel-ocr-service"]
    percent = by_kind(render(args + ["--set-string", "podDisruptionBudget.minAvailable=50%"]), "PodDisruptionBudget")
    assert percent[0]["spec"]["minAvailable"] == "50%"


@pytest.mark.parametrize("args, api_surge, triton_surge", [
    (["--set", "backend=triton"], "25%", 0),  # Triton takes the GPUs: it rolls without a surge pod
    (["--set", "backend=triton", "--set", "triton.gpus=0"], "25%", "25%"),
    (["--set", "gpu.enabled=true"], 0, None),  # the embedded backend on GPUs
    (["--set", "backend=triton", "--set", "triton.colocated.enabled=true"], 0, None),  # the sidecar's GPUs
    ([], "25%", None),
])
def test_deployments_that_take_gpus_roll_without_a_spare_gpu(args, api_surge, triton_surge):
    docs = render(args)
    api = named(docs, "Deployment", "rel-ocr-service")["spec"]
    assert api["strategy"]["rollingUpdate"]["maxSurge"] == api_surge and api["progressDeadlineSeconds"] == 600
    if triton_surge is not None:
        tri = named(docs, "Deployment", "rel-ocr-service-triton")["spec"]
        assert tri["strategy"]["rollingUpdate"]["maxSurge"] == triton_surge
        assert tri["progressDeadlineSeconds"] == 1200
    custom = named(render(args + ["--set", "strategy.type=Recreate"]), "Deployment", "rel-ocr-service")["spec"]
    assert custom["strategy"] == {"type": "Recreate"}


def test_a_terminating_triton_drains_before_it_stops():
    pod = _triton_pod(render(["--set", "backend=triton"]))
    c = pod["containers"][0]
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "15"]
    assert "--exit-timeout-secs=30" in c["args"]
    assert pod["terminationGracePeriodSeconds"] > 15 + 30
    assert "must exceed" in render_fails(["--set", "backend=triton", "--set", "triton.terminationGracePeriodSeconds=45"])
    longer = _triton_pod(render(["--set", "backend=triton", "--set", "triton.exitTimeoutSeconds=60"]))
    assert "--exit-timeout-secs=60" in longer["containers"][0]["args"] and longer["terminationGracePeriodSeconds"] == 85


@pytest.mark.parametrize("colocated", [False, True])
def test_triton_grpc_is_off_unless_asked(colocated):
    base = ["--set", "backend=triton", "--set", f"triton.colocated.enabled={str(colocated).lower()}",
            "--set", "networkPolicy.enabled=true"]
    docs = render(base)
    name = "rel-ocr-service" if colocated else "rel-ocr-service-triton"
    [c] = [c for c in named(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"] if c["name"] == "triton"]
    assert "--allow-grpc=false" in c["args"] and not any(a.startswith("--grpc-port") for a in c["args"])
    assert not any("grpc" in p["name"] for p in c["ports"])
    services = by_kind(docs, "Service")
    assert not any(p["name"] == "grpc" for s in services for p in s["spec"]["ports"])
    assert "8001" not in json.dumps([p["spec"] for p in by_kind(docs, "NetworkPolicy")])
    on = render(base + ["--set", "triton.grpc.enabled=true"])
    [c] = [c for c in named(on, "Deployment", name)["spec"]["template"]["spec"]["containers"] if c["name"] == "triton"]
    assert "--grpc-port=8001" in c["args"] and "--allow-grpc=false" not in c["args"]


def test_long_release_names_keep_triton_and_the_api_apart():
    release = "r" * 53  # the longest release name Helm allows
    docs = render(["--set", "backend=triton"], release=release)
    deployments = [d["metadata"]["name"] for d in by_kind(docs, "Deployment")]
    services = [s["metadata"]["name"] for s in by_kind(docs, "Service")]
    assert len(set(deployments)) == len(deployments) == 2 and len(set(services)) == len(services)
    assert all(len(n) <= 63 for n in deployments + services)
    [triton] = [n for n in deployments if n.endswith("-triton")]
    url = by_kind(docs, "ConfigMap")[0]["data"]["OCR_TRITON_URL"]
    host = url.removesuffix(":8000")
    assert host.endswith("-triton-headless") and host in services and host != triton and triton in services


def test_the_api_balances_over_ready_triton_pods():
    """Issue: through the ClusterIP Service, kept-alive connections pin each API pod to the Triton
    pods that existed when they opened. By default the API resolves a headless Service (every ready
    Triton pod) and balances itself (measured: docs/artifacts/triton-balance.json)."""
    from preprocess_service.settings import Settings

    docs = render(["--set", "backend=triton", "--set", "triton.resolveSeconds=2"])
    cfg = by_kind(docs, "ConfigMap")[0]["data"]
    headless = named(docs, "Service", "rel-ocr-service-triton-headless")["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is False
    assert headless["selector"] == named(docs, "Service", "rel-ocr-service-triton")["spec"]["selector"]
    assert [p["port"] for p in headless["ports"]] == [8000]
    assert cfg["OCR_TRITON_URL"] == "rel-ocr-service-triton-headless:8000" and cfg["OCR_TRITON_BALANCE"] == "dns"
    settings = Settings(**{k.removeprefix("OCR_").lower(): v for k, v in cfg.items()
                           if k in ("OCR_BACKEND", "OCR_TRITON_URL", "OCR_TRITON_BALANCE", "OCR_TRITON_RESOLVE_S")},
                        api_tokens="x" * 16)
    assert settings.triton_balance == "dns" and settings.triton_resolve_s == 2
    off = render(["--set", "backend=triton", "--set", "triton.balance=off"])
    assert by_kind(off, "ConfigMap")[0]["data"]["OCR_TRITON_URL"] == "rel-ocr-service-triton:8000"
    assert "OCR_TRITON_BALANCE" not in by_kind(off, "ConfigMap")[0]["data"]
    assert not [s for s in by_kind(off, "Service") if s["metadata"]["name"].endswith("-headless")]
    for layout in (["--set", "triton.colocated.enabled=true"], ["--set", "triton.external.url=t.svc:8000"]):
        other = render(["--set", "backend=triton", *layout])
        assert "OCR_TRITON_BALANCE" not in by_kind(other, "ConfigMap")[0]["data"]
        assert not [s for s in by_kind(other, "Service") if s["metadata"]["name"].endswith("-headless")]
    assert "triton.balance" in render_fails(["--set", "backend=triton", "--set", "triton.balance=random"])


def test_a_url_model_repository_needs_its_url():
    message = render_fails(["--set", "backend=triton", "--set", "triton.modelRepository.source=url"])
    assert "triton.modelRepository.url is required" in message


def test_a_colocated_tritons_metrics_are_found_with_annotation_scraping():
    """The pod's prometheus.io annotations name the API's port; Triton's metrics port is announced
    by the metrics Service's own annotations (service-endpoints discovery)."""
    docs = render(["--set", "backend=triton", "--set", "triton.colocated.enabled=true"])
    [svc] = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "rel-ocr-service-triton-metrics"]
    ann = svc["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "8002"
    assert svc["spec"]["ports"][0]["targetPort"] == "triton-metrics"
    api = named(docs, "Deployment", "rel-ocr-service")["spec"]["template"]
    assert "triton-metrics" in [p["name"] for c in api["spec"]["containers"] for p in c.get("ports", [])]
    off = render(["--set", "backend=triton", "--set", "triton.colocated.enabled=true", "--set", "metrics.annotations=false"])
    assert "rel-ocr-service-triton-metrics" not in [s["metadata"]["name"] for s in by_kind(off, "Service")]


def test_escape_hatches_reach_both_pods():
    docs = render(ESCAPE_HATCHES)
    api = named(docs, "Deployment", "rel-ocr-service")["spec"]["template"]["spec"]
    tri = named(docs, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["spec"]
    a = api["containers"][0]
    assert {"name": "OCR_CLS_THRESH", "value": "0.8"} in a["env"] and {"secretRef": {"name": "more-settings"}} in a["envFrom"]
    assert a["envFrom"][0]["configMapRef"]["name"] == "rel-ocr-service"  # the chart's own settings stay first
    assert {"name": "fonts", "mountPath": "/fonts", "readOnly": True} in a["volumeMounts"]
    assert "fonts" in [v["name"] for v in api["volumes"]] and [c["name"] for c in api["containers"]] == ["api", "proxy"]
    assert [c["name"] for c in api["initContainers"]] == ["wait"]
    t = tri["containers"][0]
    assert {"name": "CUDA_MODULE_LOADING", "value": "LAZY"} in t["env"] and {"configMapRef": {"name": "triton-env"}} in t["envFrom"]
    assert {"name": "trt-cache", "mountPath": "/tmp/trt-cache"} in t["volumeMounts"]
    assert "trt-cache" in [v["name"] for v in tri["volumes"]]
    assert [c["name"] for c in tri["initContainers"]] == ["copy-models", "warm"]
    assert [c["name"] for c in tri["containers"]] == ["triton", "dcgm"]
    assert "schema" in render_fails(["--set-json", 'extraEnv=[{"value":"no name"}]'])


def test_the_token_secret_is_mounted_read_only_with_only_its_key():
    api = named(render([]), "Deployment", "rel-ocr-service")["spec"]["template"]["spec"]
    [tokens] = [v for v in api["volumes"] if v["name"] == "tokens"]
    assert tokens["secret"]["items"] == [{"key": "tokens", "path": "tokens"}]
    assert tokens["secret"]["defaultMode"] == 0o440
    assert api["securityContext"]["fsGroup"] == api["securityContext"]["runAsGroup"]  # the group that may read it
    custom = named(render(["--set", "auth.existingSecret=mine,auth.secretKey=api-tokens"]), "Deployment",
                   "rel-ocr-service")["spec"]["template"]["spec"]
    [tokens] = [v for v in custom["volumes"] if v["name"] == "tokens"]
    assert tokens["secret"] == {"secretName": "mine", "items": [{"key": "api-tokens", "path": "api-tokens"}],
                                "defaultMode": 0o440}


def test_an_existing_triton_renders_nothing_of_triton():
    docs = render([*ALL_ON, "--set", "triton.external.url=triton.inference.svc:8000"])
    names = [d["metadata"]["name"] for d in docs]
    assert not [n for n in names if "triton" in n], names  # no Deployment, Service, PDB, NetworkPolicy, HPA of Triton
    assert by_kind(docs, "ConfigMap")[0]["data"]["OCR_TRITON_URL"] == "triton.inference.svc:8000"
    monitors = [m["metadata"]["name"] for m in by_kind(docs, "ServiceMonitor")]
    assert monitors == ["rel-ocr-service"]  # its owner scrapes it
    groups = [g["name"] for r in by_kind(docs, "PrometheusRule") for g in r["spec"]["groups"]]
    assert "triton" not in groups  # no job to select...
    named_job = render([*ALL_ON, "--set", "triton.external.url=triton.inference.svc:8000,monitoring.tritonJob=shared-triton"])
    rules = [g for r in by_kind(named_job, "PrometheusRule") for g in r["spec"]["groups"] if g["name"] == "triton"]
    assert rules and all('job="shared-triton"' in rule["expr"] for rule in rules[0]["rules"])  # ...unless one is named
    assert "exclude each other" in render_fails(["--set", "backend=triton,triton.external.url=t:8000,triton.colocated.enabled=true"])
    assert "schema" in render_fails(["--set", "backend=triton,triton.external.url=http://t:8000"])


def test_every_setting_is_reachable_typed_or_through_the_checked_passthrough():
    """Each OCR_* setting of the service is either set by the chart's ConfigMap from a typed value, or
    allowed in config.extraSettings, whose schema knows exactly the rest (the token, from the Secret,
    is neither); unknown names and the chart's own are refused."""
    from preprocess_service.settings import Settings

    settings = {f"OCR_{name.upper()}" for name in Settings.model_fields}
    template = (CHART / "templates" / "configmap.yaml").read_text()
    typed = set(re.findall(r"^\s*(OCR_[A-Z0-9_]+):", template, re.M))
    schema = json.loads((CHART / "values.schema.json").read_text())
    passthrough = set(schema["properties"]["config"]["properties"]["extraSettings"]["propertyNames"]["enum"])
    assert typed <= settings, typed - settings
    assert passthrough == settings - typed - {"OCR_API_TOKENS"}
    data = by_kind(render(["--set-string", "config.extraSettings.OCR_SHAPE_BUCKETS=on,config.extraSettings.OCR_CLS_THRESH=0.8"]),
                   "ConfigMap")[0]["data"]
    assert data["OCR_SHAPE_BUCKETS"] == "on" and data["OCR_CLS_THRESH"] == "0.8"
    assert "schema" in render_fails(["--set-string", "config.extraSettings.OCR_NOT_A_SETTING=1"])
    assert "schema" in render_fails(["--set-string", "config.extraSettings.OCR_MODEL_SET=ppocrv6_tiny"])  # a typed value's


def test_triton_is_fenced_by_default():
    """Only the API pods reach a Triton of this release, even with networkPolicy.enabled off."""
    docs = render(["--set", "backend=triton"])
    [policy] = by_kind(docs, "NetworkPolicy")
    assert policy["metadata"]["name"] == "rel-ocr-service-triton"
    pods = _pods(docs)
    api, triton = pods["rel-ocr-service"], pods["rel-ocr-service-triton"]
    stranger = {"labels": {"app": "batch"}, "ns": "ocr", "ns_labels": {"kubernetes.io/metadata.name": "ocr"}}
    assert allowed([policy], triton, {"labels": api["labels"], "ns": "ocr",
                                      "ns_labels": {"kubernetes.io/metadata.name": "ocr"}}, triton["ports"]["http"])
    assert not allowed([policy], triton, stranger, triton["ports"]["http"])
    assert not by_kind(render(["--set", "backend=triton,triton.networkPolicy.enabled=false"]), "NetworkPolicy")
    assert not by_kind(render([]), "NetworkPolicy")  # the embedded backend: no Triton to fence


def test_an_api_image_bump_leaves_the_triton_pods_untouched():
    """The copy-models image is the service image of the chart's appVersion (or its own value), not
    image.tag: bumping the API image does not change Triton's pod template, which would need a GPU."""
    def triton_template(extra):
        return named(render(["--set", "backend=triton", *extra]), "Deployment", "rel-ocr-service-triton")["spec"]["template"]

    base = triton_template([])
    assert base == triton_template(["--set", "image.tag=9.9.9"])
    assert base == triton_template(["--set", f"image.digest={DIGEST}"])
    own = triton_template(["--set", f"triton.modelRepository.image.repository=models/ocr,triton.modelRepository.image.digest={DIGEST}"])
    assert own["spec"]["initContainers"][0]["image"] == f"ghcr.io/models/ocr@{DIGEST}"  # image.registry applies
    assert base["spec"]["initContainers"][0]["image"] == "ghcr.io/example/ocr-service:0.1.0"


def test_a_colocated_pod_scales_on_the_api_containers_cpu():
    hpa = by_kind(render(["--set", "backend=triton,triton.colocated.enabled=true,autoscaling.enabled=true"]),
                  "HorizontalPodAutoscaler")[0]["spec"]
    [metric] = hpa["metrics"]
    assert metric["type"] == "ContainerResource" and metric["containerResource"]["container"] == "api"
    plain = by_kind(render(["--set", "autoscaling.enabled=true"]), "HorizontalPodAutoscaler")[0]["spec"]
    assert plain["metrics"][0]["type"] == "Resource"


def test_the_triton_hpa_comes_with_its_adapter_rule(tmp_path):
    docs = render(["--set", "backend=triton,triton.autoscaling.enabled=true"])
    hpa = named(docs, "HorizontalPodAutoscaler", "rel-ocr-service-triton")["spec"]
    metric = hpa["metrics"][0]["pods"]["metric"]["name"]
    [cm] = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] == "rel-ocr-service-triton-prometheus-adapter-rule"]
    [rule] = yaml.safe_load(cm["data"]["rules.yaml"])["rules"]
    assert rule["name"]["as"] == metric == "avg_time_queue_us"
    assert rule["seriesQuery"].startswith("nv_inference_queue_duration_us{")
    # the query as the adapter fills it, checked by promtool as a rule expression
    expr = rule["metricsQuery"].replace("<<.GroupBy>>", "namespace, pod").replace(
        "<<.LabelMatchers>>", 'namespace="ocr",pod=~"rel-ocr-service-triton-.*"')
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": [{"record": "q:queue_us", "expr": expr}]}]}))
    r = subprocess.run([promtool(), "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _template(docs, name: str) -> dict:
    return named(docs, "Deployment", name)["spec"]["template"]


def test_a_model_set_switch_in_steps_never_leaves_the_api_without_its_models():
    """small -> tiny in three upgrades: Triton first serves both (its pods roll, the API's do not),
    then the API switches (Triton's pods stay as they are: they serve both already), then Triton
    drops the old set (the API's pods stay). At no step does an API pod ask for a model Triton lacks."""
    steps = [["--set", "backend=triton"],
             ["--set", "backend=triton", "--set-json", 'triton.extraModelSets=["ppocrv6_tiny"]'],
             ["--set", "backend=triton,config.modelSet=ppocrv6_tiny", "--set-json", 'triton.extraModelSets=["ppocrv6_small"]'],
             ["--set", "backend=triton,config.modelSet=ppocrv6_tiny"]]
    docs = [render(s) for s in steps]
    api = [_template(d, "rel-ocr-service") for d in docs]
    triton = [_template(d, "rel-ocr-service-triton") for d in docs]
    served = [set(_triton_models(d)) for d in docs]
    wanted = [by_kind(d, "ConfigMap")[0]["data"]["OCR_MODEL_SET"] for d in docs]
    assert api[0] == api[1] and triton[0] != triton[1]  # 1: Triton rolls, the API stays
    assert triton[1] == triton[2] and api[1] != api[2]  # 2: the API rolls, Triton stays
    assert api[2] == api[3] and triton[2] != triton[3]  # 3: Triton rolls, the API stays
    need = {"ppocrv6_small": {"ppocrv6_small_det", "ppocrv6_small_rec"}, "ppocrv6_tiny": {"ppocrv6_tiny_det", "ppocrv6_tiny_rec"}}
    for i in range(1, 4):  # while step i rolls, the pods of a Deployment whose template changed are old and new
        api_sets = {wanted[i - 1], wanted[i]} if api[i - 1] != api[i] else {wanted[i]}
        tritons = [served[i - 1], served[i]] if triton[i - 1] != triton[i] else [served[i]]
        assert all(need[a] <= t for a in api_sets for t in tritons), (i, api_sets, tritons)
    # the same switch in one upgrade would not hold: new API pods could meet old Triton pods
    assert not need[wanted[3]] <= served[0]


def test_a_backend_switch_starts_triton_before_the_api_uses_it():
    """embedded -> triton in two upgrades: triton.standby runs Triton beside the embedded API (the
    API's pods stay), then backend: triton rolls the API onto a Triton that is already Ready (Triton's
    pods stay)."""
    embedded, standby, switched = render([]), render(["--set", "triton.standby=true"]), render(["--set", "backend=triton"])
    assert _template(embedded, "rel-ocr-service") == _template(standby, "rel-ocr-service")
    assert by_kind(standby, "ConfigMap")[0]["data"]["OCR_BACKEND"] == "onnxruntime"
    assert _template(standby, "rel-ocr-service-triton") == _template(switched, "rel-ocr-service-triton")
    assert by_kind(switched, "ConfigMap")[0]["data"]["OCR_MODEL_SET"] == "ppocrv6_small"  # what the standby Triton serves
    assert set(_triton_models(standby)) >= {"ppocrv6_small_det", "ppocrv6_small_rec"}
    assert "standby" in render_fails(["--set", "backend=triton,triton.standby=true"])
    assert "schema" in render_fails(["--set-json", 'triton.extraModelSets=["nope"]'])


def test_keda_can_scale_triton_on_its_queue_time(tmp_path):
    docs = render(VALUE_SETS["triton-keda"])
    so = named(docs, "ScaledObject", "rel-ocr-service-triton")["spec"]
    assert so["scaleTargetRef"]["name"] == "rel-ocr-service-triton" and so["minReplicaCount"] == 1
    [trigger] = so["triggers"]
    assert trigger["metricType"] == "Value" and trigger["metadata"]["threshold"] == "50000"
    query = trigger["metadata"]["query"]
    assert 'job="rel-ocr-service-triton"' in query and 'namespace="ocr"' in query
    assert not [h for h in by_kind(docs, "HorizontalPodAutoscaler") if h["metadata"]["name"].endswith("-triton")]
    f = tmp_path / "q.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": [{"record": "q:queue_us", "expr": query}]}]}))
    r = subprocess.run([promtool(), "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cannot both be on" in render_fails([*VALUE_SETS["triton-keda"], "--set", "triton.autoscaling.enabled=true"])
    assert "serverAddress is required" in render_fails(["--set", "backend=triton,triton.autoscaling.keda.enabled=true"])


def test_the_charts_model_set_lists_are_the_registrys():
    """The chart's list of model sets (the schema's enum of config.modelSet and triton.extraModelSets)
    is the service's registry (preprocess_service/model_sets.py), in the same order."""
    from preprocess_service.model_sets import MODEL_SETS

    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]["properties"]["modelSet"]["enum"]
    assert config == list(MODEL_SETS)
    extra = schema["properties"]["triton"]["properties"]["extraModelSets"]
    assert extra["items"]["enum"] == list(MODEL_SETS), extra
    # _helpers.tpl: each set's folders (the models Triton loads), and the CPU-only sets that become
    # the float set on GPUs
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    folders = dict(re.findall(r'"([\w]+)" \(list ("[\w]+"(?: "[\w]+")*)\)', helpers))
    assert {k: v.replace('"', "").split() for k, v in folders.items()} == {
        name: [ms.det, ms.rec, *([ms.cls] if ms.cls else [])] for name, ms in MODEL_SETS.items()}
    cpu_only = {tuple(m.replace('"', "").split()) for m in re.findall(r'\(has [^(]+\(list ("[\w]+"(?: "[\w]+")*)\)\)', helpers)}
    assert cpu_only == {tuple(name for name, ms in MODEL_SETS.items() if ms.cpu_only)}, cpu_only
