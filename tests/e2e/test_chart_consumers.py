"""The chart as others consume it, with the real tools: a parent chart that depends on it (helm
dependency build, template, lint with global values), platform teams' kustomize over the rendered
manifests (kubectl kustomize), a strict YAML reader (a key twice in one mapping fails), GitOps renders
(no lookup: auth.existingSecret, auth.generateToken), and the README generated from the values' comments
(@bitnami/readme-generator-for-helm)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_helm import CHART, HELM, NODE_MODULES, VALUE_SETS, by_kind, helm_template, named, render

README_GENERATOR = NODE_MODULES / ".bin" / "readme-generator"


def kubectl() -> str:
    path = shutil.which("kubectl")
    if not path:
        pytest.fail("kubectl not found (its `kubectl kustomize` checks the rendered chart)")
    return path


class DuplicateKeyError(yaml.YAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one
    silently; the API server, kustomize and Argo CD's diff do not)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(f"key {key!r} twice in one mapping, line {key_node.start_mark.line + 1}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def strict_load_all(text: str) -> list[dict]:
    return [d for d in yaml.load_all(text, Loader=StrictLoader) if d]  # noqa: S506 - a SafeLoader subclass


def template_text(args: list[str], release: str = "rel", namespace: str = "ocr") -> str:
    out = helm_template(args, release, namespace)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_strict_loader_refuses_a_duplicate_key():
    assert strict_load_all("a: 1\nb: {c: 1, d: 2}\n") == [{"a": 1, "b": {"c": 1, "d": 2}}]
    with pytest.raises(DuplicateKeyError, match="app.kubernetes.io/name"):
        strict_load_all("labels:\n  app.kubernetes.io/name: x\n  app.kubernetes.io/name: x\n")


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_manifest_has_each_key_once(name):
    docs = strict_load_all(template_text(VALUE_SETS[name]))
    assert docs
    for d in docs:  # and the pod labels still carry the selectors (the chart's labels win over podLabels)
        if d["kind"] == "Deployment":
            labels = d["spec"]["template"]["metadata"]["labels"]
            assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_extra_labels_and_annotations_merge_into_the_chart_ones():
    docs = strict_load_all(template_text(VALUE_SETS["overlapping-extras"]))
    api = named(docs, "Deployment", "rel-ocr-service")["spec"]["template"]["metadata"]
    assert api["labels"]["app.kubernetes.io/name"] == "ocr-service" and api["labels"]["team"] == "ocr"
    assert api["annotations"]["prometheus.io/scrape"] == "false"  # the user's annotation wins
    triton = named(docs, "Deployment", "rel-ocr-service-triton")["spec"]["template"]["metadata"]
    assert triton["labels"]["app.kubernetes.io/component"] == "triton"


KUSTOMIZATION = {
    "apiVersion": "kustomize.config.k8s.io/v1beta1",
    "kind": "Kustomization",
    "namespace": "ocr",
    "resources": ["chart.yaml"],
    "commonLabels": {"team": "vision"},
    "commonAnnotations": {"owner": "platform@example.com"},
    "patches": [{
        "target": {"kind": "Deployment", "labelSelector": "app.kubernetes.io/component=api"},
        "patch": "- op: add\n  path: /spec/template/spec/nodeSelector\n  value: {pool: ocr}\n",
    }],
}


@pytest.mark.parametrize("name", ["defaults", "gpu-cluster", "everything-on", "keda", "images-and-placement", "overlapping-extras"])
def test_kubectl_kustomize_accepts_the_rendered_chart(name, tmp_path):
    rendered = template_text(VALUE_SETS[name])
    (tmp_path / "chart.yaml").write_text(rendered)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(KUSTOMIZATION))
    r = subprocess.run([kubectl(), "kustomize", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = strict_load_all(r.stdout)
    assert len(out) == len(strict_load_all(rendered))
    for d in out:
        assert d["metadata"]["labels"]["team"] == "vision" and d["metadata"]["annotations"]["owner"] == "platform@example.com"
    api = named(out, "Deployment", "rel-ocr-service")
    assert api["spec"]["template"]["spec"]["nodeSelector"]["pool"] == "ocr"
    assert api["spec"]["selector"]["matchLabels"]["team"] == "vision"  # commonLabels reach the selectors too


def test_kustomize_fails_on_a_duplicate_label(tmp_path):
    """The check above can fail: a manifest with a label twice (what the chart used to render)."""
    rendered = template_text([]).replace("        app.kubernetes.io/component: api\n",
                                         "        app.kubernetes.io/component: api\n        app.kubernetes.io/name: ocr-service\n", 1)
    (tmp_path / "chart.yaml").write_text(rendered)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(KUSTOMIZATION))
    r = subprocess.run([kubectl(), "kustomize", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode != 0 and "already defined" in r.stderr
    with pytest.raises(DuplicateKeyError):
        strict_load_all(rendered)


# --- as a subchart ---------------------------------------------------------------------------------------

def _parent_chart(tmp_path: Path, how: str) -> Path:
    parent = tmp_path / "platform"
    parent.mkdir()
    dependency = {"name": "ocr-service", "version": yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]}
    if how == "file-dependency":
        dependency["repository"] = f"file://{CHART}"
    else:  # vendored: the chart directory itself in charts/, declared without a repository
        shutil.copytree(CHART, parent / "charts" / "ocr-service")
    chart = {"apiVersion": "v2", "name": "platform", "version": "1.0.0", "type": "application", "dependencies": [dependency]}
    (parent / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (parent / "values.yaml").write_text(yaml.safe_dump({
        "global": {"imageRegistry": "mirror.example.com", "storageClass": "fast"},  # globals of other subcharts too
        "ocr-service": {"backend": "triton", "auth": {"existingSecret": "ocr-tokens"},
                        "triton": {"adminSecret": "triton-admin"},
                        "metrics": {"prometheusRule": {"enabled": True}}},
    }))
    (parent / "templates").mkdir()
    (parent / "templates" / "NOTES.txt").write_text("platform\n")
    if how == "file-dependency":
        r = subprocess.run([str(HELM), "dependency", "build", str(parent)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert list((parent / "charts").glob("ocr-service-*.tgz"))
    return parent


@pytest.mark.parametrize("how", ["file-dependency", "copied-into-charts"])
def test_installs_as_a_subchart_with_global_values(how, tmp_path):
    parent = _parent_chart(tmp_path, how)
    r = subprocess.run([str(HELM), "template", "shop", str(parent), "--namespace", "prod"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    docs = strict_load_all(r.stdout)
    images = {c["image"] for d in docs if d["kind"] in ("Deployment", "Pod")
              for spec in [d["spec"]["template"]["spec"] if d["kind"] == "Deployment" else d["spec"]]
              for c in spec["containers"] + spec.get("initContainers", [])}
    assert images == {"mirror.example.com/example/ocr-service:0.1.0", "mirror.example.com/nvidia/tritonserver:24.10-py3"}
    assert not by_kind(docs, "Secret")
    rule = by_kind(docs, "PrometheusRule")[0]
    # annotation scraping (no ServiceMonitor): the conventional job, narrowed by the release's pod labels
    assert ('namespace="prod", job="kubernetes-pods", app_kubernetes_io_instance="shop", '
            'app_kubernetes_io_component="api"') in yaml.safe_dump(rule["spec"], width=10_000)
    r = subprocess.run([str(HELM), "lint", "--strict", str(parent), "--namespace", "prod"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # the subchart's schema still checks its own values under the parent
    r = subprocess.run([str(HELM), "template", "shop", str(parent), "--set", "ocr-service.config.workers=2"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "ocr-service" in r.stderr and "workers" in r.stderr


# --- GitOps -------------------------------------------------------------------------------------------------

def _notes(tmp_path: Path, args: list[str]) -> str:
    """NOTES.txt as `helm install` would print it (rendered through a copy of the chart: helm template
    does not print notes and helm install --dry-run wants a cluster)."""
    chart = tmp_path / "ocr-service"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        '    {{- include (print $.Template.BasePath "/NOTES.txt") . | nindent 4 }}\n')
    r = subprocess.run([str(HELM), "template", "rel", str(chart), "-n", "ocr", "--show-only", "templates/zz-notes.yaml", *args],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)["data"]["notes"]


def test_gitops_uses_an_existing_secret_and_is_told_so(tmp_path):
    generated = _notes(tmp_path / "a", [])
    assert "GitOps" in generated and "auth.existingSecret" in generated and "every render" in generated
    existing = _notes(tmp_path / "b", ["--set", "auth.existingSecret=ocr-tokens,auth.generateToken=false"])
    assert "GitOps" not in existing and "ocr-tokens" in existing
    values = (CHART / "values.yaml").read_text()
    assert "THE way for GitOps" in values and "Argo CD" in values
    # two renders without the cluster (what Argo CD and Flux do) mint two tokens: hence the guard
    t1, t2 = (base64.b64decode(by_kind(render([]), "Secret")[0]["data"]["tokens"]) for _ in range(2))
    assert t1 != t2
    r = helm_template(["--set", "auth.generateToken=false"])
    assert r.returncode != 0 and "auth.existingSecret" in r.stderr and "GitOps" in r.stderr
    # with the guard, an existing Secret or given tokens still render
    assert not by_kind(render(["--set", "auth.generateToken=false,auth.existingSecret=ocr-tokens"]), "Secret")
    given = by_kind(render(["--set", "auth.generateToken=false,auth.tokens[0]=0123456789abcdefXYZ"]), "Secret")[0]
    assert base64.b64decode(given["data"]["tokens"]) == b"0123456789abcdefXYZ"
    assert given["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    gpu = yaml.safe_load((CHART / "ci" / "gpu-cluster-values.yaml").read_text())
    assert gpu["auth"]["existingSecret"] and gpu["auth"]["generateToken"] is False


def test_the_generated_secret_is_kept_and_looked_up():
    secret = by_kind(render([]), "Secret")[0]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace' in helpers


# --- README ---------------------------------------------------------------------------------------------

def _generate_readme(tmp_path: Path, values: Path, readme: Path) -> subprocess.CompletedProcess:
    if not README_GENERATOR.exists():
        pytest.fail(f"{README_GENERATOR} missing: `make k8s-tools` installs @bitnami/readme-generator-for-helm")
    shutil.copy(values, tmp_path / "values.yaml")
    shutil.copy(readme, tmp_path / "README.md")
    return subprocess.run([str(README_GENERATOR), "--values", str(tmp_path / "values.yaml"), "--readme", str(tmp_path / "README.md")],
                          capture_output=True, text=True)


def test_the_readme_is_generated_from_the_values_comments(tmp_path):
    r = _generate_readme(tmp_path, CHART / "values.yaml", CHART / "README.md")
    assert r.returncode == 0, r.stdout + r.stderr
    fresh = (tmp_path / "README.md").read_text()
    assert fresh == (CHART / "README.md").read_text(), (
        "helm/ocr-service/README.md is stale: run .cache/node/node_modules/.bin/readme-generator "
        "--values helm/ocr-service/values.yaml --readme helm/ocr-service/README.md")
    for key in ("global.imageRegistry", "image.digest", "serviceAccount.annotations", "auth.existingSecret", "auth.generateToken",
                "topologySpreadConstraints", "priorityClassName", "triton.runtimeClassName", "autoscaling.keda.enabled",
                "autoscaling.prometheusAdapter.enabled", "autoscaling.behavior.scaleDown.stabilizationWindowSeconds",
                "metrics.serviceMonitor.metricRelabelings", "monitoring.runbookBaseUrl", "config.workers"):
        assert f"| `{key}`" in fresh, key


def test_the_readme_check_fails_on_an_undocumented_value_and_on_a_stale_readme(tmp_path):
    undocumented = tmp_path / "undocumented.yaml"
    undocumented.write_text((CHART / "values.yaml").read_text() + "\nsurprise: 1\n")
    (tmp_path / "a").mkdir()
    r = _generate_readme(tmp_path / "a", undocumented, CHART / "README.md")
    assert r.returncode != 0 and "Missing metadata for key: surprise" in r.stdout + r.stderr
    changed = tmp_path / "changed.yaml"
    changed.write_text((CHART / "values.yaml").read_text().replace("replicaCount: 2", "replicaCount: 3", 1))
    (tmp_path / "b").mkdir()
    r = _generate_readme(tmp_path / "b", changed, CHART / "README.md")
    assert r.returncode == 0 and (tmp_path / "b" / "README.md").read_text() != (CHART / "README.md").read_text()


def test_every_value_is_in_the_schema_and_the_readme_documents_the_gitops_way():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False and "global" in schema["properties"]
    assert set(values) == set(schema["properties"])
    readme = (CHART / "README.md").read_text()
    assert "auth.existingSecret" in readme and "GitOps" in readme

