"""Our service's speed levers, measured one at a time against the same baseline.

Part 1, over HTTP: the embedded service is started once per variant, each variant changing one
setting from the float32 set's (BASE_ENV; the INT8 levers, the default among them, against the
float models they were quantised from), and driven with the benchmark's images at concurrency 1 and 4
(images/s, p50, peak RSS, CER), so every lever is judged on speed *and* accuracy.

Part 2, in-process micro-measurements of the per-request glue, over the same images:
base64 (pybase64 vs the standard library), image decoding (our Pillow decoder vs OpenCV's
imdecode), response JSON (orjson vs json vs pydantic), and the detection pre-processing's copies.

    .venv/bin/python -m bench.levers [--variants NAME ...] [--images ...]

Prints two tables and writes docs/artifacts/levers.json (with the command that wrote it).
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import orjson
import pybase64

from bench.dataset import load
from bench.run import bench_http, command_line, machine, request_bodies, start_ours
from evaluation import EVAL_DIR
from preprocess_service.imaging import decode_image
from preprocess_service.settings import PROJECT_ROOT

# every variant runs the float32 set unless it names its own: the INT8 levers (and the INT8
# default, "det + rec int8") are measured against the float models they were quantised from
BASE_ENV = {"OCR_MODEL_SET": "ppocrv6_small"}
VARIANTS: dict[str, dict[str, str]] = {
    "baseline (float32 set)": {},
    "det limit 1280 (old default)": {"OCR_DET_LIMIT_SIDE_LEN": "1280"},
    "det limit 736": {"OCR_DET_LIMIT_SIDE_LEN": "736"},
    "det limit 1920": {"OCR_DET_LIMIT_SIDE_LEN": "1920"},
    "rec batch 1": {"OCR_REC_BATCH_SIZE": "1"},
    "rec batch 4": {"OCR_REC_BATCH_SIZE": "4"},
    "rec batch 8 (old default)": {"OCR_REC_BATCH_SIZE": "8"},
    "rec width multiple 320": {"OCR_REC_WIDTH_MULTIPLE": "320"},
    "rec min width 0 (no padding to 320)": {"OCR_REC_MIN_WIDTH": "0"},
    "1 worker x 2 intra-op threads (old default)": {"OCR_ORT_INFERENCE_WORKERS": "1"},
    "det on all cores under load too (old default)": {"OCR_ORT_DET_BUSY_INTRA_OP_THREADS": "2"},
    "2 workers x 2 intra-op threads": {"OCR_ORT_INTRA_OP_THREADS": "2"},
    "graph optimization basic": {"OCR_ORT_GRAPH_OPTIMIZATION": "basic"},
    "cpu memory arena on (old default)": {"OCR_ORT_CPU_MEM_ARENA": "true"},
    "parallel execution, 2 inter-op": {"OCR_ORT_EXECUTION_MODE": "parallel", "OCR_ORT_INTER_OP_THREADS": "2"},
    "in-flight 1": {"OCR_MAX_IN_FLIGHT": "1"},
    "in-flight 4": {"OCR_MAX_IN_FLIGHT": "4"},
    # static INT8 (QDQ) models of `make int8` (export_scripts/quantize.py; figures in docs/artifacts/int8.json)
    "det int8": {"OCR_DET_MODEL": "ppocrv6_small_det_int8"},
    "rec int8": {"OCR_REC_MODEL": "ppocrv6_small_rec_int8"},
    "det + rec int8": {"OCR_MODEL_SET": "ppocrv6_small_int8"},  # the default set
    # smaller inputs: recognition padded to faster-paddle's 96 px floor instead of the model's 320,
    # detection's up-scaling floor for small images halved
    "rec min width 96": {"OCR_REC_MIN_WIDTH": "96"},
    "det min side 32": {"OCR_DET_MIN_SIDE_LEN": "32"},
    # the tiny models: the fast mode (OCR_MODEL_SET=ppocrv6_tiny)
    "tiny models": {"OCR_MODEL_SET": "ppocrv6_tiny"},
    # the same ONNX files on Intel's OpenVINO runtime (docs/artifacts/openvino.json, bench/openvino_compare.py)
    "openvino": {"OCR_BACKEND": "openvino"},
}


def http_levers(items, variants: list[str], work: Path, answers_out: dict) -> dict:
    """`answers_out` receives the first variant's answers at concurrency 1."""
    out = {}
    for i, name in enumerate(variants):
        print(f"{name}:", flush=True)
        target = start_ours(work, "onnxruntime", {**BASE_ENV, **VARIANTS[name]})
        try:
            out[name] = bench_http(name[:12], target, items, [1, 4], 1, answers_out if i == 0 else None)
        finally:
            target.stop()
    return out


