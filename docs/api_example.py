"""Real responses for docs/api.md: one /v1/ocr call and one PaddleX /ocr call against the service.

Starts the service (embedded onnxruntime, default settings) on a free loopback port, sends one
image of evaluation/data to each route, and writes docs/artifacts/api-example.json; then
`make docs` renders the examples of docs/api.md from it.

    .venv/bin/python docs/api_example.py
"""

from __future__ import annotations

import base64
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.provenance import provenance  # noqa: E402

OUT = ROOT / "docs" / "artifacts" / "api-example.json"
V1_IMAGE = "tjs_cosmic_alpha.png"
PADDLEX_IMAGE = "tjs_simple.png"


def b64(name: str) -> str:
    return base64.b64encode((ROOT / "evaluation" / "data" / name).read_bytes()).decode()


def main() -> int:
    token = secrets.token_urlsafe(16)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    env |= {"OCR_API_TOKENS": token, "OCR_LOG_LEVEL": "warning", "OCR_HOST": "127.0.0.1", "OCR_PORT": str(port)}
    headers = {"Authorization": f"Bearer {token}"}
    proc = subprocess.Popen([sys.executable, "-m", "preprocess_service"], cwd=ROOT, env=env)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"the service exited with {proc.returncode} during start-up")
            time.sleep(0.2)
        v1 = httpx.post(f"{url}/v1/ocr", json={"image": b64(V1_IMAGE)}, headers=headers, timeout=120)
        px = httpx.post(f"{url}/ocr", json={"file": b64(PADDLEX_IMAGE), "fileType": 1}, headers=headers, timeout=120)
    finally:
        proc.terminate()
        proc.wait(30)
    v1.raise_for_status()
    px.raise_for_status()
    providers = v1.json()["model"]["execution_providers"].values()
    gpu = any(p != "CPUExecutionProvider" for p in providers)
    result = {
        "written_by": ".venv/bin/python docs/api_example.py",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {'GPU' if gpu else 'no GPU'}, Python {platform.python_version()}",
        **provenance(),  # default settings: the model set is the service's default
        "image": V1_IMAGE,
        "paddlex_image": PADDLEX_IMAGE,
        "v1_ocr": v1.json(),
        "paddlex_ocr": px.json(),
    }
    OUT.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
