"""A real Triton Inference Server on loopback, for development and tests (``make triton``).

The server is the ``tritonserver`` binary bundled in ``nvidia-pytriton`` (Triton 2.51, Python
backend only), installed in a venv of its own (``.venv-triton``). It loads ``model_repository/``
unchanged; its backend directory holds Triton's real Python backend plus the TEST-ONLY stand-in
for the onnxruntime backend (``triton_local/backends/onnxruntime/model.py``).

    python -m triton_local.launch [--venv .venv-triton] [--http-port 8000 --grpc-port 8001 --metrics-port 8002]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STANDIN_BACKENDS = Path(__file__).resolve().parent / "backends"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _query(venv: Path, code: str) -> str:
    return subprocess.run([str(_venv_python(venv)), "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def prepare(venv: Path, workdir: Path) -> tuple[list[str], dict[str, str]]:
    """Lay out the backend directory; return the server command prefix and its environment."""
    venv = venv.resolve()
    if not _venv_python(venv).exists():
        raise FileNotFoundError(f"{venv} is not a virtual environment: run `make triton-venv`")
    site = Path(_query(venv, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
    libdir = _query(venv, "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')")
    pyver = _query(venv, "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')")
    bundled = site / "pytriton" / "tritonserver"
    backends = workdir / "backends"
    if backends.exists():
        shutil.rmtree(backends)
    shutil.copytree(bundled / "backends" / "python", backends / "python")
    # the Python backend stub for this venv's Python version
    shutil.copy2(bundled / "python_backend_stubs" / pyver / "triton_python_backend_stub", backends / "python")
    for child in STANDIN_BACKENDS.iterdir():
        if child.is_dir():
            shutil.copytree(child, backends / child.name, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ)
    # The stub finds packages through the first python3 on PATH, and must link this Python's
    # libpython (not another copy found first in /lib).
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (libdir, str(site / "nvidia_pytriton.libs"), env.get("LD_LIBRARY_PATH", "")) if p)
    env["VIRTUAL_ENV"] = str(venv)
    return [str(bundled / "bin" / "tritonserver"), f"--backend-directory={backends}"], env


def server_args(repository: Path, http_port: int, grpc_port: int, metrics_port: int, models: list[str] | None,
                extra: list[str] | None = None) -> list[str]:
    args = [
        f"--model-repository={repository.resolve()}",
        "--http-address=127.0.0.1", f"--http-port={http_port}",
        "--grpc-address=127.0.0.1", f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1", f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
        "--exit-timeout-secs=10",
        "--log-verbose=0",
    ]
    if models:
        args.append("--model-control-mode=explicit")
        args += [f"--load-model={m}" for m in models]
    return args + list(extra or [])


class LocalTriton:
    """Start/stop the local Triton as a subprocess; used by tests and benchmarks."""

    def __init__(self, venv: Path, workdir: Path, repository: Path = ROOT / "model_repository",
                 http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002,
                 models: list[str] | None = None, log_path: Path | None = None, extra_args: list[str] | None = None):
        self.venv, self.workdir, self.repository = Path(venv), Path(workdir), Path(repository)
        self.extra_args = list(extra_args or [])  # more tritonserver flags (e.g. --model-config-name=gpu)
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.models = models
        self.log_path = log_path or (self.workdir / "triton.log")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 180.0) -> LocalTriton:
        self.workdir.mkdir(parents=True, exist_ok=True)
        prefix, env = prepare(self.venv, self.workdir)
        cmd = prefix + server_args(self.repository, self.http_port, self.grpc_port, self.metrics_port, self.models,
                                   self.extra_args)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.proc.returncode}; see {self.log_path}")
            if self.ready():
                return self
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"Triton not ready after {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Python-backend stubs can outlive the server; nothing of this server's group may remain.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def __enter__(self) -> LocalTriton:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venv", type=Path, default=ROOT / ".venv-triton")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".cache" / "triton")
    ap.add_argument("--model-repository", type=Path, default=ROOT / "model_repository")
    ap.add_argument("--http-port", type=int, default=int(os.environ.get("TRITON_HTTP_PORT", 8000)))
    ap.add_argument("--grpc-port", type=int, default=int(os.environ.get("TRITON_GRPC_PORT", 8001)))
    ap.add_argument("--metrics-port", type=int, default=int(os.environ.get("TRITON_METRICS_PORT", 8002)))
    ap.add_argument("--models", nargs="*", help="load only these (explicit model control); default: all")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    prefix, env = prepare(args.venv, args.workdir)
    cmd = prefix + server_args(args.model_repository, args.http_port, args.grpc_port, args.metrics_port, args.models)
    print(f"triton: HTTP 127.0.0.1:{args.http_port}, gRPC :{args.grpc_port}, metrics :{args.metrics_port}", flush=True)
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
