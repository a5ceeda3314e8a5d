"""Shared fixtures: the real models, a real server on 127.0.0.1, the evaluation images."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = Path(os.environ.get("OCR_EVAL_DIR", ROOT.parent / "shared" / "eval"))
REPOSITORY = ROOT / "model_repository"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.fixture(scope="session", autouse=True)
def _clean_environment():
    """Tests set what they need; nothing leaks in from the caller's OCR_* variables."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("OCR_") and k != "OCR_EVAL_DIR"}
    for k in saved:
        del os.environ[k]
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not (EVAL_DIR / "manifest.json").exists():
        pytest.fail(f"evaluation images not found at {EVAL_DIR} (set OCR_EVAL_DIR)")
    return EVAL_DIR


@pytest.fixture(scope="session")
def repository() -> Path:
    if not (REPOSITORY / "ppocrv6_small_det" / "1" / "model.onnx").exists():
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
    from preprocess_service.localserver import LocalServer

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
