"""`make serve` itself: the README's start command, with HOST/PORT overrides and a generated token."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx

from preprocess_service.localserver import free_port
from tests.conftest import ROOT
from tests.helpers import b64, png_bytes, render_lines


def test_make_serve_starts_the_embedded_service(tmp_path):
    port = free_port()
    token_file = tmp_path / "tokens"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    proc = subprocess.Popen(
        ["make", "-s", "serve", f"PORT={port}", "HOST=127.0.0.1", f"TOKEN_FILE={token_file}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        token = token_file.read_text().strip()
        assert len(token) >= 32 and oct(token_file.stat().st_mode & 0o777) == "0o600"
        image = b64(png_bytes(render_lines(["make serve works"], size=30)))
        r = httpx.post(f"{url}/v1/ocr", json={"image": image}, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert r.status_code == 200 and r.json()["text"] == "make serve works"
        assert httpx.post(f"{url}/v1/ocr", json={"image": image}).status_code == 401  # never runs open
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    out = proc.stdout.read().decode()
    assert "generated an API token in" in out and token not in out
