"""`make serve` itself: the README's start command, with HOST/PORT overrides and a generated token."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from harness.localserver import free_port
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


@pytest.mark.timeout(960)  # above the 900 s the set-up below may take
def test_make_serve_environment_holds_runtime_dependencies_only():
    """`make serve` (run above, or now) installs no test, export or bench extras."""
    serve_python = ROOT / ".venv-serve" / "bin" / "python"
    if not serve_python.exists():
        subprocess.run(["make", "-s", "serve-venv"], cwd=ROOT, check=True, timeout=900)
    freeze = subprocess.run([str(serve_python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    installed = {line.split("==")[0].split(" @ ")[0].lower() for line in freeze.splitlines()}
    assert {"fastapi", "onnxruntime", "tritonclient"} <= installed
    assert not installed & {"paddlepaddle", "paddle2onnx", "pytest", "selenium", "schemathesis", "matplotlib", "ruff"}


def test_make_serves_default_token_file_is_ignored_by_git():
    """The token `make serve` generates (TOKEN_FILE, default .secrets/api-tokens) can never be
    committed by accident: git ignores its default path."""
    import re

    default = re.search(r"^TOKEN_FILE \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    r = subprocess.run(["git", "check-ignore", "--no-index", "-q", default], cwd=ROOT)
    assert r.returncode == 0, f"{default} is not ignored by git"
