"""Route and contract tests in-process (httpx ASGITransport) over the FAKE backend of conftest.py.

Each contract (native /v1, the original /image_label, PaddleX /ocr) is checked for its happy
answer and its error envelope; the real models and a real server are in tests/e2e.
"""

from __future__ import annotations

import asyncio
import base64
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from preprocess_service.errors import BackendUnavailable
from tests.api.conftest import FAKE_TEXT, TOKEN, Api

pytestmark = pytest.mark.anyio


def bars_png(n: int = 2, width: int = 400) -> bytes:
    """White image with ``n`` black horizontal bars: the fake detector's 'lines'."""
    img = np.full((60 * n + 40, width, 3), 255, np.uint8)
    for i in range(n):
        cv2.rectangle(img, (30, 30 + 60 * i), (width - 30, 30 + 60 * i + 24), (0, 0, 0), -1)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pdf_of(pages: int) -> bytes:
    out = io.BytesIO()
    imgs = [Image.open(io.BytesIO(bars_png(i + 1))).convert("RGB") for i in range(pages)]
    imgs[0].save(out, format="PDF", save_all=True, append_images=imgs[1:], resolution=144)
    return out.getvalue()


async def test_v1_ocr_lines_in_reading_order(api: Api):
    r = await api.http.post("/v1/ocr", json={"image": b64(bars_png(3))})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [ln["text"] for ln in body["lines"]] == [FAKE_TEXT] * 3
    tops = [min(p[1] for p in ln["box"]) for ln in body["lines"]]
    assert tops == sorted(tops) and body["model"]["backend"] == "fake"
    assert body["text"] == "\n".join([FAKE_TEXT] * 3) and body["width"] == 400


async def test_v1_needs_a_bearer_token(api: Api):
    r = await api.http.post("/v1/ocr", json={"image": b64(bars_png())}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"error": {"code": "unauthorized", "message": "missing or invalid bearer token"}}


@pytest.mark.parametrize("payload,status,code", [
    ({"image": "%%%not base64%%%"}, 400, "invalid_base64"),
    ({"image": b64(b"GIF89a not really")}, 415, "unsupported_media_type"),
    ({}, 422, "invalid_request"),
    ({"image": b64(bars_png()), "det_thresh": 7}, 422, "invalid_request"),
    ({"image": b64(bars_png()), "surprise": 1}, 422, "invalid_request"),
])
async def test_v1_bad_input_gets_the_native_envelope(api: Api, payload, status, code):
    r = await api.http.post("/v1/ocr", json=payload)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


