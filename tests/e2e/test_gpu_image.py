"""The GPU variant of the service image (Dockerfile, VARIANT=gpu), checked without building it: what
the Dockerfile's GPU branch installs and sets, hadolint, and requirements-gpu.txt's pins, textually
and through pip's resolver in dry-run mode (nothing installed, .venv untouched).

The build and the container runs are `make test-image-gpu` (tests/image/test-image-gpu.sh: podman,
about 20 minutes and 3.5 GB, so not part of `make test`): on a machine without a GPU the image must
refuse to start with its defaults, and serve on the CPU, saying so, when the fallback is allowed."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS = ROOT / "requirements-gpu.txt"
CONSTRAINTS = ROOT / "constraints.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")
# what onnxruntime-gpu's `cuda` and `cudnn` extras name (CUDA 13 wheels), and cuBLAS, which its CUDA
# provider links (nvidia-cudnn-cu13 requires it)
CUDA_WHEELS = {"nvidia-cuda-runtime", "nvidia-cuda-nvrtc", "nvidia-cufft", "nvidia-curand", "nvidia-cudnn-cu13", "nvidia-cublas"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            m = PIN.match(line.strip())
            assert m, f"{path.name}: not an exact pin: {line!r}"
            assert norm(m.group(1)) not in out, f"{path.name}: {m.group(1)} twice"
            out[norm(m.group(1))] = m.group(2)
    return out


def instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped: (KEYWORD, rest)."""
    out, buf = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#") or (not buf and not line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        whole = (buf + line).strip()
        buf = ""
        keyword, _, rest = whole.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions by stage name ('final' for the last, unnamed stage); global ARGs under ''."""
    out: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            m = re.search(r"\s+AS\s+(\S+)$", rest, re.I)
            current = m.group(1) if m else "final"
            out[current] = []
        out[current].append((keyword, rest))
    return out


def lock_script():
    spec = importlib.util.spec_from_file_location("lock_gpu_requirements", ROOT / "tests" / "image" / "lock_gpu_requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the Dockerfile --------------------------------------------------------------------------------------

def _variant_branches() -> dict[str, str]:
    [run] = [rest for k, rest in stages()["build"] if k == "RUN" and 'case "$VARIANT"' in rest]
    body = run.split('case "$VARIANT" in', 1)[1].rsplit("esac", 1)[0]
    branches = {}
    for m in re.finditer(r"(?:^|;;)\s*(\*|[a-z]+)\)\s(.*?)(?=;;)", body, re.S):
        branches[m.group(1)] = m.group(2)
    assert set(branches) == {"cpu", "gpu", "*"}, branches
    return branches


def test_the_gpu_branch_installs_exactly_requirements_gpu_txt():
    branches = _variant_branches()
    gpu_installs = re.findall(r"pip install ([^&;]*?)\s*(?:&&|$)", branches["gpu"])
    # requirements-gpu.txt as it is, resolving nothing; then the service itself without dependencies
    assert gpu_installs == ["--no-cache-dir --no-deps -r requirements-gpu.txt", "--no-cache-dir --no-deps ."], gpu_installs
    # the build fails when the CPU onnxruntime is there, when pip check finds anything but the service's
    # own onnxruntime requirement (onnxruntime-gpu provides the module), or when the module is not the GPU build
    assert "pip show onnxruntime" in branches["gpu"] and "exit 1" in branches["gpu"]
    assert "pip check" in branches["gpu"] and "requires onnxruntime, which is not installed" in branches["gpu"]
    assert "m.version('onnxruntime-gpu')" in branches["gpu"] and "'CUDAExecutionProvider' in o.get_available_providers()" in branches["gpu"]
    # the CPU image is what it was: everything pinned by constraints.txt; anything else is refused
    assert re.findall(r"pip install ([^&;]*?)\s*$", branches["cpu"].strip()) == ["--no-cache-dir -c constraints.txt ."]
    assert "exit 1" in branches["*"]
    build = stages()["build"]
    copies = [rest for k, rest in build if k == "COPY"]
    assert "pyproject.toml constraints.txt requirements-gpu.txt ./" in copies
    # and the build context lets it in (.dockerignore: nothing but an allow-list)
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore and "!requirements-gpu.txt" in ignore[ignore.index("*"):]


def test_the_variant_argument_picks_the_final_stage_and_the_gpu_defaults():
    from preprocess_service.settings import Settings

    st = stages()
    assert ("ARG", "VARIANT=cpu") in st[""]  # the CPU image stays the default build
    assert st["final"][0] == ("FROM", "runtime-${VARIANT:-cpu}")
    # the CPU image: the common runtime with a label, nothing else
    assert st["runtime-cpu"] == [("FROM", "runtime AS runtime-cpu"), ("LABEL", 'io.example.ocr-service.variant="cpu"')]
    gpu = st["runtime-gpu"]
    env = dict(kv.split("=", 1) for k, rest in gpu if k == "ENV" for kv in rest.split())
    assert env["OCR_ORT_PROVIDERS"] == "CUDAExecutionProvider,CPUExecutionProvider"
    assert env["OCR_ORT_ALLOW_CPU_FALLBACK"] == "false"
    assert "NVIDIA_VISIBLE_DEVICES" not in env  # left to the device plugin / --gpus, never "all" for every pod
    settings = Settings(api_tokens=["x" * 16], ort_providers=env["OCR_ORT_PROVIDERS"],
                        ort_allow_cpu_fallback=env["OCR_ORT_ALLOW_CPU_FALLBACK"], model_set=env["OCR_MODEL_SET"])
    # the float models on the GPU; the CPU image keeps the INT8 default, which its build quantises
    assert settings.model_names["rec"] == "ppocrv6_small_rec" and Settings(api_tokens=["x" * 16]).model_set.endswith("_int8")
    assert "OCR_MODEL_SET" not in str(st["runtime"]) + str(st["runtime-cpu"])
    [models] = [rest for k, rest in st["build"] if k == "RUN" and "export_scripts.fetch_models" in rest]
    assert models.index("export_scripts.fetch_models") < models.index("export_scripts.quantize")
    assert settings.ort_providers == ["CUDAExecutionProvider", "CPUExecutionProvider"] and settings.ort_allow_cpu_fallback is False
    # the root steps (the loader's paths to the CUDA/cuDNN wheels' libraries) end with the service's user again
    users = [rest for k, rest in gpu if k == "USER"]
    assert users[-1] == "10001:10001"
    [ld] = [rest for k, rest in gpu if k == "RUN" and "ld.so.conf.d" in rest]
    assert "site-packages/nvidia/cu13/lib" in ld and "site-packages/nvidia/cudnn/lib" in ld and "ldconfig" in ld
    for lib in ("libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13", "libcurand.so.10", "libcudnn.so.9"):
        assert lib in ld, lib  # what the CUDA provider links, loaded at build time
    # the common runtime keeps the CPU image's guarantees, and onnxruntime's telemetry uploader stays off
    runtime = st["runtime"]
    assert ("USER", "10001:10001") in runtime and ("EXPOSE", "8080") in runtime
    runtime_env = dict(kv.split("=", 1) for k, rest in runtime if k == "ENV" for kv in rest.split())
    assert runtime_env["ORT_DISABLE_TELEMETRY"] == "1"
    assert any(k == "HEALTHCHECK" and "healthz" in rest for k, rest in runtime)


def test_the_dockerfile_is_hadolint_clean():
    hadolint = ROOT / ".venv" / "bin" / "hadolint"
    if not hadolint.exists():
        hadolint = Path(shutil.which("hadolint") or Path(sys.executable).parent / "hadolint")
    r = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_make_targets_build_the_gpu_variant():
    make = (ROOT / "Makefile").read_text()
    target = re.search(r"^image-gpu:\n((?:\t.*\n)+)", make, re.M).group(1)
    assert "--build-arg VARIANT=gpu" in target and "-t $(IMAGE_GPU)" in target
    assert re.search(r"^IMAGE_GPU \?= \$\(IMAGE\)-gpu$", make, re.M)  # the chart's <tag>-gpu
    assert re.search(r"^test-image-gpu:.*\n\ttests/image/test-image-gpu.sh$", make, re.M)
    script = (ROOT / "tests" / "image" / "test-image-gpu.sh").read_text()
    assert "--build-arg VARIANT=gpu" in script and "ensure_base" in script  # the CPU image test's debootstrap base


# --- requirements-gpu.txt ---------------------------------------------------------------------------------

def test_requirements_gpu_pins_onnxruntime_gpu_and_never_the_cpu_build():
    text = REQUIREMENTS.read_text()
    gpu = pins(REQUIREMENTS)  # every line an exact pin, each package once
    assert "onnxruntime==" not in text and "onnxruntime" not in gpu
    lock = lock_script()
    [wanted] = [r for r in lock.GPU_INPUTS if r.startswith("onnxruntime-gpu")]
    assert gpu["onnxruntime-gpu"] == wanted.split("==")[1] == "1.31.1"
    assert text.startswith(lock.HEADER)  # written by tests/image/lock_gpu_requirements.py
    # the CUDA 13 / cuDNN 9 libraries onnxruntime-gpu needs, on the 13.0 line it was built with
    assert CUDA_WHEELS <= set(gpu)
    assert gpu["nvidia-cuda-runtime"].startswith("13.0.") and gpu["nvidia-cudnn-cu13"].startswith("9.")


def test_requirements_gpu_is_the_service_runtime_set_as_constraints_txt_pins_it():
    gpu, constraints = pins(REQUIREMENTS), pins(CONSTRAINTS)
    # every package both files name has the same version; the only ones constraints.txt lacks are the GPU ones
    assert {n: (v, constraints[n]) for n, v in gpu.items() if n in constraints and constraints[n] != v} == {}
    assert {n for n in gpu if n not in constraints} == {"onnxruntime-gpu", "nvidia-nvjitlink"} | CUDA_WHEELS
    # every runtime dependency of the service but onnxruntime, at pyproject.toml's pin
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name, version = re.match(r"([A-Za-z0-9._-]+)(?:\[[^]]*\])?==([^\s;]+)", dep).groups()
        if norm(name) == "onnxruntime":
            continue
        assert gpu.get(norm(name)) == version, dep


def test_the_gpu_set_resolves_against_the_service_constraints():
    """pip's resolver, dry run, at set-up (`make gpu-resolve`, tests/image/resolve_gpu_set.py; the
    test reads its report and needs no registry): onnxruntime-gpu and the CUDA wheels with their
    dependencies, on top of constraints.txt and the rest of requirements-gpu.txt, resolve to exactly
    the pins of requirements-gpu.txt and pull in nothing else (the CPU onnxruntime least of all).
    Only the GPU part goes through the resolver (the whole file takes 25-80 s); the service's own
    part is checked textually above, and in full by `tests/image/lock_gpu_requirements.py --check`
    and by the image build's `pip check`."""
    from tests.image.resolve_gpu_set import inputs_sha256

    report_path = ROOT / ".cache" / "gpu-resolve.json"
    if not report_path.exists():
        pytest.fail(".cache/gpu-resolve.json missing: `make test` writes it at set-up (make gpu-resolve)")
    report = json.loads(report_path.read_text())
    assert report["inputs_sha256"] == inputs_sha256(), "stale: requirements changed since `make gpu-resolve`"
    gpu = pins(REQUIREMENTS)
    wanted = [f"{n}=={v}" for n, v in gpu.items() if n == "onnxruntime-gpu" or n.startswith("nvidia-")]
    assert sorted(report["wanted"]) == sorted(wanted)
    resolved = {norm(n): v for n, v in report["resolved"].items()}
    assert "onnxruntime" not in resolved
    assert {n: v for n, v in resolved.items() if gpu.get(n) != v} == {}, "resolved outside requirements-gpu.txt"
    # onnxruntime-gpu's own dependencies are the service's (constraints.txt) pins
    assert {"numpy", "protobuf", "packaging", "flatbuffers"} <= set(resolved)
    assert set(wanted) <= {f"{n}=={v}" for n, v in resolved.items()}


@pytest.mark.parametrize("line", ["onnxruntime==1.32.0", "numpy>=2", "onnxruntime-gpu[cuda]==1.31.1", "x @ https://e.com/x.whl"])
def test_the_pin_check_refuses_what_is_not_an_exact_pin(tmp_path, line):
    f = tmp_path / "r.txt"
    f.write_text(f"{line}\n")
    if line.startswith("onnxruntime=="):
        assert "onnxruntime" in pins(f)  # an exact pin, which the test above refuses by name
    else:
        with pytest.raises(AssertionError, match="not an exact pin"):
            pins(f)
