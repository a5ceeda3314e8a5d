"""The cross-request batcher against none, on the real HTTP service, at concurrency 1, 4 and 8.

    python -m bench.batcher                      # writes docs/artifacts/batcher.json
    python -m bench.batcher --repeats 1 --images tess_phototest.png label_m.png --out /tmp/b.json

Three variants of the embedded backend, each a fresh service driven over the benchmark's images
at every level, taking turns (A B C A B C ...) ``--repeats`` times:

- ``buckets off``: today's CPU default (shapes follow the pages);
- ``buckets, no batcher``: ``OCR_SHAPE_BUCKETS=on``, each request's batches run alone;
- ``buckets + batcher``: the same with ``OCR_BATCH_DELAY_US`` (default 2000): a model call waits
  up to that long for calls of the same shape from other requests and runs with them.

Reports images/s, p50 and p95 per level (medians over the repeats) and each variant's ratio to
``buckets, no batcher``; the batcher must not cost latency at concurrency 1 beyond its delay.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.dataset import load
from bench.provenance import provenance
from bench.run import bench_http, command_line, machine, start_ours
from evaluation import EVAL_DIR
from preprocess_service.model_sets import DEFAULT_MODEL_SET

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "docs" / "artifacts" / "batcher.json"
LEVELS = (1, 4, 8)
BASELINE = "buckets, no batcher"


def variants(delay_us: int) -> dict[str, dict[str, str]]:
    return {
        "buckets off": {"OCR_SHAPE_BUCKETS": "off"},
        BASELINE: {"OCR_SHAPE_BUCKETS": "on", "OCR_BATCH_DELAY_US": "0"},
        "buckets + batcher": {"OCR_SHAPE_BUCKETS": "on", "OCR_BATCH_DELAY_US": str(delay_us)},
    }


def summarise(runs: dict[str, list[dict]], levels: tuple[int, ...]) -> dict[str, dict]:
    """Per variant and level: the median of each figure over the repeats, and the throughput
    ratio to the baseline's median."""
    out: dict[str, dict] = {}
    for name, reps in runs.items():
        out[name] = {}
        for c in levels:
            per = [r[str(c)] for r in reps]
            out[name][str(c)] = {k: round(statistics.median(p[k] for p in per), 2)
                                 for k in ("images_per_s", "p50_ms", "p95_ms")}
    for name in out:
        for c in levels:
            base = out[BASELINE][str(c)]["images_per_s"] if BASELINE in out else None
            out[name][str(c)]["ratio_to_baseline"] = round(out[name][str(c)]["images_per_s"] / base, 3) if base else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--delay-us", type=int, default=2000)
    ap.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    ap.add_argument("--images", nargs="+", help="only these image names (quick checks)")
    ap.add_argument("--out", type=Path, default=ARTIFACT)
    args = ap.parse_args(argv)
    levels = tuple(args.levels)
    items = [it for it in load(EVAL_DIR) if not args.images or it.name in args.images]
    chosen = variants(args.delay_us)
    runs: dict[str, list[dict]] = {name: [] for name in chosen}
    cer: dict[str, float] = {}
    lost = []
    with tempfile.TemporaryDirectory(prefix="ocr-batcher-") as tmp:
        for rep in range(args.repeats):
            for name, env in chosen.items():
                target = start_ours(Path(tmp), "onnxruntime", env)
                try:
                    r = bench_http(f"{name[:12]} #{rep + 1}", target, items, list(levels), 1)
                finally:
                    target.stop()
                runs[name].append({c: {k: v for k, v in lv.items() if k in ("images_per_s", "p50_ms", "p95_ms",
                                                                              "ok", "requests")}
                                   for c, lv in r["levels"].items()})
                lost += [f"{name} c={c}" for c, lv in r["levels"].items() if lv["ok"] != lv["requests"]]
                cer.setdefault(name, round(r["cer"], 5))
    summary = summarise(runs, levels)
    doc = {"command": command_line("bench.batcher", argv), "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": machine(), "images": len(items), "levels": list(levels), "repeats": args.repeats,
           **provenance(DEFAULT_MODEL_SET), "delay_us": args.delay_us, "baseline": BASELINE,
           "variants": {name: {"settings": chosen[name], "runs": runs[name], "cer": cer[name],
                               "median": summary[name]} for name in chosen}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"\n| variant | c | img/s | p50 ms | p95 ms | vs {BASELINE} |\n|---|---|---|---|---|---|")
    for name in chosen:
        for c in levels:
            m = summary[name][str(c)]
            print(f"| {name} | {c} | {m['images_per_s']:.2f} | {m['p50_ms']:.0f} | {m['p95_ms']:.0f} | "
                  f"{m['ratio_to_baseline']:.2f}x |")
    print(f"wrote {args.out}")
    if lost:
        print(f"batcher: requests not answered 200 in {lost}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
