"""Shape buckets: the input shapes each model receives, and what bucketing does to accuracy.

    python -m bench.shapes                          # writes docs/artifacts/shape-buckets.json
    python -m bench.shapes --model-set ppocrv6_small --out /tmp/x.json

Runs the service's own pipeline in-process (embedded onnxruntime, CPU) over the evaluation set,
the benchmark's rendered labels, held-out labels (other texts and sizes) and pages of random
sizes (evaluation images scaled to random sizes), once with ``OCR_SHAPE_BUCKETS=off`` and once
with ``on``. A recorder below the batch padding sees every call a model really gets; the table
gives the distinct input shapes per model, the character CER, the mean per-image CER, and
whether every rendered label reads exactly. Targets (docs/gpu.md): detection at most 8 shapes,
recognition at most 16; CER within +0.002 and mean per-image CER within +0.005 of buckets off.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.dataset import BenchItem, load, render_label
from evaluation import EVAL_DIR
from evaluation.rule import MAX_MEAN_CER_RISE, MAX_OVERALL_CER_RISE
from evaluation.scoring import PredLine, Rule, score_item
from preprocess_service.backends import create_backend
from preprocess_service.backends.base import InferenceBackend, ModelIO
from preprocess_service.imaging import decode_image
from preprocess_service.options import RequestOptions
from preprocess_service.pipeline import Pipeline
from preprocess_service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "docs" / "artifacts" / "shape-buckets.json"
TARGETS = {"det": 8, "rec": 16}
# the accuracy rule (evaluation/rule.py): buckets may cost at most this much
MAX_CER_DELTA, MAX_MEAN_CER_DELTA = MAX_OVERALL_CER_RISE, MAX_MEAN_CER_RISE

_HELD_OUT_WORDS = ("tracking", "Hamburg", "net", "VAT", "batch", "serial", "3.75", "kg", "lot", "Q4",
                   "warehouse", "return", "pallet", "item", "carrier", "9031-77", "invoice", "due")


class ShapeRecorder(InferenceBackend):
    """Delegates to a real backend and records the input shapes of every call, per model."""

    def __init__(self, inner: InferenceBackend):
        self.inner = inner
        self.name = inner.name
        self.remote = inner.remote
        self.shapes: dict[str, set[tuple[int, ...]]] = {}

    async def load(self, models, required=True):
        return await self.inner.load(models, required)

    def io(self, model: str) -> ModelIO:
        return self.inner.io(model)

    async def run(self, model, inputs, outputs=None):
        first = self.inner.io(model).inputs[0]
        self.shapes.setdefault(model, set()).add(tuple(inputs[first].shape))
        return await self.inner.run(model, inputs, outputs)

    async def ready(self):
        return await self.inner.ready()

    def describe(self):
        return self.inner.describe()

    async def close(self):
        await self.inner.close()


def held_out_labels(seed: int = 7, count: int = 6) -> list[BenchItem]:
    """Rendered labels that share no text or size with the benchmark's own."""
    rng = random.Random(seed)
    items = []
    for i in range(count):
        size = rng.choice((18, 24, 30, 34, 46))
        lines = [" ".join(rng.choice(_HELD_OUT_WORDS) for _ in range(rng.randint(1, 6)))
                 for _ in range(rng.randint(1, 9))]
        im = render_label(size, lines)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        items.append(BenchItem(f"heldout_{i}.png", buf.getvalue(), lines, Rule(), [], im.size))
    return items


