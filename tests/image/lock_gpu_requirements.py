"""Writes requirements-gpu.txt: the Python packages of the GPU image (Dockerfile, VARIANT=gpu).

The service's runtime dependencies (pyproject.toml) resolved on top of constraints.txt, with the CPU
onnxruntime replaced by onnxruntime-gpu and the CUDA/cuDNN runtime libraries from PyPI
(onnxruntime-gpu's `cuda` and `cudnn` extras). pip resolves in dry-run mode: nothing is installed.

    .venv/bin/python tests/image/lock_gpu_requirements.py            # rewrite requirements-gpu.txt
    .venv/bin/python tests/image/lock_gpu_requirements.py --check    # exit 1 when it would change
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "requirements-gpu.txt"

# onnxruntime-gpu 1.31.1 is the newest on PyPI (the CPU build is 1.32.0); it was built with CUDA 13.0
# (onnxruntime/capi/build_and_package_info.py) and needs cuDNN 9. The CUDA libraries stay on the
# 13.0 line it was built with, so the node's driver needs to be no newer than CUDA 13.0's (R580).
GPU_INPUTS = [
    "onnxruntime-gpu[cuda,cudnn]==1.31.1",
    "nvidia-cuda-runtime<13.1",
    "nvidia-cuda-nvrtc<13.1",
    "nvidia-cublas<13.1",
    "nvidia-nvjitlink<13.1",
    "nvidia-cufft<12.1",
    "nvidia-curand<10.4.1",
]

HEADER = """\
# The GPU image's Python packages (docker build --build-arg VARIANT=gpu; make image-gpu), installed
# with `pip install --no-deps -r requirements-gpu.txt`: exactly these, nothing resolved at build time.
# The service's runtime set as resolved on top of constraints.txt, with onnxruntime (CPU) replaced by
# onnxruntime-gpu (1.31.1, the newest on PyPI; built with CUDA 13.0) and the CUDA 13.0 / cuDNN 9
# runtime libraries from PyPI (its `cuda` and `cudnn` extras). The CPU onnxruntime must never be
# installed beside it (both own the `onnxruntime` module). Generated; do not edit:
#   .venv/bin/python tests/image/lock_gpu_requirements.py
"""


def runtime_requirements() -> list[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if not re.match(r"onnxruntime\b(?!-)", d)]


def resolve(requirements: list[str]) -> list[tuple[str, str]]:
    """(name, version) of everything pip would install for `requirements` on top of constraints.txt."""
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "in.txt"
        req.write_text("\n".join(requirements) + "\n")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                            "--disable-pip-version-check", "-c", str(ROOT / "constraints.txt"), "-r", str(req),
                            "--report", "-"], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    report = json.loads(r.stdout)
    return sorted(((i["metadata"]["name"], i["metadata"]["version"]) for i in report["install"]), key=lambda p: p[0].lower())


def render() -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in resolve(runtime_requirements() + GPU_INPUTS))


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            print(f"{OUT.name} is stale: run .venv/bin/python tests/image/lock_gpu_requirements.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
