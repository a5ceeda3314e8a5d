"""The pipeline on onnxruntime against OpenVINO: ms per image over the evaluation images.

Each variant is a ``Pipeline`` on its own backend (``Settings(backend=..., **overrides)``) in a
worker process of its own (``--worker``; with the service's malloc arena limit), so that no
variant's idle thread pools run beside another's work and each resident set is its own. The
parent drives them in turns: one untimed warm-up pass over the images each, then, ``--reps``
times, every image at concurrency 1 (one after another) and at concurrency 4 (``asyncio.gather``
of 4 at a time: the service's pattern of several concurrent single-image requests), one group
(one image, or 4) on every variant before the next group, in a rotating order, so that a
load from other processes on the machine falls on all variants alike.

Figures per variant and concurrency: ``median``, the median over the repetitions of a pass's wall
time / images; ``best``, the sum over the groups of each group's fastest repetition / images (the
least disturbed estimate on a busy machine); ``cpu``, the worker's CPU time per image (median).
``rss_mib``: the worker's resident set after the passes (after ``malloc_trim``) and its peak
(VmHWM). The texts read are compared with the first variant's.

    .venv/bin/python -m bench.openvino_compare [--reps 3] [--variants NAME ...] [--out PATH]

Writes docs/artifacts/openvino.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from evaluation import EVAL_DIR
from evaluation.scoring import load_items
from preprocess_service.backends import create_backend
from preprocess_service.imaging import decode_image
from preprocess_service.memory import rss_bytes, trim
from preprocess_service.options import RequestOptions
from preprocess_service.pipeline import Pipeline
from preprocess_service.settings import PROJECT_ROOT, Settings, available_cores

# name -> Settings overrides (everything else: the service's defaults)
VARIANTS: dict[str, dict[str, object]] = {
    "onnxruntime": {"backend": "onnxruntime"},
    "openvino LATENCY": {"backend": "openvino", "ov_det_performance_hint": "LATENCY", "ov_performance_hint": "LATENCY"},
    "openvino THROUGHPUT": {"backend": "openvino", "ov_det_performance_hint": "THROUGHPUT",
                            "ov_performance_hint": "THROUGHPUT"},
    "openvino det LATENCY, rec THROUGHPUT": {"backend": "openvino", "ov_det_performance_hint": "LATENCY",
                                             "ov_performance_hint": "THROUGHPUT"},
    "openvino defaults + shape cache 5000": {"backend": "openvino", "ov_runtime_cache_capacity": 5000},
    "openvino defaults + precision auto (bf16 here)": {"backend": "openvino", "ov_inference_precision": "auto"},
}
CONCURRENCY = (1, 4)


def _images(eval_dir: Path) -> list[np.ndarray]:
    return [decode_image(it.image.read_bytes(), 10**9) for it in load_items(eval_dir)]


async def _pipeline(name: str) -> Pipeline:
    settings = Settings(api_tokens="unused-in-process", **VARIANTS[name])  # type: ignore[arg-type]
    pipe = await Pipeline.create(settings, create_backend(settings))
    await pipe.warmup()
    return pipe


async def _group(pipe: Pipeline, imgs: list[np.ndarray]) -> tuple[float, float, list[list[str]]]:
    """Wall and CPU seconds to read the images at once, and the texts read."""
    t0, c0 = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*(pipe.read(img, RequestOptions()) for img in imgs))
    return time.perf_counter() - t0, time.process_time() - c0, [[ln.text for ln in r.lines] for r in results]


def _vm(key: str) -> int:
    """A /proc/self/status figure (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    return 0


async def _serve(name: str, eval_dir: Path) -> None:
    """The worker: answers "C START" (read images START.. at concurrency C) and "memory" on stdin."""
    pipe = await _pipeline(name)
    imgs = _images(eval_dir)
    loop = asyncio.get_running_loop()
    print(json.dumps({"describe": pipe.backend.describe()}), flush=True)
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        if line == "memory":
            trim()
            answer: dict = {"after_passes_trimmed": round(rss_bytes() / 2**20), "peak": _vm("VmHWM")}
        else:
            c, start = map(int, line.split())
            wall, cpu, texts = await _group(pipe, imgs[start:start + c])
            answer = {"wall": wall, "cpu": cpu, "texts": texts}
        print(json.dumps(answer), flush=True)
    await pipe.backend.close()


class Worker:
    def __init__(self, name: str, eval_dir: Path):
        env = {**os.environ, "MALLOC_ARENA_MAX": str(Settings(api_tokens="x").malloc_arena_max)}
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.openvino_compare", "--worker", name,
                                      "--eval-dir", str(eval_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=PROJECT_ROOT)
        self.describe = self._answer()["describe"]

    def _answer(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.proc.wait()}")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)


def measure(variants: list[str], n: int, reps: int, eval_dir: Path) -> dict:
    workers = {name: Worker(name, eval_dir) for name in variants}
    try:
        texts = {name: [t for i in range(n) for t in w.ask(f"1 {i}")["texts"]] for name, w in workers.items()}  # warm-up
        # wall[name][c][rep][group], cpu likewise
        wall = {v: {c: [[] for _ in range(reps)] for c in CONCURRENCY} for v in variants}
        cpu = {v: {c: [[] for _ in range(reps)] for c in CONCURRENCY} for v in variants}
        turn = 0
        for rep in range(reps):
            for c in CONCURRENCY:
                for start in range(0, n, c):
                    turn += 1
                    for name in variants[turn % len(variants):] + variants[:turn % len(variants)]:
                        answer = workers[name].ask(f"{c} {start}")
                        wall[name][c][rep].append(answer["wall"])
                        cpu[name][c][rep].append(answer["cpu"])
            print(f"repetition {rep + 1}/{reps}: " + ", ".join(
                f"{v} c=1 {sum(wall[v][1][rep]) / n * 1000:.0f} c=4 {sum(wall[v][4][rep]) / n * 1000:.0f}"
                for v in variants), flush=True)
        memory = {name: w.ask("memory") for name, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
    out = {}
    for name in variants:
        per_c = {}
        for c in CONCURRENCY:
            passes = [sum(r) / n * 1000 for r in wall[name][c]]
            best = sum(min(g) for g in zip(*wall[name][c])) / n * 1000
            cpu_ms = statistics.median(sum(r) / n * 1000 for r in cpu[name][c])
            per_c[str(c)] = {"median": round(statistics.median(passes), 1), "best": round(best, 1),
                             "cpu": round(cpu_ms, 1), "reps": [round(x, 1) for x in passes]}
        out[name] = {
            "settings": dict(VARIANTS[name]),
            "describe": workers[name].describe,
            "images_reading_as_first_variant": sum(a == b for a, b in zip(texts[name], texts[variants[0]])),
            "ms_per_image": per_c,
            "rss_mib": memory[name],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)  # a variant's own process
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "artifacts" / "openvino.json")
    args = ap.parse_args(argv)
    if args.worker:
        asyncio.run(_serve(args.worker, args.eval_dir))
        return 0
    n = len(load_items(args.eval_dir))
    figures = measure(args.variants, n, args.reps, args.eval_dir)
    import onnxruntime
    import openvino

    cpuinfo = Path("/proc/cpuinfo")
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")),
                 "") if cpuinfo.exists() else platform.processor()
    result = {
        "measured_by": "python -m bench.openvino_compare " + " ".join(
            repr(a) if " " in a else a for a in (argv if argv is not None else sys.argv[1:])),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {"cores": os.cpu_count(), "usable_cores": available_cores(), "cpu": model,
                    "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
                    "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
                    "openvino": openvino.__version__, "gpu": False},
        "images": n,
        "repetitions": args.reps,
        "method": "Pipeline.read in one worker process per variant, one untimed warm-up pass each, the variants "
                  "taking turns group by group; concurrency 4 = asyncio.gather of 4 at a time. median: of the passes' "
                  "ms per image; best: each group's fastest repetition; cpu: the worker's CPU ms per image; rss_mib: "
                  "the worker's resident set after the passes (malloc_trim) and its peak. Other processes load the "
                  "machine's cores too: the figures are noisy.",
        "variants": figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"\n{n} images, {args.reps} repetitions, ms per image (noisy: other processes load the {os.cpu_count()} cores)")
    print("| variant | c=1 median | c=1 best | c=4 median | c=4 best | CPU ms c=4 | RSS MiB (peak) | texts as the first |")
    print("|---|---|---|---|---|---|---|---|")
    for name, f in figures.items():
        m, mem = f["ms_per_image"], f["rss_mib"]
        print(f"| {name} | {m['1']['median']} | {m['1']['best']} | {m['4']['median']} | {m['4']['best']} | "
              f"{m['4']['cpu']} | {mem['after_passes_trimmed']} ({mem['peak']}) | "
              f"{f['images_reading_as_first_variant']}/{n} |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
