"""Two or more configurations of our service, side by side: interleaved repeats, medians, ratios.

A single pass over the images on two shared cores moves by about +-8% from run to run, more than
some levers are worth. This runs each variant in turn, ``--repeats`` times over (A B A B ...),
each time a fresh service driven at one concurrency level over the benchmark's images, and
reports every run, the median per variant and each median's ratio to the first variant's.

A variant is ``NAME=BACKEND[,SETTING=VALUE...]``, BACKEND ``onnxruntime`` or ``triton`` (the
local Triton, as ``ours-triton`` in bench/run.py)::

    .venv/bin/python -m bench.pairs --out docs/artifacts/det-threads.json \\
        "shared under load (default)=onnxruntime" \\
        "all cores under load too=onnxruntime,OCR_ORT_DET_BUSY_INTRA_OP_THREADS=2"

Prints a table and writes the JSON (with the command that wrote it) to ``--out``.
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
from bench.run import bench_http, command_line, machine, start_ours
from evaluation import EVAL_DIR
from preprocess_service.model_sets import DEFAULT_MODEL_SET

BACKENDS = ("onnxruntime", "triton")


def parse_variant(text: str) -> tuple[str, str, dict[str, str]]:
    """``NAME=BACKEND[,KEY=VALUE...]`` -> (name, backend, settings)."""
    name, sep, spec = text.partition("=")
    backend, *pairs = spec.split(",")
    if not sep or not name or backend not in BACKENDS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=BACKEND[,OCR_X=VALUE...], BACKEND one of {BACKENDS}")
    env = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.startswith("OCR_"):
            raise argparse.ArgumentTypeError(f"{text!r}: {pair!r} is not OCR_SETTING=VALUE")
        env[key] = value
    return name, backend, env


def summarise(runs: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    first = statistics.median(next(iter(runs.values())))
    return {name: {"median": round(statistics.median(v), 3), "ratio_to_first": round(statistics.median(v) / first, 3)}
            for name, v in runs.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", type=parse_variant, metavar="NAME=BACKEND[,OCR_X=VALUE...]")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    ap.add_argument("--images", nargs="+", help="only these image names (quick checks)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if len({name for name, _, _ in args.variants}) != len(args.variants):
        ap.error("variant names must differ")
    items = [it for it in load(args.eval_dir) if not args.images or it.name in args.images]
    runs: dict[str, list[float]] = {name: [] for name, _, _ in args.variants}
    cer: dict[str, float] = {}
    answered: dict[str, list[str]] = {name: [] for name, _, _ in args.variants}  # "ok/requests" per run
    service: dict[str, dict] = {}  # what each variant's service said it runs (/readyz)
    short: set[str] = set()  # variants with a run that lost requests
    with tempfile.TemporaryDirectory(prefix="ocr-pairs-") as tmp:
        for rep in range(args.repeats):
            for name, backend, env in args.variants:
                target = start_ours(Path(tmp), backend, env)
                try:
                    r = bench_http(f"{name[:12]} #{rep + 1}", target, items, [args.concurrency], 1)
                finally:
                    target.stop()
                level = r["levels"][str(args.concurrency)]
                runs[name].append(round(level["images_per_s"], 3))
                answered[name].append(f"{level['ok']}/{level['requests']}")
                if level["ok"] != level["requests"]:
                    short.add(name)
                cer.setdefault(name, round(r["cer"], 5))
                service.setdefault(name, r.get("service", {}))
    summary = summarise(runs)
    result = {
        "command": command_line("bench.pairs", argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), "images": len(items),
        "concurrency": args.concurrency, "repeats": args.repeats, "default_model_set": DEFAULT_MODEL_SET,
        "variants": {name: {"backend": backend, "settings": env, "images_per_s": runs[name],
                            "answered_ok": answered[name], "cer": cer[name], "service": service[name],
                            **summary[name]} for name, backend, env in args.variants},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"\n| variant | img/s c={args.concurrency}, each run | median | vs first | CER |\n|---|---|---|---|---|")
    for name, v in result["variants"].items():
        print(f"| {name} | {', '.join(f'{x:.2f}' for x in v['images_per_s'])} | {v['median']:.2f} | "
              f"{v['ratio_to_first']:.2f}x | {v['cer']:.4f} |")
    print(f"wrote {args.out}")
    if short:  # images/s counts answers: a run that lost some is not comparable
        print(f"pairs: some requests were not answered 200: {({n: answered[n] for n in sorted(short)})}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