def _best_of(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def micro_levers(items, answers: dict[str, list[dict]]) -> dict:
    b64 = [base64.b64encode(it.data).decode() for it in items]
    datas = [it.data for it in items]
    res = {}
    res["base64 decode, stdlib"] = _best_of(lambda: [base64.b64decode(s, validate=True) for s in b64])
    res["base64 decode, pybase64"] = _best_of(lambda: [pybase64.b64decode(s, validate=True) for s in b64])
    res["image decode, ours (Pillow, EXIF, alpha, 16-bit)"] = _best_of(lambda: [decode_image(d, 10**9) for d in datas])
    res["image decode, cv2.imdecode"] = _best_of(
        lambda: [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) for d in datas])
    docs = [{"lines": lines, "model": {"det": "ppocrv6_small_det"}} for lines in answers.values()]
    res["response JSON, json.dumps"] = _best_of(lambda: [json.dumps(d, ensure_ascii=False).encode() for d in docs])
    res["response JSON, orjson.dumps"] = _best_of(lambda: [orjson.dumps(d) for d in docs])
    bodies = list(request_bodies(items).values())
    res["request JSON parse, json.loads"] = _best_of(lambda: [json.loads(b) for b in bodies])
    res["request JSON parse, orjson.loads"] = _best_of(lambda: [orjson.loads(b) for b in bodies])
    # detection pre-processing: ours (one pass into a preallocated CHW buffer) vs the common
    # astype/subtract/divide/transpose chain, on the images as decoded
    from preprocess_service.model_spec import load_spec
    from preprocess_service.stages import detection

    spec = load_spec(PROJECT_ROOT / "model_repository", "ppocrv6_small_det")
    imgs = [decode_image(d, 10**9) for d in datas]
    policy = detection.ResizePolicy()
    mean = np.asarray(spec.norm.mean, np.float32)
    std = np.asarray(spec.norm.std, np.float32)

    def chain(img):
        rh, rw = detection.resized_shape(*img.shape[:2], policy)
        r = cv2.resize(img, (rw, rh)).astype(np.float32)
        return ((r * spec.norm.scale - mean) / std).transpose(2, 0, 1)[None].copy()

    res["det pre-processing, ours"] = _best_of(lambda: [detection.preprocess(i, spec, policy) for i in imgs])
    res["det pre-processing, astype/normalise/transpose chain"] = _best_of(lambda: [chain(i) for i in imgs])
    return {k: round(v, 2) for k, v in res.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--images", nargs="+")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "artifacts" / "levers.json")
    args = ap.parse_args(argv)
    items = [it for it in load(args.eval_dir) if not args.images or it.name in args.images]
    answers: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="ocr-levers-") as tmp:
        http = http_levers(items, args.variants, Path(tmp), answers)
    print("micro-measurements:", flush=True)
    micro = micro_levers(items, answers)
    result = {"command": command_line("bench.levers", argv), "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
              "images": len(items), "base_env": BASE_ENV,
              "http": http, "micro_ms_per_pass": micro}
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    base = http[args.variants[0]]
    print(f"\n{len(items)} images; ratios against '{args.variants[0]}'")
    print("| variant | img/s c=1 | img/s c=4 | p50 ms c=1 | peak RSS MiB | CER |")
    print("|---|---|---|---|---|---|")
    for name, r in http.items():
        c1, c4 = r["levels"]["1"], r["levels"]["4"]
        b1, b4 = base["levels"]["1"], base["levels"]["4"]
        print(f"| {name} | {c1['images_per_s']:.2f} ({c1['images_per_s'] / b1['images_per_s']:.2f}x) | "
              f"{c4['images_per_s']:.2f} ({c4['images_per_s'] / b4['images_per_s']:.2f}x) | {c1['p50_ms']:.0f} | "
              f"{r['rss_peak_mb']:.0f} | {r['cer']:.4f} |")
    print("\n| glue, whole image set (best of 5) | ms |\n|---|---|")
    for k, v in micro.items():
        print(f"| {k} | {v} |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
