"""The Helm chart and the Dockerfile, checked with the real tools: helm lint/template,
kubernetes-validate (k8s schemas), the Prometheus-Operator CRD models, promtool, hadolint.
No Kubernetes API server can run here, so nothing is installed into a cluster."""

from __future__ import annotations

import json
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
CORE_KINDS = {"ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
              "NetworkPolicy", "Pod"}
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
ALL_ON = ["--set", "backend=triton,networkPolicy.enabled=true,metrics.serviceMonitor.enabled=true,"
          "metrics.prometheusRule.enabled=true,metrics.grafanaDashboard.enabled=true"]

VALUE_SETS = {
    "defaults": [],
    "gpu-cluster": ["-f", str(CHART / "ci" / "gpu-cluster-values.yaml")],
    "existing-secret": ["--set", "auth.existingSecret=my-tokens"],
    "autoscaling": ["--set", "autoscaling.enabled=true,podDisruptionBudget.enabled=true"],
    "triton-pvc": ["--set", "backend=triton,triton.modelRepository.source=pvc,triton.modelRepository.claimName=models"],
    "triton-s3": ["--set", "backend=triton,triton.modelRepository.source=url,triton.modelRepository.url=s3://bucket/models,"
                  "triton.modelRepository.credentialsSecret=s3-creds,triton.gpus=0"],
    "everything-on": ALL_ON,
}


def _helm() -> str:
    if not HELM.exists():
        pytest.fail(f"{HELM} missing: `make test` fetches it (make k8s-tools)")
    return str(HELM)


