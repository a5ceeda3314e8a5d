"""What one page costs in memory, per stage: the constants of preprocess_service/budget.py.

Each measurement runs in a fresh process (peak RSS is a high-water mark) with the service's
own settings (onnxruntime CPU arena off): the resident set after the models are loaded and
warmed up, then the peak while one stage runs on one input size.

    .venv/bin/python -m bench.memory_costs [--out docs/artifacts/memory-costs.json]
    .venv/bin/python -m bench.memory_costs --quick --out /tmp/m.json   (one small case per kind: a smoke run)
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
kind, a, b, det_model = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
pixels = a * b
extra = {}
rng = np.random.default_rng(0)
if kind.startswith("decode-"):
    from preprocess_service.imaging import decode_image
    if kind == "decode-rgb":
        img = Image.fromarray(rng.integers(0, 255, (b, a, 3), np.uint8), "RGB"); fmt = "PNG"
    elif kind == "decode-rgba":
        img = Image.fromarray(rng.integers(0, 255, (b, a, 4), np.uint8), "RGBA"); fmt = "PNG"
    elif kind == "decode-gray16":
        img = Image.fromarray(rng.integers(0, 65535, (b, a), np.uint16)); fmt = "PNG"
    elif kind == "decode-float":
        img = Image.fromarray(rng.random((b, a), np.float32), "F"); fmt = "TIFF"
    buf = io.BytesIO()
    img.save(buf, fmt, **({"compress_level": 1} if fmt == "PNG" else {}))
    data = buf.getvalue(); del img, buf
    base = psutil.Process().memory_info().rss
    out = decode_image(data, 10**9)
elif kind == "pdf":
    import pypdfium2 as pdfium
    from preprocess_service import documents
    pdf = pdfium.PdfDocument.new(); pdf.new_page(a * 72 / documents.PDF_DPI, b * 72 / documents.PDF_DPI)
    buf = io.BytesIO(); pdf.save(buf); data = buf.getvalue(); pdf.close()
    workers = documents.default_workers()  # the page is rendered in a worker process: both count
    doc = documents.probe(data, "pdf", 10, 10**9, pdf=workers)
    worker = psutil.Process(next(iter(workers._all)).proc.pid)
    worker_base = worker.memory_info().rss
    base = psutil.Process().memory_info().rss
    out = documents.page_image(doc, 0, 10**9, pdf=workers)
    pixels = out.shape[0] * out.shape[1]
    workers.close()  # the worker's peak is reported once it has exited
    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    extra = {"worker_bytes_per_pixel": (worker_peak - worker_base) / pixels}
else:  # det: the default set's detection model as served, on its own input type and layout
    import onnxruntime as ort
    so = ort.SessionOptions(); so.enable_cpu_mem_arena = False
    s = ort.InferenceSession(f"model_repository/{det_model}/1/model.onnx", so, providers=["CPUExecutionProvider"])
    spec = s.get_inputs()[0]
    nhwc = spec.shape[-1] == 3
    dtype = np.uint8 if spec.type == "tensor(uint8)" else np.float32
    def tensor(h, w):
        shape = (1, h, w, 3) if nhwc else (1, 3, h, w)
        return rng.integers(0, 255, shape).astype(dtype) if dtype == np.uint8 else rng.random(shape, np.float32)
    s.run(None, {spec.name: tensor(64, 64)})
    base = psutil.Process().memory_info().rss
    s.run(None, {spec.name: tensor(b, a)})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if kind == "pdf":  # the service's process and the renderer's, each from its own base
    base, peak = base + worker_base, peak + worker_peak
print(json.dumps({"kind": kind, "width": a, "height": b, "pixels": pixels, "base_mib": base / 2**20,
                  "peak_mib": peak / 2**20, "bytes_per_pixel": (peak - base) / pixels, **extra}))
"""

CASES = [("decode-rgb", 2000, 2000), ("decode-rgb", 6000, 6000), ("decode-rgba", 2000, 2000),
         ("decode-rgba", 6000, 6000), ("decode-gray16", 2000, 2000), ("decode-gray16", 6000, 6000),
         ("decode-float", 2000, 2000), ("decode-float", 6000, 6000), ("pdf", 2000, 2000), ("pdf", 6000, 6000),
         ("det", 960, 736), ("det", 960, 960), ("det", 1920, 1440), ("det", 2880, 2880)]
# what budget.py charges per pixel for each kind (the constant's name)
CHARGED = {"decode-rgb": "DECODE_BYTES_PER_PIXEL", "decode-rgba": "DECODE_ALPHA_BYTES_PER_PIXEL",
           "decode-gray16": "DECODE_DEEP_BYTES_PER_PIXEL", "decode-float": "DECODE_DEEP_BYTES_PER_PIXEL",
           "pdf": "PDF_RENDER_BYTES_PER_PIXEL", "det": "DET_BYTES_PER_PIXEL"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--quick", action="store_true", help="one small case per kind (checks the command, not the constants)")
    args = ap.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    from preprocess_service import budget

    rows = []
    cases = [(kind, 416, 320) for kind in CHARGED] if args.quick else CASES
    from bench.provenance import provenance
    from preprocess_service.model_sets import DEFAULT_MODEL_SET, MODEL_SETS

    det_model = MODEL_SETS[DEFAULT_MODEL_SET].det
    for kind, w, h in cases:
        r = subprocess.run([sys.executable, "-c", _PROBE, kind, str(w), str(h), det_model], cwd=ROOT, env=env,
                           capture_output=True, text=True, check=True)
        row = json.loads(r.stdout.strip().splitlines()[-1])
        row["charged_bytes_per_pixel"] = getattr(budget, CHARGED[kind])
        if kind == "pdf":
            row["charged_worker_bytes_per_pixel"] = budget.PDF_WORKER_BYTES_PER_PIXEL
        rows.append(row)
        print(f"{kind:14s} {w}x{h}: peak {row['peak_mib']:.0f} MiB over {row['base_mib']:.0f}, "
              f"{row['bytes_per_pixel']:.1f} bytes per pixel (charged {row['charged_bytes_per_pixel']})", flush=True)

    result = {"measured_by": "python -m bench.memory_costs", "date": datetime.now(UTC).strftime("%Y-%m-%d"),
              "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "gpu": False},
              **provenance(DEFAULT_MODEL_SET), "det_model": det_model,
              "rows": rows, **({"quick": True} if args.quick else {}),
              "constants": {**{name: getattr(budget, name) for name in sorted(set(CHARGED.values()))},
                            "PDF_WORKER_BYTES_PER_PIXEL": budget.PDF_WORKER_BYTES_PER_PIXEL,
                            "PDF_WORKER_FIXED_MIB": budget.PDF_WORKER_FIXED_BYTES / budget.MIB,
                            "DET_FIXED_MIB": budget.DET_FIXED_BYTES / budget.MIB}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