async def test_batch_and_upload_answer_in_order(api: Api):
    r = await api.http.post("/v1/ocr/batch", json={"images": [b64(bars_png(1)), b64(pdf_of(2)), b64(bars_png(3))]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [len(x["lines"]) for x in results] == [1, 1, 2, 3] and [x["page"] for x in results] == [None, 1, 2, None]
    one = await api.http.post("/v1/ocr/upload", files=[("file", ("a.png", bars_png(2), "image/png"))])
    assert one.status_code == 200 and len(one.json()["lines"]) == 2 and one.json()["source"] == "a.png"
    two = await api.http.post("/v1/ocr/upload", files=[("file", ("a.png", bars_png(1), "image/png")),
                                                       ("file", ("b.pdf", pdf_of(1), "application/pdf"))])
    assert [(x["source"], x["page"]) for x in two.json()["results"]] == [("a.png", None), ("b.pdf", 1)]


async def test_images_per_request_limit(make_app):
    app = make_app(max_images_per_request=2)
    async with app.router.lifespan_context(app):
        api = Api(app)
        r = await api.http.post("/v1/ocr/batch", json={"images": [b64(bars_png(1))] * 3})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        r = await api.http.post("/v1/ocr/batch", json={"images": [b64(pdf_of(3))]})  # pages count too
        assert r.status_code == 413


async def test_legacy_contract(api: Api):
    data = b64(bars_png(2))
    r = await api.http.post(f"/image_label?key={TOKEN}", json={"base64string": f"b'{data}'"}, headers={})
    assert r.status_code == 200 and r.json() == {"Ocr_Output": [FAKE_TEXT, FAKE_TEXT]}
    r = await api.http.post("/image_label?key=nope", json={"base64string": data})
    assert r.status_code == 401
    assert r.json() == {"response": {"ProcessType": "F", "ErrorMessage": "Authentification error"}}
    r = await api.http.post(f"/image_label?key={TOKEN}", json={"base64string": "%%%"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_base64"


async def test_paddlex_contract_and_its_error_envelope(api: Api):
    r = await api.http.post("/ocr", json={"file": b64(bars_png(2)), "fileType": 1}, headers={"X-Request-ID": "rid-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["errorCode"] == 0 and body["logId"] == "rid-1"
    page = body["result"]["ocrResults"][0]["prunedResult"]
    assert page["rec_texts"] == [FAKE_TEXT] * 2 and page["text_det_params"]["limit_side_len"] == 960
    assert body["result"]["dataInfo"]["type"] == "image"
    pdf = (await api.http.post("/ocr", json={"file": b64(pdf_of(2)), "fileType": 0})).json()
    assert pdf["result"]["dataInfo"]["numPages"] == 2
    for payload, headers, status in [
        ({"file": b64(bars_png())}, {"Authorization": "Bearer wrong"}, 401),
        ({"file": b64(bars_png()), "fileType": 0}, {}, 415),  # says PDF, is not
        ({"file": b64(bars_png()), "textDetLimitType": "min"}, {}, 422),
        ({"nofile": 1}, {}, 422),
    ]:
        r = await api.http.post("/ocr", json=payload, headers=headers)
        assert r.status_code == status, r.text
        assert set(r.json()) == {"logId", "errorCode", "errorMsg"} and r.json()["errorCode"] == status


async def test_backend_outage_is_503_with_retry_after_in_every_envelope(api: Api, backend):
    backend.fail_with = BackendUnavailable("the inference server is unreachable", retry_after_s=3)
    image = b64(bars_png())
    native = await api.http.post("/v1/ocr", json={"image": image})
    paddlex = await api.http.post("/ocr", json={"file": image})
    legacy = await api.http.post(f"/image_label?key={TOKEN}", json={"base64string": image})
    for r in (native, paddlex, legacy):
        assert r.status_code == 503 and r.headers["retry-after"] == "3", r.text
    assert native.json()["error"]["code"] == "backend_unavailable"
    assert paddlex.json()["errorCode"] == 503


async def test_unexpected_failure_is_a_json_500_without_details(api: Api, backend, caplog):
    """The client gets a JSON 500 without details; the log gets the traceback, and nothing the
    client sent (its image)."""
    backend.fail_with = RuntimeError("secret internals /etc/passwd")
    image = b64(bars_png())
    with caplog.at_level("ERROR"):
        r = await api.http.post("/v1/ocr", json={"image": image})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert "passwd" not in r.text
    logged = "\n".join(rec.getMessage() + "\n" + (caplog.handler.format(rec) if rec.exc_info else "")
                       for rec in caplog.records)
    assert "Traceback" in logged and "RuntimeError" in logged, logged[:2000]
    assert image[:64] not in logged
    r = await api.http.post("/ocr", json={"file": b64(bars_png())})
    assert r.status_code == 500 and r.json()["errorCode"] == 500 and "passwd" not in r.text


async def test_readiness_follows_the_backend_and_loading(make_app, backend):
    app = make_app()
    http = Api(app).http
    r = await http.post("/v1/ocr", json={"image": b64(bars_png())})  # lifespan not run: models not loaded
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready" and r.headers["retry-after"]
    assert (await http.get("/readyz")).status_code == 503
    async with app.router.lifespan_context(app):
        assert (await http.get("/readyz")).json()["ready"] is True
        backend.is_ready = False  # the pod still answers (503 per request), so it stays in the Service
        r = await http.get("/readyz")
        assert r.status_code == 200 and r.json()["backend_ready"] is False


async def test_a_remote_backend_that_is_down_keeps_the_pod_ready_and_answers_503(make_app, backend):
    """Triton-like (remote) FAKE backend that fails to load twice: the app serves meanwhile."""
    backend.remote = True
    failures = {"left": 2}
    real_load = backend.load

    async def flaky_load(models, required=True):
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("Triton at 10.0.0.1:8000 did not serve the models in time")
        return await real_load(models, required)

    backend.load = flaky_load
    app = make_app(backend="triton", backend_check_interval_s=0.1)
    async with app.router.lifespan_context(app):
        http = Api(app).http
        r = await http.get("/readyz")
        assert r.status_code == 200 and r.json()["ready"] is True and r.json()["backend_ready"] is False
        r = await http.post("/v1/ocr", json={"image": b64(bars_png())})
        assert r.status_code == 503 and r.json()["error"]["code"] == "backend_unavailable" and r.headers["retry-after"]
        for _ in range(100):  # the loader retries after 1 s, then 2 s
            if app.state.context.service is not None:
                break
            await asyncio.sleep(0.1)
        r = await http.post("/v1/ocr", json={"image": b64(bars_png())})
        assert r.status_code == 200 and r.json()["lines"]


async def test_body_limit_and_unknown_routes(make_app):
    app = make_app(max_body_bytes=4096)
    async with app.router.lifespan_context(app):
        http = Api(app).http
        r = await http.post("/v1/ocr", json={"image": "A" * 8000})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        r = await http.get("/v2/nothing")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await http.get("/v1/ocr")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


async def test_visualize_returns_a_jpeg(api: Api):
    r = await api.http.post("/v1/ocr", json={"image": b64(bars_png(1)), "visualize": True})
    assert base64.b64decode(r.json()["visualization"])[:3] == b"\xff\xd8\xff"


async def test_every_model_call_sees_its_requests_deadline(make_app, backend):
    """Admission hands the request's deadline to the backend (Triton gets the time left as each
    call's timeout; see tests/e2e/test_triton_queue.py for Triton's side)."""
    import time

    app = make_app(request_timeout_s=7)
    async with app.router.lifespan_context(app):
        backend.deadlines.clear()
        t0 = time.monotonic()
        r = await Api(app).http.post("/v1/ocr", json={"image": b64(bars_png(2))})
        assert r.status_code == 200
    assert backend.deadlines and all(d is not None for d in backend.deadlines)
    assert all(t0 + 6.5 < d < time.monotonic() + 7 for d in backend.deadlines)  # type: ignore[operator]