def random_pages(items: list[BenchItem], seed: int = 11, count: int = 8) -> list[BenchItem]:
    """Evaluation images scaled to random sizes (aspect ratios kept within 0.8-1.25x), with
    their own ground truth; only images without do-not-care regions (those are in pixels)."""
    rng = random.Random(seed)
    pool = [it for it in items if not it.dont_care and it.rule == Rule()]
    out = []
    for i in range(count):
        it = rng.choice(pool)
        with Image.open(io.BytesIO(it.data)) as im:
            im = im.convert("RGB")
            scale = rng.uniform(0.6, 2.5)
            w = max(16, int(im.width * scale * rng.uniform(0.9, 1.1)))
            h = max(16, int(im.height * scale * rng.uniform(0.9, 1.1)))
            buf = io.BytesIO()
            im.resize((w, h), Image.Resampling.BICUBIC).save(buf, format="PNG")
        out.append(BenchItem(f"random_{i}_{it.name}", buf.getvalue(), it.gt_lines, it.rule, [], (w, h)))
    return out


def dataset() -> list[BenchItem]:
    items = load(EVAL_DIR)
    return items + held_out_labels() + random_pages(items)


@dataclass
class Reading:
    shapes: dict[str, list[list[int]]]  # role -> distinct input shapes
    cer: float
    mean_image_cer: float
    labels_exact: bool
    texts: dict[str, list[str]]
    seconds: float
    merged_runs: int = 0


def read_all(settings: Settings, items: list[BenchItem], concurrency: int = 1) -> Reading:
    """Every item through the pipeline, ``concurrency`` at a time; shapes seen below the padding."""

    async def go() -> Reading:
        backend = create_backend(settings)
        recorder = ShapeRecorder(getattr(backend, "inner", backend))
        if hasattr(backend, "inner"):
            backend.inner = recorder  # type: ignore[attr-defined]
        else:
            backend = recorder
        pipe = await Pipeline.create(settings, backend)
        recorder.shapes.clear()  # not the start-up checks
        sem = asyncio.Semaphore(concurrency)
        results: dict[str, list] = {}

        async def one(it: BenchItem) -> None:
            async with sem:
                res = await pipe.read(decode_image(it.data, 10**8), RequestOptions())
                results[it.name] = res.lines

        t0 = time.perf_counter()
        await asyncio.gather(*(one(it) for it in items))
        seconds = time.perf_counter() - t0
        merged = getattr(backend, "merged_runs", 0)
        await backend.close()
        roles = {v: k for k, v in pipe.model_names.items() if v}
        errors = chars = 0
        per_image = []
        exact = True
        for it in items:
            lines = results[it.name]
            s = score_item([PredLine(ln.text, ln.box.tolist()) for ln in lines], it.gt_lines, it.rule, it.dont_care)
            errors, chars = errors + s.errors, chars + s.gt_chars
            per_image.append(s.cer)
            if it.name.startswith(("label_", "heldout_")):
                exact = exact and [ln.text for ln in lines] == list(it.gt_lines)
        return Reading(
            shapes={roles[m]: sorted(list(s) for s in shapes) for m, shapes in recorder.shapes.items()},
            cer=round(errors / max(chars, 1), 4), mean_image_cer=round(float(np.mean(per_image)), 4),
            labels_exact=exact, texts={k: [ln.text for ln in v] for k, v in results.items()},
            seconds=round(seconds, 2), merged_runs=merged)

    return asyncio.run(go())


def compare(model_set: str, items: list[BenchItem]) -> dict:
    common = {"api_tokens": "unused-in-process", "model_set": model_set}
    off = read_all(Settings(shape_buckets="off", **common), items)  # type: ignore[arg-type]
    on = read_all(Settings(shape_buckets="on", **common), items)  # type: ignore[arg-type]
    row: dict = {"model_set": model_set}
    for name, r in (("off", off), ("on", on)):
        row[name] = {"distinct_shapes": {k: len(v) for k, v in r.shapes.items()}, "cer": r.cer,
                     "mean_image_cer": r.mean_image_cer, "labels_exact": r.labels_exact, "seconds": r.seconds}
    row["on"]["shapes"] = on.shapes
    row["same_text_images"] = sum(off.texts[k] == on.texts[k] for k in off.texts)
    row["cer_delta"] = round(on.cer - off.cer, 4)
    row["mean_image_cer_delta"] = round(on.mean_image_cer - off.mean_image_cer, 4)
    row["within_rule"] = bool(row["cer_delta"] <= MAX_CER_DELTA and row["mean_image_cer_delta"] <= MAX_MEAN_CER_DELTA
                              and (on.labels_exact or not off.labels_exact))
    row["within_shape_targets"] = all(len(on.shapes.get(k, [])) <= n for k, n in TARGETS.items())
    return row


