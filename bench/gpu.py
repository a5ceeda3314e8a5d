"""The GPU benchmark: one runner, fed the staged pieces, that writes its artifact step by step.

    make gpu-stage                                  # here: wheels, models, images -> .gpu-stage/load-*
    bash bench/gpu_run.sh                           # there: assemble, install, then this module
    python -m bench.gpu --stage DIR --out gpu-bench.json [--budget-s 330]
    python -m bench.gpu --stage DIR --out x.json --dry-run      # CPU provider, 3 images (make test)

The service's own ``Pipeline`` in-process (decode, detection, crops, recognition; no HTTP) on the
benchmark's images (the evaluation set and the rendered labels), on onnxruntime's CUDA provider.
Steps, each written to ``--out`` as soon as it is measured (a run cut short keeps what it has):

1. ``environment``: versions, the GPU (NVML), the providers onnxruntime offers;
2. ``cpu_reading``: the same images through the CPU provider (what the GPU readings are compared with);
3. ``shape_probe``: one bare detection session, one shape again and again against five shapes in
   turn (onnxruntime >= 1.20 rebuilds its cuDNN plans on every change of shape, #23006);
4. ``variants``: the pipeline with shapes that follow the pages (no buckets, as before shape
   buckets existed), with shape buckets (every bucket warmed at start, the cross-request batcher
   on), and with buckets on the FP16 set; each: start-up and warm-up time, one pass for accuracy
   (CER against the ground truth, images that read as on the CPU), then concurrency 1, 8 and 32
   for a fixed time each: images/s, p50/p95 ms, CPU ms per page, GPU busy % (NVML, every 50 ms);
5. ``processes``: four processes sharing the GPU, the bucketed float32 pipeline at concurrency 8
   each, started together: their images/s added up, GPU busy %.

``--budget-s`` bounds the whole run (the GPU machine is lent for minutes): a step that no longer
fits is recorded as skipped. Targets (docs/gpu.md): one process >= 60 img/s, four >= 200 img/s,
p50 at concurrency 1 <= 50 ms, GPU busy >= 60 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 8, 32)
PROCESSES = 4
TARGETS = {"img_s_one_process": 60, "img_s_four_processes": 200, "p50_ms_c1": 50, "gpu_busy_pct": 60}
# name -> (model set, settings): the pipeline as it was before shape buckets, with them, on FP16
VARIANTS: dict[str, tuple[str, dict]] = {
    "no buckets": ("ppocrv6_small", {"shape_buckets": "off", "rec_batch_size": 16}),
    "buckets": ("ppocrv6_small", {"shape_buckets": "on", "batch_delay_us": 2000, "rec_batch_size": 16}),
    "buckets fp16": ("ppocrv6_small_fp16", {"shape_buckets": "on", "batch_delay_us": 2000, "rec_batch_size": 16}),
}


def prepare(out: Path) -> None:
    """The benchmark's images with their ground truth, encoded once (bench/gpu_stage.py sends it)."""
    from bench.dataset import load
    from evaluation import EVAL_DIR

    items = load(EVAL_DIR)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pickle.dumps([
        {"name": it.name, "data": it.data, "gt": it.gt_lines, "rule": it.rule,
         "dont_care": [list(p.exterior.coords) for p in it.dont_care]}
        for it in items]))
    print(f"{len(items)} images -> {out}")


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def fits(self, seconds: float) -> bool:
        return self.left() >= seconds


