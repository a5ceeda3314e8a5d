"""The embedded backend on a GPU: onnxruntime's CUDA provider, cuDNN's convolution search compared.

    python -m bench.gpu --prepare .gpu/dataset.pkl     # here: the benchmark's images, encoded once
    python -m bench.gpu --dataset .gpu/dataset.pkl     # on a GPU machine (onnxruntime-gpu installed)

The service's own ``Pipeline`` (decode, detection, crops, recognition) in one process, no HTTP,
on the benchmark's 35 images (the evaluation set and the rendered labels), once per
``OCR_ORT_CUDA_CUDNN_CONV_ALGO_SEARCH`` value:

- ``cold``: the first pass over the images in a fresh process state for that setting, where
  every new input shape pays cuDNN's search (detection inputs change with every page size,
  recognition batches with every crop width bucket);
- ``warm``: the same images again, one at a time (median and p95 ms per image);
- throughput at several concurrency levels (requests in flight in one process), images/s;
- the text read, scored by ``evaluation/scoring.py`` and compared with the CPU provider's
  reading of the same images on the same machine.

Before the pipeline runs, ``shape_probe`` times one bare detection session on one shape again
and again and on five shapes in turn: onnxruntime >= 1.20 rebuilds its cuDNN convolution plans
whenever a Conv sees another shape than on its previous run (microsoft/onnxruntime#23006), and
an OCR service never sends the same shape twice in a row.

Writes ``docs/artifacts/gpu-bench.json`` (``--out``) step by step, so a run cut short keeps
what it measured. The GPU machine needs onnxruntime-gpu (requirements-gpu.txt) and the CUDA 13 /
cuDNN 9 libraries; nothing else of the GPU image.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ALGOS = ("HEURISTIC", "EXHAUSTIVE")


def prepare(out: Path) -> None:
    from bench.dataset import load
    from evaluation import EVAL_DIR

    items = load(EVAL_DIR)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pickle.dumps([
        {"name": it.name, "data": it.data, "gt": it.gt_lines, "rule": it.rule,
         "dont_care": [list(p.exterior.coords) for p in it.dont_care]}
        for it in items]))
    print(f"{len(items)} images -> {out}")


def make_pipeline(repository: Path, providers: list[str], algo: str, workers: int):
    from preprocess_service.backends import create_backend
    from preprocess_service.pipeline import Pipeline
    from preprocess_service.settings import Settings

    settings = Settings(api_tokens="unused-in-process", model_repository=repository, model_set="ppocrv6_small",  # type: ignore[arg-type]
                        ort_providers=providers, ort_cuda_cudnn_conv_algo_search=algo,  # type: ignore[arg-type]
                        ort_inference_workers=workers)
    backend = create_backend(settings)
    pipe = asyncio.run(Pipeline.create(settings, backend))
    return pipe, backend


def _read_all(pipe, items: list[dict], concurrency: int, rounds: int = 1) -> tuple[float, list[float], list]:
    """Every item ``rounds`` times with ``concurrency`` reads in flight; wall s, ms per read, results."""
    from preprocess_service.imaging import decode_image
    from preprocess_service.pipeline import PipelineOptions

    async def go():
        sem = asyncio.Semaphore(concurrency)
        ms: list[float] = []
        results: list = [None] * len(items)

        async def one(i: int):
            async with sem:
                t = time.perf_counter()
                img = decode_image(items[i]["data"], 10**8)
                res = await pipe.read(img, PipelineOptions())
                ms.append((time.perf_counter() - t) * 1000)
                results[i] = res

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for _ in range(rounds) for i in range(len(items))))
        return time.perf_counter() - t0, ms, results

    return asyncio.run(go())


def _score(items: list[dict], results: list) -> dict:
    from shapely.geometry import Polygon

    from evaluation.scoring import PredLine, score_item

    errors = chars = 0
    per_image = []
    for it, res in zip(items, results, strict=True):
        s = score_item([PredLine(ln.text, ln.box.tolist()) for ln in res.lines], it["gt"], it["rule"],
                       [Polygon(p) for p in it["dont_care"]])
        errors, chars = errors + s.errors, chars + s.gt_chars
        per_image.append(s.cer)
    return {"cer": round(errors / max(chars, 1), 4), "mean_image_cer": round(float(np.mean(per_image)), 4)}


def _texts(results: list) -> list[list[str]]:
    return [[ln.text for ln in r.lines] for r in results]


def _gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return "unknown"


def shape_probe(repository: Path, algo: str, runs: int = 4) -> dict:
    """One detection session, bare onnxruntime: the same input shape run again and again, then
    five shapes taken in turn. onnxruntime >= 1.20 rebuilds its cuDNN convolution plans when a
    Conv sees another shape than on its last run (microsoft/onnxruntime#23006), so shapes in
    turn can cost a first-run each time; this shows whether the installed build does."""
    import onnxruntime as ort

    from preprocess_service.backends.onnxruntime_backend import CudaOptions

    path = repository / "ppocrv6_small_det" / "1" / "model.onnx"
    opts = CudaOptions(cudnn_conv_algo_search=algo).provider_options()  # type: ignore[arg-type]
    sess = ort.InferenceSession(str(path), providers=[("CUDAExecutionProvider", opts)])
    name = sess.get_inputs()[0].name
    shapes = [(1, 480 + 32 * i, 640, 3) for i in range(5)]

    def run(shape) -> float:
        t = time.perf_counter()
        sess.run(None, {name: np.zeros(shape, np.uint8)})
        return round((time.perf_counter() - t) * 1000, 1)

    same = [run(shapes[0]) for _ in range(runs)]
    for sh in shapes[1:]:
        run(sh)  # every shape seen once
    turns = [run(sh) for _ in range(runs) for sh in shapes]
    return {"same_shape_ms": same, "shapes_in_turn_ms": turns,
            "shapes_in_turn_median_ms": statistics.median(turns), "provider": sess.get_providers()[0]}


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def measure(items: list[dict], repository: Path, concurrency: list[int], rounds: int, workers: int,
            algos: list[str], out_path: Path) -> dict:
    """Each step is written to ``out_path`` as soon as it is measured: a run cut short keeps them."""
    import onnxruntime as ort

    doc: dict = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"gpu": _gpu_name(), "cpu_cores": os.cpu_count(), "python": platform.python_version(),
                    "onnxruntime": ort.__version__},
        "images": len(items),
        "rounds": rounds,
        "note": "in-process Pipeline (decode + detection + crops + recognition), no HTTP; default models and "
                "settings except the provider; cold = first pass over the images after the sessions were made",
        "shape_probe": {},
        "results": {},
    }
    for algo in algos:
        doc["shape_probe"][algo] = shape_probe(repository, algo)
        print(algo, json.dumps(doc["shape_probe"][algo]), flush=True)
        _write(out_path, doc)
    out = doc["results"]
    cpu_pipe, _ = make_pipeline(repository, ["CPUExecutionProvider"], "HEURISTIC", workers)
    _, cpu_ms, cpu_res = _read_all(cpu_pipe, items, 1)
    cpu_texts = _texts(cpu_res)
    out["cpu_provider"] = {"ms_per_image_median": round(statistics.median(cpu_ms), 1), **_score(items, cpu_res)}
    print(f"CPU provider: {statistics.median(cpu_ms):.0f} ms/img median", flush=True)
    _write(out_path, doc)
    for algo in algos:
        pipe, backend = make_pipeline(repository, ["CUDAExecutionProvider"], algo, workers)
        t_cold, cold_ms, _ = _read_all(pipe, items, 1)
        _, warm_ms, warm_res = _read_all(pipe, items, 1)
        row = out[algo] = {
            "providers": backend.describe(),
            "cold_pass_s": round(t_cold, 2),
            "cold_ms_per_image_median": round(statistics.median(cold_ms), 1),
            "cold_ms_per_image_max": round(max(cold_ms), 1),
            "warm_ms_per_image_median": round(statistics.median(warm_ms), 1),
            "warm_ms_per_image_p95": round(float(np.percentile(warm_ms, 95)), 1),
            **_score(items, warm_res),
            "same_text_as_cpu": sum(a == b for a, b in zip(_texts(warm_res), cpu_texts, strict=True)),
            "throughput": {},
        }
        print(f"{algo}: cold pass {t_cold:.1f} s, warm median {statistics.median(warm_ms):.1f} ms", flush=True)
        _write(out_path, doc)
        for c in concurrency:
            wall, ms, _ = _read_all(pipe, items, c, rounds)
            row["throughput"][str(c)] = {"img_s": round(len(ms) / wall, 2),
                                         "p50_ms": round(statistics.median(ms), 1),
                                         "p95_ms": round(float(np.percentile(ms, 95)), 1)}
            print(f"{algo} c={c}: {len(ms) / wall:.1f} img/s", flush=True)
            _write(out_path, doc)
        del pipe, backend
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", type=Path, help="write the encoded images here and stop")
    ap.add_argument("--dataset", type=Path, help="images written by --prepare")
    ap.add_argument("--model-repository", type=Path, default=PROJECT_ROOT / "model_repository")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--rounds", type=int, default=3, help="passes over the images per concurrency level")
    ap.add_argument("--workers", type=int, default=0, help="OCR_ORT_INFERENCE_WORKERS (0: the default)")
    ap.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS), help="cuDNN searches compared")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "artifacts" / "gpu-bench.json")
    args = ap.parse_args(argv)
    if args.prepare:
        prepare(args.prepare)
        return 0
    if not args.dataset:
        ap.error("--dataset is required (make it with --prepare)")
    items = pickle.loads(args.dataset.read_bytes())  # noqa: S301 - our own file, written by --prepare
    doc = measure(items, args.model_repository, args.concurrency, args.rounds, args.workers, args.algos, args.out)
    print(json.dumps(doc["results"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
