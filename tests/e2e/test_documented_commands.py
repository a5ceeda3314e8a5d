"""Every command a doc tells a user to run has a smoke test, so none can rot in silence.

``SMOKE`` maps each command the docs name (README.md, docs/, the chart's README, SECURITY.md) to
the test that runs a cheap variant of it. The first test fails when a doc names a command that
is not in the map, or the map names a test that does not exist; the tests after it are the smoke
runs of the commands no other test module runs (``make eval`` on three images, the memory-cost
measurement, the batcher and lever benchmarks on one image, the Triton config check).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PY = sys.executable
DOCS = [ROOT / "README.md", ROOT / "SECURITY.md", ROOT / "helm" / "ocr-service" / "README.md",
        *sorted((ROOT / "docs").glob("*.md"))]
THIS = "tests/e2e/test_documented_commands.py"

# command -> the test that runs it (a cheap variant), as "path::test_name"
SMOKE = {
    "make serve": "tests/e2e/test_make_serve.py::test_make_serve_starts_the_embedded_service",
    "make test": "tests/unit/test_docs.py::test_make_test_reports_its_slowest_tests",
    "make models": "tests/unit/test_model_repository.py::test_fetch_into_a_fresh_repository_is_idempotent_and_repairs",
    "make eval": f"{THIS}::test_make_eval_on_three_images",
    "python -m evaluation.run_eval": f"{THIS}::test_make_eval_on_three_images",
    "make bench": "tests/e2e/test_bench.py::test_bench_run_measures_ours_and_the_floor_end_to_end",
    "python -m bench.run": "tests/e2e/test_bench.py::test_bench_run_measures_ours_and_the_floor_end_to_end",
    "python -m bench.pairs": "tests/e2e/test_bench.py::test_pairs_runs_variants_interleaved_and_writes_medians",
    "make levers": f"{THIS}::test_levers_on_one_variant_and_one_image",
    "python -m bench.levers": f"{THIS}::test_levers_on_one_variant_and_one_image",
    "python -m bench.batcher": f"{THIS}::test_batcher_at_one_level_on_one_image",
    "python -m bench.memory_costs": f"{THIS}::test_memory_costs_quick",
    "python -m bench.shapes": f"{THIS}::test_shapes_on_two_images",
    "python -m bench.triton_balance": f"{THIS}::test_triton_balance_with_short_phases",
    "python -m bench.triton_hop": f"{THIS}::test_triton_hop_on_one_image",
    "make docs": "tests/unit/test_docs.py::test_a_changed_artifact_fails_the_check_until_rendered",
    "make docs-check": "tests/unit/test_docs.py::test_the_docs_are_what_the_artifacts_give",
    "make lint": f"{THIS}::test_make_test_runs_lint_first",
    "make hostile": "tests/e2e/test_hostile.py::test_pdf_whose_count_lies_is_400_on_every_route",
    "make triton": "tests/e2e/test_triton.py::test_stopping_the_local_triton_leaves_no_process",
    "make gpu-stage": "tests/e2e/test_gpu_bench.py::test_the_runner_dry_run_writes_every_step",
    "make k8s-tools": "tests/e2e/test_helm.py::test_rendered_core_kinds_pass_kubernetes_validate_strict",
    "make base-digest": "tests/unit/test_dockerfile.py::test_make_base_digest_rewrites_the_pinned_line",
    "python -m preprocess_service": "tests/e2e/test_api.py::test_health_and_readiness_need_no_token",
    "python -m export_scripts.fetch_models": "tests/unit/test_model_repository.py::test_fetch_into_a_fresh_repository_is_idempotent_and_repairs",
    "python -m export_scripts.triton_config": f"{THIS}::test_triton_config_check_finds_the_repository_up_to_date",
    "python -m export_scripts.quantize": "tests/unit/test_int8.py::test_rebuilt_from_the_committed_ranges_byte_for_byte",
    "ocr send": "tests/e2e/test_cli.py::test_send_a_folder_with_progress_and_jsonl",
    "helm install": "tests/e2e/test_helm.py::test_rendered_core_kinds_pass_kubernetes_validate_strict",
    "helm upgrade": "tests/e2e/test_helm.py::test_rendered_core_kinds_pass_kubernetes_validate_strict",
    "helm template": "tests/e2e/test_helm.py::test_rendered_core_kinds_pass_kubernetes_validate_strict",
    "helm lint": "tests/e2e/test_helm.py::test_helm_lint_strict",
}

# commands the suite does not run, and why (each is a measurement or a build of its own)
NOT_RUN = {
    "make setup-footprint": "measures pip downloading every package of a bare clone: the network, by design",
    "make image": "builds a container image: needs a container engine (tests/image/test-image.sh, with podman)",
    "make image-gpu": "builds the GPU image: needs a container engine (tests/image/test-image-gpu.sh)",
    "make test-image": "tests/image/test-image.sh itself: needs podman and a debootstrapped base",
    "make test-image-gpu": "tests/image/test-image-gpu.sh itself: needs podman and a debootstrapped base",
    "helm test": "runs the chart's test pod in a cluster; its manifest is checked by "
                 "tests/e2e/test_helm.py::test_service_probes_annotations_and_dashboard",
}

_COMMAND = re.compile(r"`((?:make [a-z0-9-]+)|(?:(?:\.venv/bin/)?python3? -m [a-z_.]+)|(?:ocr [a-z]+)"
                      r"|(?:helm [a-z]+))[^`]*`")


def documented_commands() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for doc in DOCS:
        for m in _COMMAND.finditer(doc.read_text(encoding="utf-8")):
            command = re.sub(r"^(?:\.venv/bin/)?python3? ", "python ", m.group(1))
            found.setdefault(command, []).append(doc.relative_to(ROOT).as_posix())
    return found


def test_every_documented_command_has_a_smoke_test_that_exists():
    found = documented_commands()
    assert len(found) > 20, found  # the pattern still finds the docs' commands
    missing = {c: docs for c, docs in found.items() if c not in SMOKE and c not in NOT_RUN}
    assert not missing, f"documented commands without a smoke test in SMOKE: {missing}"
    for command, node in SMOKE.items():
        path, name = node.split("::")
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^(?:async )?def {name}\(", source, re.M), f"{command}: {node} does not exist"


def test_make_test_runs_lint_first():
    """`make lint` runs on every `make test` (a prerequisite of the test target): the suite's own smoke run."""
    makefile = (ROOT / "Makefile").read_text()
    prerequisites = re.search(r"^test:(.*)$", makefile, re.M)
    assert prerequisites and "lint" in prerequisites.group(1).split()
    assert re.search(r"^lint:", makefile, re.M)