def compare_fp16(items: list[BenchItem]) -> dict:
    """The FP16 set against the float set it was converted from, both with buckets on (as on a
    GPU), on onnxruntime's CPU provider: the accuracy rule, and the text image by image."""
    common = {"api_tokens": "unused-in-process", "shape_buckets": "on"}
    full = read_all(Settings(model_set="ppocrv6_small", **common), items)  # type: ignore[arg-type]
    half = read_all(Settings(model_set="ppocrv6_small_fp16", **common), items)  # type: ignore[arg-type]
    row = {name: {"cer": r.cer, "mean_image_cer": r.mean_image_cer, "labels_exact": r.labels_exact}
           for name, r in (("ppocrv6_small", full), ("ppocrv6_small_fp16", half))}
    row["same_text_images"] = sum(full.texts[k] == half.texts[k] for k in full.texts)
    row["cer_delta"] = round(half.cer - full.cer, 4)
    row["mean_image_cer_delta"] = round(half.mean_image_cer - full.mean_image_cer, 4)
    row["within_rule"] = bool(row["cer_delta"] <= MAX_CER_DELTA and row["mean_image_cer_delta"] <= MAX_MEAN_CER_DELTA
                              and (half.labels_exact or not full.labels_exact))
    return row


def main(argv: list[str] | None = None) -> int:
    from bench.run import command_line, machine

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-set", action="append", help="model sets to compare (default: ppocrv6_small_int8 "
                    "and ppocrv6_small)")
    ap.add_argument("--out", type=Path, default=ARTIFACT)
    ap.add_argument("--images", type=int, default=0, help="the first N images only (a smoke run; 0: all)")
    args = ap.parse_args(argv)
    items = dataset()[:args.images or None]
    defaults = Settings(api_tokens="unused-in-process")  # type: ignore[arg-type]
    doc = {"command": command_line("bench.shapes", argv), "machine": machine(),
           "date": time.strftime("%Y-%m-%d"), "images": len(items), "targets": TARGETS,
           "rule": {"cer": MAX_CER_DELTA, "mean_image_cer": MAX_MEAN_CER_DELTA},
           "settings": {"det_canvases": defaults.det_canvases, "det_batch_sizes": defaults.det_batch_sizes,
                        "rec_width_buckets": defaults.rec_width_buckets, "rec_batch_sizes": defaults.rec_batch_sizes,
                        "rec_batch_size": defaults.rec_batch_size},
           "rows": []}
    print(f"{'model set':24} {'buckets':8} {'det':>4} {'rec':>4} {'CER':>7} {'mean CER':>9} labels  s")
    for ms in args.model_set or ["ppocrv6_small_int8", "ppocrv6_small"]:
        row = compare(ms, items)
        doc["rows"].append(row)
        for k in ("off", "on"):
            r = row[k]
            print(f"{ms:24} {k:8} {r['distinct_shapes'].get('det', 0):4} {r['distinct_shapes'].get('rec', 0):4} "
                  f"{r['cer']:7.4f} {r['mean_image_cer']:9.4f} {str(r['labels_exact']):7} {r['seconds']}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    doc["fp16"] = fp16 = compare_fp16(items)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"fp16 against float32 (buckets on): CER {fp16['ppocrv6_small_fp16']['cer']:.4f} against "
          f"{fp16['ppocrv6_small']['cer']:.4f}, {fp16['same_text_images']}/{len(items)} images read the same, "
          f"within the rule: {fp16['within_rule']}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