def render(args: list[str]) -> list[dict]:
    out = subprocess.run([_helm(), "template", "rel", str(CHART), "--namespace", "ocr", *args],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("values", [[], ["-f", str(CHART / "ci" / "gpu-cluster-values.yaml")], ALL_ON])
def test_helm_lint_strict(values):
    r = subprocess.run([_helm(), "lint", "--strict", str(CHART), *values], capture_output=True, text=True)
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


@pytest.mark.parametrize("name", ["gpu-cluster", "everything-on"])
def test_monitoring_objects_pass_their_crd_schemas(name):
    crds = [d for d in render(VALUE_SETS[name]) if d["kind"] in CRD_KINDS]
    assert {d["kind"] for d in crds} == {"ServiceMonitor", "PrometheusRule"}
    r = subprocess.run(["node", str(ROOT / "tests" / "k8s" / "validate-crds.mjs"), str(NODE_MODULES)],
                       input=json.dumps(crds), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count('"ok":true') == len(crds)


def test_the_crd_check_catches_a_bad_object():
    sm = by_kind(render(ALL_ON), "ServiceMonitor")[0]
    sm["spec"]["endpoints"][0]["interval"] = 15
    r = subprocess.run(["node", str(ROOT / "tests" / "k8s" / "validate-crds.mjs"), str(NODE_MODULES)],
                       input=json.dumps([sm]), capture_output=True, text=True)
    assert r.returncode == 1 and "interval must be string" in r.stdout


def test_rendered_alert_rules_pass_promtool(tmp_path):
    rule = by_kind(render(ALL_ON), "PrometheusRule")[0]
    f = tmp_path / "rules.yml"
    f.write_text(yaml.safe_dump(rule["spec"]))
    r = subprocess.run(["promtool", "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0 and "7 rules found" in r.stdout, r.stdout + r.stderr
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alert-rules.yml").read_text())


def test_gpu_limit_node_placement_and_probes_in_triton_mode():
    docs = render(VALUE_SETS["gpu-cluster"])
    triton = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-triton")][0]
    pod = triton["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert "--load-model=ppocrv6_small_rec" in c["args"] and "--model-repository=/models" in c["args"]
    assert pod["initContainers"][0]["name"] == "copy-models"
    cfg = by_kind(docs, "ConfigMap")[0]["data"]
    assert cfg["OCR_BACKEND"] == "triton" and cfg["OCR_TRITON_URL"] == "rel-ocr-service-triton:8000"
    hpas = {h["metadata"]["name"]: h for h in by_kind(docs, "HorizontalPodAutoscaler")}
    assert hpas["rel-ocr-service"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpas["rel-ocr-service-triton"]["spec"]["metrics"][0]["pods"]["metric"]["name"] == "avg_time_queue_us"
    assert len(by_kind(docs, "PodDisruptionBudget")) == 2


def test_embedded_mode_has_no_triton():
    docs = render([])
    assert [d["metadata"]["name"] for d in by_kind(docs, "Deployment")] == ["rel-ocr-service"]
    assert by_kind(docs, "ConfigMap")[0]["data"]["OCR_BACKEND"] == "onnxruntime"
    assert not any("nvidia.com/gpu" in json.dumps(d) for d in docs)


def test_model_repository_sources():
    s3 = render(VALUE_SETS["triton-s3"])
    t = [d for d in by_kind(s3, "Deployment") if d["metadata"]["name"].endswith("-triton")][0]["spec"]["template"]["spec"]
    assert "--model-repository=s3://bucket/models" in t["containers"][0]["args"]
    assert "initContainers" not in t and t["containers"][0]["envFrom"][0]["secretRef"]["name"] == "s3-creds"
    assert "nvidia.com/gpu" not in json.dumps(t)  # gpus: 0 runs Triton on CPU
    pvc = render(VALUE_SETS["triton-pvc"])
    t = [d for d in by_kind(pvc, "Deployment") if d["metadata"]["name"].endswith("-triton")][0]["spec"]["template"]["spec"]
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


def test_tokens_secret_is_mounted_and_never_rendered_with_existing_secret():
    given = "given-token-0123456789abcdef"
    docs = render(["--set", f"auth.tokens[0]={given}"])
    secret = by_kind(docs, "Secret")[0]
    import base64

    assert base64.b64decode(secret["data"]["tokens"]).decode() == given
    assert given not in json.dumps([d for d in docs if d["kind"] != "Secret"])  # only in the Secret
    docs = render(["--set", f"auth.existingSecret=my-tokens,auth.tokens[0]={given}"])
    assert not by_kind(docs, "Secret")
    assert given not in json.dumps(docs)
    api = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    assert {"name": "tokens", "secret": {"secretName": "my-tokens"}} in api["volumes"]
    assert by_kind(docs, "ConfigMap")[0]["data"]["OCR_API_TOKENS_FILE"] == "/var/run/secrets/ocr/tokens"


def test_generated_token_differs_per_render_and_is_long():
    import base64

    t1 = base64.b64decode(by_kind(render([]), "Secret")[0]["data"]["tokens"]).decode()
    t2 = base64.b64decode(by_kind(render([]), "Secret")[0]["data"]["tokens"]).decode()
    assert len(t1) >= 40 and t1 != t2


def test_network_policy_selects_the_right_pods():
    docs = render(VALUE_SETS["everything-on"])
    deploys = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in by_kind(docs, "Deployment")}
    api_labels, triton_labels = deploys["rel-ocr-service"], deploys["rel-ocr-service-triton"]
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs, "NetworkPolicy")}
    tp = policies["rel-ocr-service-triton"]

    def selects(selector, labels):
        return all(labels.get(k) == v for k, v in selector["matchLabels"].items())

    assert selects(tp["podSelector"], triton_labels) and not selects(tp["podSelector"], api_labels)
    inference, metrics = tp["ingress"]
    assert selects(inference["from"][0]["podSelector"], api_labels)
    assert not selects(inference["from"][0]["podSelector"], triton_labels)
    assert {p["port"] for p in inference["ports"]} == {8000, 8001}
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert {p["port"] for p in metrics["ports"]} == {8002}
    assert selects(policies["rel-ocr-service"]["podSelector"], api_labels)


def test_service_probes_annotations_and_dashboard():
    docs = render(VALUE_SETS["everything-on"])
    api = by_kind(docs, "Deployment")[0]["spec"]["template"]
    c = api["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    dash = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")][0]
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dash["data"]["ocr-service.json"]) == json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    test_pod = by_kind(docs, "Pod")[0]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "Authorization" in json.dumps(test_pod)


@pytest.mark.parametrize("bad", ["backend=gpu", "config.modelSet=v9", "service.port=0", "triton.modelRepository.url=http://x",
                                 "auth.tokens[0]=short", "surprise=1"])
def test_values_schema_rejects_bad_values(bad):
    r = subprocess.run([_helm(), "template", "rel", str(CHART), "--set", bad], capture_output=True, text=True)
    assert r.returncode != 0 and "values don't meet the specifications of the schema" in r.stderr


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
    out = subprocess.run([_helm(), "template", "rel", str(CHART), "--set", "terminationGracePeriodSeconds=40"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "must cover config.requestTimeoutSeconds" in out.stderr


@pytest.mark.parametrize("quantity,mib", [("2Gi", "2048"), ("1536Mi", "1536"), ("1.5Gi", "1536"), ("3G", "2861")])
def test_the_memory_budget_comes_from_the_container_limit(quantity, mib):
    docs = render(["--set", f"resources.limits.memory={quantity}"])
    cfg = by_kind(docs, "ConfigMap")[0]["data"]
    container = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert str(container["resources"]["limits"]["memory"]) == quantity
    assert cfg["OCR_MEMORY_LIMIT_MIB"] == mib and cfg["OCR_MEMORY_BUDGET_FRACTION"] == "0.75"


def test_a_pod_without_a_memory_limit_does_not_render():
    out = subprocess.run([_helm(), "template", "rel", str(CHART), "--set", "resources.limits.memory=null"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "memory" in out.stderr