class GpuSampler:
    """GPU busy % through NVML every ``interval`` s (None without NVML or a GPU)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._handle = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._nvml = pynvml
        except Exception:  # noqa: BLE001 - no NVML, no GPU: nothing to sample
            self._handle = None

    def __enter__(self) -> GpuSampler:
        if self._handle is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def __exit__(self, *exc) -> None:
        self._stop.set()

    @property
    def busy_pct(self) -> float | None:
        return round(float(np.mean(self.samples)), 1) if self.samples else None


def environment(providers: list[str]) -> dict:
    import onnxruntime as ort

    env = {"python": platform.python_version(), "onnxruntime": ort.__version__, "numpy": np.__version__,
           "cpu_cores": os.cpu_count(), "available_providers": ort.get_available_providers(), "asked": providers,
           "gpu": None, "driver": None}
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(h)
        env["gpu"] = name.decode() if isinstance(name, bytes) else name
        drv = pynvml.nvmlSystemGetDriverVersion()
        env["driver"] = drv.decode() if isinstance(drv, bytes) else drv
        env["gpu_memory_gib"] = round(pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**30, 1)
    except Exception as exc:  # noqa: BLE001
        env["nvml"] = f"unavailable: {type(exc).__name__}"
    return env


def make_pipeline(repository: Path, providers: list[str], model_set: str, **settings):
    from preprocess_service.backends import create_backend
    from preprocess_service.pipeline import Pipeline
    from preprocess_service.settings import Settings

    s = Settings(api_tokens="unused-in-process", model_repository=repository, model_set=model_set,  # type: ignore[arg-type]
                 ort_providers=providers, **settings)
    backend = create_backend(s)

    async def build():
        pipe = await Pipeline.create(s, backend)
        await pipe.warmup()  # the service's own start-up: every bucket on a GPU
        return pipe

    return asyncio.run(build()), backend


def drive(pipe, items: list[dict], concurrency: int, seconds: float, one_pass: bool = False) -> dict:
    """``concurrency`` reads in flight over the images in turn, for ``seconds`` (``one_pass``: each
    image once, stopping early at ``seconds``). Images/s, p50/p95 ms, CPU ms per page, results."""
    from preprocess_service.imaging import decode_image
    from preprocess_service.options import RequestOptions

    results: dict[int, list] = {}
    lat: list[float] = []

    async def go() -> float:
        nxt = 0
        stop = time.monotonic() + seconds

        async def worker():
            nonlocal nxt
            while time.monotonic() < stop and not (one_pass and nxt >= len(items)):
                i = nxt % len(items)
                nxt += 1
                t = time.perf_counter()
                res = await pipe.read(decode_image(items[i]["data"], 10**8), RequestOptions())
                lat.append((time.perf_counter() - t) * 1000)
                results.setdefault(i, res.lines)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall = asyncio.run(go())
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    n = len(lat)
    return {"images": n, "wall_s": round(wall, 2), "img_s": round(n / wall, 2) if wall else 0.0,
            "p50_ms": round(statistics.median(lat), 1) if lat else None,
            "p95_ms": round(float(np.percentile(lat, 95)), 1) if lat else None,
            "cpu_ms_per_page": round(cpu_s * 1000 / n, 1) if n else None, "_results": results}


def score(items: list[dict], results: dict[int, list], cpu_texts: dict[int, list[str]] | None = None) -> dict:
    from shapely.geometry import Polygon

    from evaluation.scoring import PredLine, score_item

    errors = chars = 0
    per_image = []
    for i, lines in sorted(results.items()):
        it = items[i]
        s = score_item([PredLine(ln.text, ln.box.tolist()) for ln in lines], it["gt"], it["rule"],
                       [Polygon(p) for p in it["dont_care"]])
        errors, chars = errors + s.errors, chars + s.gt_chars
        per_image.append(s.cer)
    out = {"scored_images": len(results), "cer": round(errors / max(chars, 1), 4),
           "mean_image_cer": round(float(np.mean(per_image)), 4) if per_image else None}
    if cpu_texts is not None:
        out["same_text_as_cpu"] = sum([ln.text for ln in lines] == cpu_texts.get(i) for i, lines in results.items())
    return out


def shape_probe(repository: Path, providers: list[str], runs: int = 4) -> dict:
    """One detection session, bare onnxruntime: the same input shape again and again, then five
    shapes taken in turn."""
    import onnxruntime as ort

    from preprocess_service.backends.onnxruntime_backend import CUDA_PROVIDER, CudaOptions

    path = repository / "ppocrv6_small_det" / "1" / "model.onnx"
    chosen = [(p, CudaOptions().provider_options()) if p == CUDA_PROVIDER else p for p in providers]
    sess = ort.InferenceSession(str(path), providers=chosen)
    name = sess.get_inputs()[0].name
    shapes = [(1, 480 + 32 * i, 640, 3) for i in range(5)]

    def run(shape) -> float:
        t = time.perf_counter()
        sess.run(None, {name: np.zeros(shape, np.uint8)})
        return round((time.perf_counter() - t) * 1000, 1)

    first = run(shapes[0])
    same = [run(shapes[0]) for _ in range(runs)]
    for sh in shapes[1:]:
        run(sh)
    turns = [run(sh) for _ in range(runs) for sh in shapes]
    return {"provider": sess.get_providers()[0], "first_ms": first, "same_shape_ms": same,
            "same_shape_median_ms": statistics.median(same), "shapes_in_turn_ms": turns,
            "shapes_in_turn_median_ms": statistics.median(turns)}


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def run_variant(name: str, repository: Path, providers: list[str], items: list[dict], levels: tuple[int, ...],
                level_s: float, cpu_texts: dict, budget: Budget) -> dict:
    model_set, settings = VARIANTS[name]
    t0 = time.perf_counter()
    pipe, backend = make_pipeline(repository, providers, model_set, **settings)
    row: dict = {"model_set": model_set, "settings": settings, "providers": backend.describe(),
                 "start_s": round(time.perf_counter() - t0, 2), "input_shapes": pipe.input_shapes(), "levels": {}}
    acc = drive(pipe, items, 8, min(max(level_s * 3, 5.0), budget.left() / 2), one_pass=True)
    row["accuracy_pass"] = {k: v for k, v in acc.items() if k != "_results"} | score(items, acc["_results"], cpu_texts)
    for c in levels:
        if not budget.fits(level_s + 5):
            row["levels"][str(c)] = "skipped: the run's time budget is spent"
            continue
        with GpuSampler() as gpu:
            r = drive(pipe, items, c, level_s)
        r.pop("_results")
        row["levels"][str(c)] = r | {"gpu_busy_pct": gpu.busy_pct}
        print(f"  {name} c={c}: {r['img_s']} img/s, p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, "
              f"cpu {r['cpu_ms_per_page']} ms/page, gpu {gpu.busy_pct}%", flush=True)
    asyncio.run(backend.close())
    return row


def worker_main(args) -> int:
    """One of the processes sharing the GPU: wait for the start time, drive, print JSON."""
    items = pickle.loads(Path(args.stage, "dataset.pkl").read_bytes())  # noqa: S301 - our own file
    if args.images:
        items = items[: args.images]
    model_set, settings = VARIANTS["buckets"]
    pipe, backend = make_pipeline(Path(args.stage) / "models", args.providers, model_set, **settings)
    while time.time() < args.start_at:
        time.sleep(0.01)
    r = drive(pipe, items, args.concurrency, args.seconds)
    r.pop("_results")
    print("RESULT " + json.dumps(r), flush=True)
    return 0


def processes(stage: Path, providers: list[str], n: int, concurrency: int, seconds: float, images: int,
              start_in: float) -> dict:
    start_at = time.time() + start_in
    cmd = [sys.executable, "-m", "bench.gpu", "--worker", "--stage", str(stage), "--concurrency", str(concurrency),
           "--seconds", str(seconds), "--start-at", str(start_at), "--images", str(images), "--providers", *providers]
    procs = [subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(n)]
    with GpuSampler() as gpu:
        outs = [p.communicate(timeout=start_in + seconds + 120)[0] for p in procs]
    per = []
    for out in outs:
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        if not lines:
            raise RuntimeError("a benchmark process gave no result:\n" + out[-2000:])
        per.append(json.loads(lines[-1][len("RESULT "):]))
    return {"processes": n, "concurrency_each": concurrency, "seconds": seconds,
            "img_s_total": round(sum(p["img_s"] for p in per), 2), "per_process": per, "gpu_busy_pct": gpu.busy_pct}


def measure(stage: Path, out: Path, budget_s: float, dry_run: bool) -> dict:
    budget = Budget(budget_s)
    providers = ["CPUExecutionProvider"] if dry_run else ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if not dry_run:
        import onnxruntime as ort

        if hasattr(ort, "preload_dlls"):  # the CUDA/cuDNN libraries of the nvidia-* wheels
            ort.preload_dlls()
    items = pickle.loads((stage / "dataset.pkl").read_bytes())  # noqa: S301 - our own file, bench/gpu_stage.py
    if dry_run:
        items = [it for it in items if it["name"] in ("tess_phototest.png", "label_m.png", "pp_en_word_1.png")]
    repository = stage / "models"
    levels = (1, 2) if dry_run else LEVELS
    level_s = 1.0 if dry_run else 8.0
    doc: dict = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dry_run": dry_run,
                 "budget_s": budget_s, "images": len(items), "targets": TARGETS,
                 "environment": environment(providers), "steps_done": []}
    _write(out, doc)
    print(json.dumps(doc["environment"]), flush=True)

    cpu_pipe, _ = make_pipeline(repository, ["CPUExecutionProvider"], "ppocrv6_small", shape_buckets="off")
    cpu = drive(cpu_pipe, items, 8, budget.left() / 4, one_pass=True)
    cpu_texts = {i: [ln.text for ln in lines] for i, lines in cpu.pop("_results").items()}
    doc["cpu_reading"] = cpu | {"note": "CPU provider, no buckets: what the GPU readings are compared with"}
    doc["steps_done"].append("cpu_reading")
    _write(out, doc)

    doc["shape_probe"] = shape_probe(repository, providers)
    doc["steps_done"].append("shape_probe")
    _write(out, doc)
    print("shape probe", json.dumps(doc["shape_probe"]), flush=True)

    doc["variants"] = {}
    for name in VARIANTS:
        if not budget.fits(20 if not dry_run else 2):
            doc["variants"][name] = "skipped: the run's time budget is spent"
            continue
        doc["variants"][name] = run_variant(name, repository, providers, items, levels, level_s, cpu_texts, budget)
        doc["steps_done"].append(f"variant {name}")
        _write(out, doc)

    n, seconds = (2, 2.0) if dry_run else (PROCESSES, 20.0)
    start_in = 15.0 if dry_run else 40.0  # each process loads and warms its sessions first
    if budget.fits(start_in + seconds + 15):
        doc["processes"] = processes(stage, providers, n, 8, seconds, len(items), start_in)
        doc["steps_done"].append("processes")
    else:
        doc["processes"] = "skipped: the run's time budget is spent"
    doc["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write(out, doc)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", type=Path, help="write the encoded images here and stop")
    ap.add_argument("--stage", type=Path, help="the assembled stage: models/, dataset.pkl (bench/gpu_stage.py)")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "artifacts" / "gpu-bench.json")
    ap.add_argument("--budget-s", type=float, default=330.0)
    ap.add_argument("--dry-run", action="store_true", help="CPU provider, 3 images, short steps (make test)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, default=8, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--images", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--providers", nargs="+", default=["CUDAExecutionProvider", "CPUExecutionProvider"],
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.prepare:
        prepare(args.prepare)
        return 0
    if not args.stage:
        ap.error("--stage is required (bench/gpu_stage.py --assemble makes it)")
    if args.worker:
        return worker_main(args)
    doc = measure(args.stage, args.out, args.budget_s, args.dry_run)
    print(f"steps done: {doc['steps_done']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