def _run(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


@pytest.mark.timeout(900)
def test_make_eval_on_three_images(tmp_path, repository):
    """`make eval`'s command on the first three images: our service (the default INT8 set) and
    PaddleOCR's own pipeline on the published float32 models, within the accuracy rule."""
    ref = ROOT / ".venv-ref" / "bin" / "python"
    if not ref.exists():
        pytest.fail(".venv-ref missing: `make test` builds it (make reference)")
    proc = _run([PY, "-m", "evaluation.run_eval", "--reference-python", str(ref), "--limit", "3", "--out", str(tmp_path)])
    assert ": OK" in proc.stdout, proc.stdout
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["model_set"] == "ppocrv6_small_int8"
    assert result["reference_models"] == {"det": "ppocrv6_small_det", "rec": "ppocrv6_small_rec"}
    assert set(result["overall_cer"]) == {"ours", "paddleocr", "paddleocr_our_decode"}
    assert len(result["per_image"]["ours"]) == 3


def test_memory_costs_quick(tmp_path, repository):
    out = tmp_path / "m.json"
    _run([PY, "-m", "bench.memory_costs", "--quick", "--out", str(out)])
    doc = json.loads(out.read_text())
    from bench.memory_costs import CHARGED

    assert doc["quick"] and doc["model_set"] and {r["kind"] for r in doc["rows"]} == set(CHARGED)
    assert all(r["peak_mib"] >= r["base_mib"] > 0 for r in doc["rows"])


@pytest.mark.timeout(900)
def test_batcher_at_one_level_on_one_image(tmp_path, repository):
    out = tmp_path / "b.json"
    _run([PY, "-m", "bench.batcher", "--repeats", "1", "--levels", "1", "--images", "tess_hello_google.png",
          "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["variants"] and all(v for v in doc["variants"].values()), doc


@pytest.mark.timeout(900)
def test_levers_on_one_variant_and_one_image(tmp_path, repository):
    out = tmp_path / "l.json"
    from bench.levers import VARIANTS

    first = next(iter(VARIANTS))
    _run([PY, "-m", "bench.levers", "--variants", first, "--images", "tess_hello_google.png", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert first in json.dumps(doc)


def test_triton_config_check_finds_the_repository_up_to_date(repository):
    _run([PY, "-m", "export_scripts.triton_config", "--check"])


@pytest.mark.timeout(900)
def test_shapes_on_two_images(tmp_path, repository):
    out = tmp_path / "s.json"
    _run([PY, "-m", "bench.shapes", "--images", "2", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["images"] == 2 and doc["rows"], doc


@pytest.mark.timeout(900)
def test_triton_hop_on_one_image(tmp_path, repository):
    out = tmp_path / "h.json"
    _run([PY, "-m", "bench.triton_hop", "--images", "1", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["images"] == 1 and {"float32", "uint8"} < set(doc["variants"]) and doc["model_sets"]["default"]
    assert doc["uint8_over_float32_bytes"] < 1


@pytest.mark.timeout(900)
def test_triton_balance_with_short_phases(tmp_path, repository):
    out = tmp_path / "t.json"
    _run([PY, "-m", "bench.triton_balance", "--phase-s", "2", "--concurrency", "2", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc, doc
