"""The floor: the pure onnxruntime forward passes of one image, nothing else.

For each benchmark image, our pipeline runs once through a recording backend that keeps every
model call it makes (detection input, recognition batches, the outputs asked for). The floor
then replays exactly those ``session.run`` calls on onnxruntime sessions opened for the lowest
latency of one stream (all cores as intra-op threads, whatever the service's own thread split):
no decoding, no pre/post-processing, no HTTP, no event loop. One image's floor latency is the sum
of its calls. At concurrency C, C threads replay images from a shared queue.

Run as its own process by bench/run.py (so its memory is measured alone):

    python -m bench.floor --eval-dir evaluation/data --out floor.json [--concurrency 1 4 8] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import secrets
import threading
import time
from pathlib import Path

import numpy as np

from bench.dataset import load
from bench.timing import percentile, run_threads
from preprocess_service.backends import create_backend
from preprocess_service.backends.base import InferenceBackend, ModelIO
from preprocess_service.imaging import decode_image
from preprocess_service.options import RequestOptions
from preprocess_service.pipeline import Pipeline
from preprocess_service.settings import Settings, available_cores

FLOOR_MODEL_SET = "ppocrv6_small"  # PP-OCRv6 small in float32, as published


class RecordingBackend(InferenceBackend):
    """Delegates to a real backend and keeps a copy of every call's inputs."""

    def __init__(self, inner: InferenceBackend):
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[str, dict[str, np.ndarray], list[str] | None]] = []

    async def load(self, models, required=True):
        return await self.inner.load(models, required)

    def io(self, model: str) -> ModelIO:
        return self.inner.io(model)

    async def run(self, model, inputs, outputs=None):
        self.calls.append((model, {k: v.copy() for k, v in inputs.items()}, list(outputs) if outputs else None))
        return await self.inner.run(model, inputs, outputs)

    async def ready(self):
        return await self.inner.ready()

    def describe(self):
        return self.inner.describe()


async def record(settings: Settings, images: dict[str, np.ndarray]):
    backend = RecordingBackend(create_backend(settings))
    pipeline = await Pipeline.create(settings, backend)
    calls = {}
    for name, img in images.items():
        backend.calls = []
        await pipeline.read(img, RequestOptions())
        calls[name] = backend.calls
    return backend.inner, calls


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--images", nargs="+")
    args = ap.parse_args()

    os.environ.setdefault("OCR_API_TOKENS", secrets.token_urlsafe(8))  # settings need one; unused
    # the service's pipeline settings (the same tensors), sessions tuned for one stream, on the
    # float32 models (FLOOR_MODEL_SET): the floor the INT8 default is measured against
    settings = Settings(model_set=FLOOR_MODEL_SET, ort_intra_op_threads=available_cores(), ort_inference_workers=1)
    items = [it for it in load(args.eval_dir) if not args.images or it.name in args.images]
    images = {it.name: decode_image(it.data, settings.max_image_pixels) for it in items}
    backend, calls = asyncio.run(record(settings, images))
    sessions = backend._sessions  # the service's own sessions and options

    def replay(name: str) -> float:
        t = time.perf_counter()
        for model, inputs, outputs in calls[name]:
            sessions[model].run(outputs, inputs)
        return time.perf_counter() - t

    for name in calls:  # warm-up: every shape once
        replay(name)
    results = {"per_image_ms": {n: replay(n) * 1000 for n in calls}, "levels": {}}
    for c in args.concurrency:
        work: queue.Queue[str] = queue.Queue()
        for _ in range(args.rounds):
            for n in calls:
                work.put(n)
        lat: list[float] = []
        lock = threading.Lock()

        def worker(work=work, lock=lock, lat=lat):
            while True:
                try:
                    n = work.get_nowait()
                except queue.Empty:
                    return
                dt = replay(n)
                with lock:
                    lat.append(dt)

        wall = run_threads(worker, c)
        results["levels"][str(c)] = {
            "requests": len(lat), "ok": len(lat), "wall_s": wall, "images_per_s": len(lat) / wall,
            "p50_ms": percentile(lat, 50) * 1000, "p95_ms": percentile(lat, 95) * 1000,
            "latencies_ms": {},
        }
    args.out.write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
