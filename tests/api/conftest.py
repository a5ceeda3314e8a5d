"""The fast in-process API tier: the real FastAPI app, routes, schemas, errors, admission and
pipeline code, driven through httpx's ASGITransport (no server process, no sockets).

The model runtime is replaced by ``FakeBackend`` — a FAKE, named as such: it implements the
backend interface with arithmetic instead of neural networks, so these tests check contracts
and routing, never accuracy. The real models are exercised by tests/unit (pipeline) and
tests/e2e (real server processes, a real Triton).
"""

from __future__ import annotations

import string
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from preprocess_service.api.app import create_app
from preprocess_service.backends.base import InferenceBackend, ModelIO, request_deadline
from preprocess_service.errors import OCRError
from preprocess_service.settings import Settings

TOKEN = "api-tier-token-0123456789abcdef"
CHARSET = list(string.ascii_uppercase)
FAKE_TEXT = "FAKE"


class FakeBackend(InferenceBackend):
    """FAKE backend. Detection: probability 1 where the image is dark (so real DB
    post-processing finds a box around every dark bar). Recognition: every crop reads
    ``FAKE`` with confidence 0.9. ``fail_with`` makes every run raise that error;
    ``is_ready`` drives /readyz."""

    name = "fake"

    def __init__(self) -> None:
        self.fail_with: Exception | None = None
        self.is_ready = True
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.deadlines: list[float | None] = []  # the request deadline each model call saw

    async def load(self, models: list[str], required: bool = True) -> list[str]:
        return models

    def io(self, model: str) -> ModelIO:
        if model.endswith("_det"):
            return ModelIO(("x",), ("prob",))
        return ModelIO(("x",), ("softmax", "ctc_argmax", "ctc_max_prob"))

    async def run(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        x = inputs["x"]
        self.calls.append((model, x.shape))
        self.deadlines.append(request_deadline.get())
        if self.fail_with is not None:
            raise self.fail_with
        if model.endswith("_det"):
            dark = (x.mean(axis=1, keepdims=True) < 0).astype(np.float32)  # normalised: ink is below the mean
            return {"prob": dark}
        n, t = x.shape[0], max(len(FAKE_TEXT) * 2, x.shape[3] // 8)
        idx = np.zeros((n, t), dtype=np.int64)
        for i, ch in enumerate(FAKE_TEXT):
            idx[:, 2 * i] = CHARSET.index(ch) + 1  # 1-based: class 0 is the CTC blank
        prob = np.full((n, t), 0.9, dtype=np.float32)
        if outputs and "softmax" in outputs:
            soft = np.zeros((n, t, len(CHARSET) + 2), dtype=np.float32)
            soft[np.arange(n)[:, None], np.arange(t)[None, :], idx] = 0.9
            return {"softmax": soft}
        return {"ctc_argmax": idx, "ctc_max_prob": prob}

    async def ready(self) -> bool:
        return self.is_ready

    def describe(self) -> dict[str, str]:
        return {"fake_det": "FakeBackend", "fake_rec": "FakeBackend"}


def write_fake_repository(root: Path) -> Path:
    """inference.yml files like PaddleX's, for the fake det and rec models (no model files)."""
    det = {"Global": {"model_name": "fake_det"},
           "PostProcess": {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.5, "unclip_ratio": 1.5,
                           "max_candidates": 100},
           "PreProcess": {"transform_ops": [{"NormalizeImage": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                                                                "scale": "1./255."}}]}}
    rec = {"Global": {"model_name": "fake_rec"},
           "PostProcess": {"name": "CTCLabelDecode", "character_dict": CHARSET},
           "PreProcess": {"transform_ops": [{"RecResizeImg": {"image_shape": [3, 48, 320]}}]}}
    for name, doc in (("fake_det", det), ("fake_rec", rec)):
        (root / name).mkdir(parents=True)
        (root / name / "inference.yml").write_text(yaml.safe_dump(doc))
    return root


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def make_app(tmp_path, backend):
    repo = write_fake_repository(tmp_path / "repo")

    def make(**overrides):
        # the test process itself holds far more than a service would: give it room (the budget is
        # its share of the limit less the RSS it has once 'loaded')
        overrides.setdefault("memory_limit_mib", 65536)
        settings = Settings(api_tokens=TOKEN, model_repository=repo, det_model="fake_det", rec_model="fake_rec",
                            **overrides)
        return create_app(settings, backend=backend)

    return make


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Api:
    """An in-process client of a started app (lifespan run: models 'loaded')."""

    def __init__(self, app):
        self.app = app
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://api.test",
                                      headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.fixture
async def api(make_app):
    app = make_app()
    async with app.router.lifespan_context(app):
        client = Api(app)
        async with client.http:
            yield client


__all__ = ["FakeBackend", "OCRError", "TOKEN", "FAKE_TEXT"]
