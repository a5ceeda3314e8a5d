"""Shared fixtures: the real models, a real server on 127.0.0.1, the evaluation images."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from evaluation import EVAL_DIR
from harness.localserver import LocalServer, free_port
from preprocess_service.model_sets import DEFAULT_MODEL_SET, MODEL_SETS
from triton_local.launch import LocalTriton

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = ROOT / "model_repository"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.fixture(scope="session", autouse=True)
def _clean_environment():
    """Tests set what they need; nothing leaks in from the caller's OCR_* variables."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("OCR_")}
    for k in saved:
        del os.environ[k]
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not (EVAL_DIR / "manifest.json").exists():
        pytest.fail(f"evaluation images not found at {EVAL_DIR}")
    return EVAL_DIR


@pytest.fixture(scope="session")
def repository() -> Path:
    if not all((REPOSITORY / m / "1" / "model.onnx").exists() for m in ("ppocrv6_small_det", *MODELS)):
        pytest.fail("model files missing: run `make models` (make test does it)")
    return REPOSITORY


@dataclass
class Server:
    url: str
    token: str
    log: Path

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, headers={"Authorization": f"Bearer {self.token}"}, **kw)


@pytest.fixture(scope="session")
def server(tmp_path_factory, repository) -> Server:
    """The service started the way `make serve` starts it: no token configured, so it generates
    one into a (temporary) token file and uses it."""
    from harness.localserver import LocalServer

    tmp = tmp_path_factory.mktemp("server")
    token_file = tmp / "secrets" / "api-tokens"
    srv = LocalServer({}, args=["--dev-token-file", str(token_file)], log_path=tmp / "service.log")
    srv.start()
    try:
        yield Server(url=srv.url, token=token_file.read_text().strip(), log=tmp / "service.log")
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def client(server) -> httpx.Client:
    with server.client() as c:
        yield c


# --- a real Triton on loopback (see tests/test_triton.py) --------------------------------

TRITON_VENV = ROOT / ".venv-triton"
# the default model set's folders (det, rec, cls), which the service started with no OCR_MODEL_SET asks for
MODELS = [m for m in MODEL_SETS[DEFAULT_MODEL_SET].folders().values() if m]


@pytest.fixture(scope="session")
def triton(tmp_path_factory):
    if not (TRITON_VENV / "bin" / "python").exists():
        pytest.fail(f"{TRITON_VENV} missing: `make test` builds it (make triton-venv)")
    work = tmp_path_factory.mktemp("triton")
    server = LocalTriton(TRITON_VENV, work, http_port=free_port(), grpc_port=free_port(),
                         metrics_port=free_port(), models=MODELS)
    server.start()
    yield server
    server.stop()


def _service(triton, tmp_path_factory, timeout_s: float):
    token = secrets.token_urlsafe(16)
    log = tmp_path_factory.mktemp("svc") / "service.log"
    env = {"OCR_BACKEND": "triton", "OCR_TRITON_URL": triton.url, "OCR_API_TOKENS": token,
           "OCR_TRITON_TIMEOUT_S": str(timeout_s), "OCR_TRITON_STARTUP_TIMEOUT_S": "60"}
    return LocalServer(env, log_path=log), token


@pytest.fixture(scope="session")
def triton_service(triton, tmp_path_factory):
    srv, token = _service(triton, tmp_path_factory, 30)
    with srv:
        yield srv, token



def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="session")
def pipeline(repository):
    """The default pipeline in-process, on the real models (embedded backend)."""
    from preprocess_service.backends import create_backend
    from preprocess_service.pipeline import Pipeline
    from preprocess_service.settings import Settings

    settings = Settings(api_tokens="unused-in-process")
    backend = create_backend(settings)
    return run(Pipeline.create(settings, backend))
