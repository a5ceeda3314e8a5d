"""Multipart uploads, several images per request, PDFs, visualization: over real HTTP."""

from __future__ import annotations

import base64
import io
import json

import httpx
from PIL import Image

from tests.helpers import b64, pdf_bytes, png_bytes, render_lines


def test_upload_one_image_answers_like_v1(client, eval_dir):
    data = (eval_dir / "tess_phototest.png").read_bytes()
    up = client.post("/v1/ocr/upload", files={"file": ("page.png", data, "image/png")})
    assert up.status_code == 200, up.text
    v1 = client.post("/v1/ocr", json={"image": b64(data)}).json()
    assert up.json()["lines"] == v1["lines"] and up.json()["source"] == "page.png"


def test_upload_several_files_and_a_pdf(client, eval_dir):
    files = [
        ("file", ("a.png", (eval_dir / "tjs_simple.png").read_bytes(), "image/png")),
        ("file", ("doc.pdf", pdf_bytes([["Page one here"], ["Page two here"]]), "application/pdf")),
    ]
    r = client.post("/v1/ocr/upload", files=files, data={"options": json.dumps({"rec_score_thresh": 0.3})})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["source"], x["page"], x["text"]) for x in results] == [
        ("a.png", None, "Tesseract.js"), ("doc.pdf", 1, "Page one here"), ("doc.pdf", 2, "Page two here")]


def test_upload_errors(client):
    assert client.post("/v1/ocr/upload", files={"file": ("x.txt", b"not an image", "text/plain")}).status_code == 415
    r = client.post("/v1/ocr/upload", files={"file": ("a.png", png_bytes(render_lines(["x"])), "image/png")},
                    data={"options": "{not json"})
    assert r.status_code == 422 and "options" in r.json()["error"]["message"]
    assert client.post("/v1/ocr/upload", data={"nothing": "here"}).status_code == 422


def test_batch_json_in_order(client, eval_dir):
    names = ["tjs_simple.png", "pp_word_10.png", "tjs_simple_exif90.jpg"]
    r = client.post("/v1/ocr/batch", json={"images": [b64((eval_dir / n).read_bytes()) for n in names]})
    assert r.status_code == 200
    assert [x["text"] for x in r.json()["results"]] == ["Tesseract.js", "PAIN", "Tesseract.js"]


def test_images_per_request_limit(client):
    small = b64(png_bytes(render_lines(["x"], size=20)))
    r = client.post("/v1/ocr/batch", json={"images": [small] * 17})
    assert r.status_code == 413 and "16" in r.json()["error"]["message"]
    r = client.post("/v1/ocr/batch", json={"images": [b64(pdf_bytes([["p"]] * 9))] * 2})  # 18 pages in all
    assert r.status_code == 413


def test_visualize_returns_a_jpeg_of_the_image(client, eval_dir):
    r = client.post("/v1/ocr", json={"image": b64((eval_dir / "tjs_simple.png").read_bytes()), "visualize": True})
    im = Image.open(io.BytesIO(base64.b64decode(r.json()["visualization"])))
    assert im.format == "JPEG" and im.size == (320, 180)
    plain = client.post("/v1/ocr", json={"image": b64((eval_dir / "tjs_simple.png").read_bytes())}).json()
    assert plain["visualization"] is None


def test_the_openvino_backend_serves_over_http(tmp_path):
    """OCR_BACKEND=openvino through the real HTTP service: ready, a rendered line read right, and
    the answer names the backend and the device every model ran on."""
    from harness.localserver import LocalServer

    token = "openvino-http-token-0123456789"
    env = {"OCR_API_TOKENS": token, "OCR_BACKEND": "openvino", "OCR_MODEL_SET": "ppocrv6_small"}
    with LocalServer(env, log_path=tmp_path / "openvino.log") as srv:
        image = b64(png_bytes(render_lines(["OpenVINO over HTTP"], size=34)))
        r = httpx.post(f"{srv.url}/v1/ocr", json={"image": image}, headers={"Authorization": f"Bearer {token}"},
                       timeout=120)
        assert r.status_code == 200, r.text[:300]
        body = r.json()
        assert body["text"] == "OpenVINO over HTTP"
        assert body["model"]["backend"] == "openvino"
        assert all(v.startswith("CPU") or "openvino" in v.lower() for v in body["model"]["execution_providers"].values()), body
        assert httpx.get(f"{srv.url}/readyz").json()["backend"] == "openvino"
