"""``make eval``: CER of our service on evaluation/data, beside PaddleOCR's own pipeline.

Our side is the real service over HTTP on loopback (embedded backend), with the model set asked
for (the default: INT8). The reference is PaddleOCR 3.x (engine="onnxruntime") on the float32
models those were built from, as the source wheel publishes them, run in its own venv, twice: on
the image files (its own decoding, as its users get it) and on the images as our decoder
produced them (pipeline against pipeline). Ours passes when its CER is within the accuracy rule
(evaluation.rule) of both reference columns. Prints a table and writes
evaluation/results/eval.json and eval.md. ``--limit N`` scores the first N images only (the
smoke test runs three).
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from evaluation import EVAL_DIR
from evaluation.rule import MAX_MEAN_CER_RISE, MAX_OVERALL_CER_RISE
from evaluation.scoring import EvalItem, PredLine, Score, load_items, score_item
from export_scripts.fetch_models import stage_published
from harness.localserver import LocalServer
from preprocess_service.imaging import decode_image
from preprocess_service.model_sets import DEFAULT_MODEL_SET, MODEL_SETS
from preprocess_service.settings import PROJECT_ROOT


def run_ours(items: list[EvalItem], env: dict[str, str], log: Path) -> tuple[dict[str, list[PredLine]], dict[str, float]]:
    token = secrets.token_urlsafe(16)
    preds, seconds = {}, {}
    with LocalServer({**env, "OCR_API_TOKENS": token}, log_path=log) as srv, httpx.Client(timeout=300) as client:
        for it in items:
            body = {"image": base64.b64encode(it.image.read_bytes()).decode()}
            t = time.perf_counter()
            r = client.post(f"{srv.url}/v1/ocr", json=body, headers={"Authorization": f"Bearer {token}"})
            seconds[it.name] = time.perf_counter() - t
            r.raise_for_status()
            preds[it.name] = [PredLine(ln["text"], ln["box"]) for ln in r.json()["lines"]]
    return preds, seconds


def float_source(folder: str) -> str:
    """The published float32 model a served folder was built from: an INT8 or FP16 folder's
    source, or the folder itself."""
    from export_scripts import fp16, quantize

    for targets in (quantize.TARGETS, fp16.TARGETS):
        if folder in targets:
            return targets[folder].source
    return folder


def run_reference(items: list[EvalItem], ref_python: str, model_set: str, tmp: Path):
    arrays = tmp / "arrays"
    arrays.mkdir()
    for it in items:
        np.save(arrays / f"{it.name}.npy", decode_image(it.image.read_bytes(), 100_000_000))
    out = tmp / "reference.json"
    names = MODEL_SETS[model_set].folders()
    staged = {role: stage_published(float_source(names[role]), tmp / "models" / role, PROJECT_ROOT / "model_repository",
                                    PROJECT_ROOT / ".cache" / "wheels") for role in ("det", "rec")}
    cmd = [ref_python, str(PROJECT_ROOT / "evaluation" / "paddle_reference.py"),
           "--det-dir", str(staged["det"]), "--rec-dir", str(staged["rec"]),
           "--arrays", str(arrays), "--out", str(out), "--images", *[str(it.image) for it in items]]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=open(tmp / "reference.log", "wb"))
    data = json.loads(out.read_text(encoding="utf-8"))
    conv = {k: {n: [PredLine(ln["text"], ln["box"]) for ln in v] for n, v in data[k].items()} for k in ("files", "decoded")}
    return conv, data["seconds"]


def totals(scores: dict[str, Score]) -> tuple[float, float]:
    errors = sum(s.errors for s in scores.values())
    chars = sum(s.gt_chars for s in scores.values())
    return errors / max(chars, 1), float(np.mean([s.cer for s in scores.values()]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    ap.add_argument("--reference-python", help="python of the PaddleOCR venv; omit to score ours only")
    ap.add_argument("--model-set", default=DEFAULT_MODEL_SET, choices=sorted(MODEL_SETS))
    ap.add_argument("--set", action="append", default=[], metavar="OCR_X=V", help="extra service settings")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "evaluation" / "results")
    ap.add_argument("--limit", type=int, default=0, help="score the first N images only (0: all)")
    args = ap.parse_args(argv)

    items = load_items(args.eval_dir)
    if args.limit:
        items = items[:args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    env = {"OCR_MODEL_SET": args.model_set, **dict(kv.split("=", 1) for kv in args.set)}
    ours, our_seconds = run_ours(items, env, args.out / "service.log")
    columns = {"ours": {it.name: score_item(ours[it.name], it.gt_lines, it.rule, it.dont_care) for it in items}}
    ref_seconds = {}
    if args.reference_python:
        with tempfile.TemporaryDirectory() as tmp:
            ref, ref_seconds = run_reference(items, args.reference_python, args.model_set, Path(tmp))
        for key, label in (("files", "paddleocr"), ("decoded", "paddleocr_our_decode")):
            columns[label] = {it.name: score_item(ref[key][it.name], it.gt_lines, it.rule, it.dont_care) for it in items}

    labels = list(columns)
    header = "| image | GT chars | " + " | ".join(f"CER {c}" for c in labels) + " |"
    rows = [header, "|" + "---|" * (2 + len(labels))]
    for it in items:
        gt = columns["ours"][it.name].gt_chars
        rows.append(f"| {it.name} | {gt} | " + " | ".join(f"{columns[c][it.name].cer:.3f}" for c in labels) + " |")
    micro = {c: totals(columns[c]) for c in labels}
    rows.append("| **overall (chars-weighted)** | " + str(sum(s.gt_chars for s in columns['ours'].values())) + " | "
                + " | ".join(f"**{micro[c][0]:.4f}**" for c in labels) + " |")
    rows.append("| **mean per image** | | " + " | ".join(f"**{micro[c][1]:.4f}**" for c in labels) + " |")
    table = "\n".join(rows)
    print(table)
    summary = {
        "model_set": args.model_set,
        "reference_models": {role: float_source(MODEL_SETS[args.model_set].folders()[role] or "") for role in ("det", "rec")},
        "settings": env,
        "overall_cer": {c: micro[c][0] for c in labels},
        "mean_image_cer": {c: micro[c][1] for c in labels},
        "per_image": {c: {n: {"cer": s.cer, "errors": s.errors, "gt_chars": s.gt_chars} for n, s in columns[c].items()} for c in labels},
        "predictions": {"ours": {n: [p.text for p in v] for n, v in ours.items()}},
        "seconds": {"ours": our_seconds, **({"paddleocr": ref_seconds} if ref_seconds else {})},
    }
    (args.out / "eval.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    (args.out / "eval.md").write_text(table + "\n", encoding="utf-8")
    if "paddleocr" in micro:
        ok = all(micro["ours"][0] <= micro[ref][0] + MAX_OVERALL_CER_RISE
                 and micro["ours"][1] <= micro[ref][1] + MAX_MEAN_CER_RISE for ref in ("paddleocr", "paddleocr_our_decode"))
        print(f"\noverall CER ours {micro['ours'][0]:.4f} vs PaddleOCR {micro['paddleocr'][0]:.4f} "
              f"(on our decode {micro['paddleocr_our_decode'][0]:.4f}), rule +{MAX_OVERALL_CER_RISE} overall and "
              f"+{MAX_MEAN_CER_RISE} mean per image: {'OK' if ok else 'WORSE'}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
