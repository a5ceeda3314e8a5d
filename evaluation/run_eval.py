"""``make eval``: CER of our service on evaluation/data, beside PaddleOCR's own pipeline.

Our side is the real service over HTTP on loopback (embedded backend). The reference is
PaddleOCR 3.x (engine="onnxruntime") on the same model files, run in its own venv, twice: on
the image files (its own decoding, as its users get it) and on the images as our decoder
produced them (pipeline against pipeline). Prints a table and writes
evaluation/results/eval.json and eval.md.
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
from evaluation.scoring import EvalItem, PredLine, Score, load_items, score_item
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


def run_reference(items: list[EvalItem], ref_python: str, model_set: str, tmp: Path):
    arrays = tmp / "arrays"
    arrays.mkdir()
    for it in items:
        np.save(arrays / f"{it.name}.npy", decode_image(it.image.read_bytes(), 100_000_000))
    out = tmp / "reference.json"
    names = MODEL_SETS[model_set].folders()
    cmd = [ref_python, str(PROJECT_ROOT / "evaluation" / "paddle_reference.py"),
           "--repository", str(PROJECT_ROOT / "model_repository"), "--det", names["det"], "--rec", names["rec"],
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
    args = ap.parse_args(argv)

    items = load_items(args.eval_dir)
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
        ok = micro["ours"][0] <= micro["paddleocr"][0] and micro["ours"][0] <= micro["paddleocr_our_decode"][0]
        print(f"\noverall CER ours {micro['ours'][0]:.4f} vs PaddleOCR {micro['paddleocr'][0]:.4f} "
              f"(on our decode {micro['paddleocr_our_decode'][0]:.4f}): {'OK' if ok else 'WORSE'}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
