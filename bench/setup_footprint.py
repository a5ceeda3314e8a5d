"""Time and disk of `make serve`'s set-up from a bare clone, as a new user gets it.

Clones the committed HEAD into an empty temporary folder (nothing beside it), runs
``make serve-setup`` there (the lean serving venv and the model files: everything ``make serve``
does before it starts the server) with pip's cache off, so every package is downloaded as on a
fresh machine, then measures the time and the disk of what it made.

    .venv/bin/python -m bench.setup_footprint [--out docs/artifacts/setup-footprint.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from preprocess_service.model_sets import DEFAULT_MODEL_SET

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "artifacts" / "setup-footprint.json"


def du_mib(path: Path) -> float:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return round(total / 2**20, 1)


def measure() -> dict:
    with tempfile.TemporaryDirectory(prefix="setup-footprint-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True,
                                check=True).stdout.strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OCR_", "VIRTUAL_ENV"))}
        env["PIP_NO_CACHE_DIR"] = "1"
        t0 = time.monotonic()
        subprocess.run(["make", "-s", "serve-setup"], cwd=clone, env=env, check=True)
        seconds = time.monotonic() - t0
        venv = clone / ".venv-serve"
        freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
                                capture_output=True, text=True, check=True).stdout.split()
        names = sorted(line.split("==")[0].lower() for line in freeze)
        result = {
            "command": "make serve-setup (what make serve runs before starting), bare clone, pip cache off",
            "measured_by": "make setup-footprint",
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "commit": commit,
            "model_set": DEFAULT_MODEL_SET,  # what make serve-setup fetches and builds
            "settings": {},
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "gpu": False},
            "seconds": round(seconds, 1),
            "disk_mib": {
                "venv": du_mib(venv),
                "model_repository": du_mib(clone / "model_repository"),
                "wheel_cache": du_mib(clone / ".cache"),
            },
            "packages": len(names),
            "dev_only_packages_present": sorted(set(names) & {"paddlepaddle", "paddle2onnx", "pytest", "selenium",
                                                              "schemathesis", "matplotlib", "hypothesis"}),
        }
        result["disk_mib"]["total"] = round(sum(result["disk_mib"].values()), 1)
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    result = measure()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"make serve-setup: {result['seconds']:.0f} s, {result['disk_mib']['total']:.0f} MiB "
          f"({result['packages']} packages; dev-only present: {result['dev_only_packages_present'] or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
