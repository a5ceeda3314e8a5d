"""Start the real service as a subprocess on a free loopback port (tests, eval, benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """``python -m preprocess_service`` on 127.0.0.1:<free port> with the given OCR_* settings."""

    def __init__(self, env: dict[str, str], args: list[str] | None = None, log_path: Path | None = None,
                 port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **env, "OCR_HOST": "127.0.0.1", "OCR_PORT": str(self.port)}
        self._args = args or []
        self._log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | int | None = None

    def start(self, timeout: float = 120.0, wait_for_backend: bool = True) -> LocalServer:
        """Start and wait until /readyz is 200 and, unless ``wait_for_backend`` is false, the
        backend serves too (a Triton-backed service is ready, and answers 503, before Triton is)."""
        self._log = open(self._log_path, "wb") if self._log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "preprocess_service", *self._args],
            env=self._env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode} during start-up (log: {self._log_path})")
            try:
                r = httpx.get(f"{self.url}/readyz", timeout=2)
                if r.status_code == 200 and (not wait_for_backend or r.json().get("backend_ready") is not False):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"service not ready after {timeout}s (log: {self._log_path})")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not isinstance(self._log, (int, type(None))):
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
