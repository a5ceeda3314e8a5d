"""Does bucketing recognition widths let Triton's dynamic batcher merge requests from clients?

One local Triton (make triton's server, CPU), two service instances over it in turn: recognition
batch widths exact (OCR_REC_WIDTH_MULTIPLE=0) and rounded up to multiples of 320. For each,
C concurrent clients send the same mix of evaluation images for a fixed number of requests.
Triton's own counters give, for the recognition model, requests per execution (how many
client batches the dynamic batcher merged) and items per execution (batch size).

    .venv/bin/python -m bench.triton_batching [--clients 8] [--requests 64]

Prints a table and writes bench/results/triton_batching.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from evaluation import EVAL_DIR
from harness.localserver import LocalServer, free_port
from preprocess_service.settings import PROJECT_ROOT
from triton_local.launch import LocalTriton

IMAGES = ["tess_phototest.png", "tjs_simple.png", "easyocr_chinese.jpg", "wildreceipt_2.jpeg",
          "tess_eurotext.png", "skimage_page.png", "tjs_cosmic_alpha.png", "ic15_img_1.jpg"]
REC = "ppocrv6_small_rec"


def counters(triton: LocalTriton, model: str) -> dict[str, float]:
    text = httpx.get(triton.metrics_url).text
    out = {}
    for name in ("nv_inference_request_success", "nv_inference_exec_count", "nv_inference_count"):
        m = re.search(rf'^{name}{{model="{model}",version="1"}} ([0-9.e+]+)$', text, re.M)
        out[name] = float(m.group(1)) if m else 0.0
    return out


def run_case(triton, multiple: int, clients: int, requests: int, eval_dir: Path, log_dir: Path) -> dict:
    token = secrets.token_urlsafe(16)
    env = {"OCR_BACKEND": "triton", "OCR_TRITON_URL": triton.url, "OCR_API_TOKENS": token,
           "OCR_REC_WIDTH_MULTIPLE": str(multiple)}
    bodies = [{"image": base64.b64encode((eval_dir / n).read_bytes()).decode()} for n in IMAGES]
    with LocalServer(env, log_path=log_dir / f"service-{multiple}.log") as srv, httpx.Client(timeout=300) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for b in bodies:  # warm
            client.post(f"{srv.url}/v1/ocr", json=b, headers=headers).raise_for_status()
        before = counters(triton, REC)

        def one(i):
            t = time.perf_counter()
            r = client.post(f"{srv.url}/v1/ocr", json=bodies[i % len(bodies)], headers=headers)
            r.raise_for_status()
            return time.perf_counter() - t

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            lat = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - t0
        after = counters(triton, REC)
    d = {k: after[k] - before[k] for k in after}
    return {
        "rec_width_multiple": multiple,
        "images_per_s": requests / wall,
        "p50_ms": statistics.median(lat) * 1000,
        "p95_ms": sorted(lat)[int(0.95 * (len(lat) - 1))] * 1000,
        "rec_requests": d["nv_inference_request_success"],
        "rec_executions": d["nv_inference_exec_count"],
        "rec_requests_per_execution": d["nv_inference_request_success"] / max(d["nv_inference_exec_count"], 1),
        "rec_items_per_execution": d["nv_inference_count"] / max(d["nv_inference_exec_count"], 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    ap.add_argument("--triton-venv", type=Path, default=PROJECT_ROOT / ".venv-triton")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results" / "triton_batching.json")
    args = ap.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        triton = LocalTriton(args.triton_venv, Path(tmp), http_port=free_port(), grpc_port=free_port(),
                             metrics_port=free_port(), models=["ppocrv6_small_det", REC])
        with triton:
            rows = [run_case(triton, m, args.clients, args.requests, args.eval_dir, Path(tmp)) for m in (0, 320)]
    head = "| rec widths | images/s | p50 ms | p95 ms | rec requests | rec executions | requests/execution | crops/execution |"
    print(head + "\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        label = "exact" if r["rec_width_multiple"] == 0 else f"multiple of {r['rec_width_multiple']}"
        print(f"| {label} | {r['images_per_s']:.2f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['rec_requests']:.0f} | "
              f"{r['rec_executions']:.0f} | {r['rec_requests_per_execution']:.2f} | {r['rec_items_per_execution']:.2f} |")
    args.out.write_text(json.dumps({"clients": args.clients, "requests": args.requests, "images": IMAGES, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
