"""What one page costs in memory, per stage: the constants of preprocess_service/budget.py.

Each measurement runs in a fresh process (peak RSS is a high-water mark) with the service's
own settings (onnxruntime CPU arena off): the resident set after the models are loaded and
warmed up, then the peak while one stage runs on one input size.

    .venv/bin/python -m bench.memory_costs [--out docs/artifacts/memory-costs.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "artifacts" / "memory-costs.json"

_PROBE = r"""
import io, json, resource, sys
import numpy as np, psutil
from PIL import Image
from preprocess_service import budget
from preprocess_service.imaging import decode_image
kind, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if kind == "decode":
    img = Image.fromarray(np.random.randint(0, 255, (b, a, 4), np.uint8), "RGBA")
    buf = io.BytesIO(); img.save(buf, "PNG", compress_level=1); data = buf.getvalue(); del img, buf
    base = psutil.Process().memory_info().rss
    out = decode_image(data, 10**9)
    pixels = a * b
else:
    import onnxruntime as ort
    so = ort.SessionOptions(); so.enable_cpu_mem_arena = False
    s = ort.InferenceSession("model_repository/ppocrv6_small_det/1/model.onnx", so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    s.run(None, {name: np.zeros((1, 3, 64, 64), np.float32)})
    base = psutil.Process().memory_info().rss
    s.run(None, {name: np.random.rand(1, 3, b, a).astype(np.float32)})
    pixels = a * b
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"kind": kind, "width": a, "height": b, "pixels": pixels, "base_mib": base / 2**20,
                  "peak_mib": peak / 2**20, "bytes_per_pixel": (peak - base) / pixels}))
"""

CASES = [("decode", 2000, 2000), ("decode", 6000, 6000), ("det", 960, 736), ("det", 960, 960),
         ("det", 1920, 1440), ("det", 2880, 2880)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    rows = []
    for kind, w, h in CASES:
        r = subprocess.run([sys.executable, "-c", _PROBE, kind, str(w), str(h)], cwd=ROOT, env=env,
                           capture_output=True, text=True, check=True)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(f"{kind:7s} {w}x{h}: peak {row['peak_mib']:.0f} MiB over {row['base_mib']:.0f}, "
              f"{row['bytes_per_pixel']:.0f} bytes per pixel")
    from preprocess_service import budget

    result = {"measured_by": "python -m bench.memory_costs", "date": datetime.now(UTC).strftime("%Y-%m-%d"),
              "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "gpu": False},
              "rows": rows,
              "constants": {"DECODE_BYTES_PER_PIXEL": budget.DECODE_BYTES_PER_PIXEL,
                            "DET_BYTES_PER_PIXEL": budget.DET_BYTES_PER_PIXEL,
                            "DET_FIXED_MIB": budget.DET_FIXED_BYTES / budget.MIB}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
