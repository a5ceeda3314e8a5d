"""pip's resolver, dry run, on the GPU image's set: onnxruntime-gpu and the CUDA wheels on top of
constraints.txt and requirements-gpu.txt. Run at set-up (``make gpu-resolve``, a prerequisite of
``make test``): it needs the package registry. Writes pip's JSON report with the sha256 of both
input files, so a test can tell a stale report from a current one without the network.

    .venv/bin/python tests/image/resolve_gpu_set.py --out .cache/gpu-resolve.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements-gpu.txt"
CONSTRAINTS = ROOT / "constraints.txt"


def inputs_sha256() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (REQUIREMENTS, CONSTRAINTS)}


def gpu_pins() -> list[str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==([^\s;#]+)", REQUIREMENTS.read_text(), re.M)
    return [f"{n}=={v}" for n, v in pins if n.lower() == "onnxruntime-gpu" or n.lower().startswith("nvidia-")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    wanted = gpu_pins()
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--disable-pip-version-check", "--report", "-", "-c", str(CONSTRAINTS), "-c", str(REQUIREMENTS),
                        *wanted], capture_output=True, text=True, cwd=ROOT, timeout=600)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-3000:])
        return 1
    report = json.loads(r.stdout)
    doc = {"inputs_sha256": inputs_sha256(), "wanted": wanted,
           "resolved": {i["metadata"]["name"]: i["metadata"]["version"] for i in report["install"]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
