"""The HTTP API over a real server on 127.0.0.1 with the real models."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from tests.conftest import MODELS
from tests.helpers import PHOTOTEST, b64, png_bytes, render_lines

DET, REC = MODELS[0], MODELS[1]  # the default model set


def _ocr(client, data: bytes, **opts) -> httpx.Response:
    return client.post("/v1/ocr", json={"image": b64(data), **opts})


def test_health_and_readiness_need_no_token(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    r = httpx.get(f"{server.url}/readyz")
    assert r.status_code == 200
    assert r.json()["ready"] is True and r.json()["models"]["det"] == DET


def test_page_lines_boxes_confidences(client, eval_dir):
    r = _ocr(client, (eval_dir / "tess_phototest.png").read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    assert [ln["text"] for ln in body["lines"]] == PHOTOTEST
    assert body["text"] == "\n".join(PHOTOTEST)
    assert (body["width"], body["height"]) == (640, 480)
    tops = []
    for ln in body["lines"]:
        assert 0.9 < ln["confidence"] <= 1.0
        assert len(ln["box"]) == 4
        for x, y in ln["box"]:
            assert 0 <= x <= 640 and 0 <= y <= 480
        (x0, y0), (x1, _), (_, y2), _ = ln["box"]
        assert x1 > x0 and y2 > y0  # clockwise from top-left
        tops.append(y0)
    assert tops == sorted(tops)
    m = body["model"]
    assert m["backend"] == "onnxruntime" and m["cls"] is None
    assert m["execution_providers"] == {DET: "CPUExecutionProvider", REC: "CPUExecutionProvider"}
    assert {"decode", "detection", "crop", "recognition", "total"} <= set(body["timings_ms"])


def test_exif_rotated_and_alpha_only_images(client, eval_dir):
    r = _ocr(client, (eval_dir / "tjs_simple_exif90.jpg").read_bytes())
    assert r.json()["text"] == "Tesseract.js"
    r = _ocr(client, (eval_dir / "tjs_cosmic_alpha.png").read_bytes())
    assert r.json()["text"].lower().replace("0", "o") == "hello world\nfrom beyond\nthe cosmic void"


def test_data_url_input(client, eval_dir):
    data = (eval_dir / "tjs_simple.png").read_bytes()
    r = client.post("/v1/ocr", json={"image": "data:image/png;base64," + b64(data)})
    assert r.status_code == 200 and r.json()["text"] == "Tesseract.js"


def test_blank_image_has_no_lines(client):
    r = _ocr(client, png_bytes(Image.new("RGB", (300, 200), "white")))
    assert r.status_code == 200
    assert r.json()["lines"] == [] and r.json()["text"] == ""


def test_per_request_options(client, eval_dir):
    data = (eval_dir / "tess_phototest.png").read_bytes()
    scores = sorted(ln["confidence"] for ln in _ocr(client, data).json()["lines"])
    thresh = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2  # between two lines' scores
    strict = _ocr(client, data, rec_score_thresh=thresh).json()
    assert 0 < len(strict["lines"]) < len(PHOTOTEST)
    assert all(ln["confidence"] >= thresh for ln in strict["lines"])
    full = _ocr(client, data).json()
    small = _ocr(client, data, det_limit_side_len=64).json()  # far too small to find the lines
    assert len(small["lines"]) < len(full["lines"]) // 2, (len(small["lines"]), len(full["lines"]))


def test_textline_orientation_turns_upside_down_lines(client):
    lines = ["Upside down text line", "Second line here 42"]
    image = render_lines(lines, size=30).rotate(180)
    plain = _ocr(client, png_bytes(image)).json()
    assert plain["text"] != "\n".join(lines)
    fixed = _ocr(client, png_bytes(image), use_textline_orientation=True).json()
    # boxes are in reading order of the rotated page: the lines come bottom-up
    assert sorted(ln["text"] for ln in fixed["lines"]) == sorted(lines)
    assert fixed["model"]["cls"] == "ppocr_textline_cls"


# --- authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}],
)
def test_missing_or_wrong_token(server, headers):
    r = httpx.post(f"{server.url}/v1/ocr", json={"image": "aGVsbG8="}, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized"


def test_token_in_query_string_is_not_accepted(server):
    r = httpx.post(f"{server.url}/v1/ocr?token={server.token}&key={server.token}", json={"image": "aGVsbG8="})
    assert r.status_code == 401


# --- bad input ------------------------------------------------------------------------

def _truncated_png() -> bytes:
    data = png_bytes(render_lines(["truncated"], size=30))
    return data[: len(data) // 2]


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, format="GIF")
    return buf.getvalue()


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"image": "@@not base64@@"}, 400, "invalid_base64"),
        ({"image": b64(b"just some text, not an image")}, 415, "unsupported_media_type"),
        ({"image": b64(_gif())}, 415, "unsupported_media_type"),
        ({"image": b64(_truncated_png())}, 400, "corrupt_image"),
        ({"image": ""}, 422, "invalid_request"),
        ({"image": "   "}, 422, "empty_image"),
        ({}, 422, "invalid_request"),
        ({"image": 12345}, 422, "invalid_request"),
        ({"image": "aGVsbG8=", "colour": "blue"}, 422, "invalid_request"),
        ({"image": "aGVsbG8=", "det_thresh": 7}, 422, "invalid_request"),
        ([1, 2, 3], 422, "invalid_request"),
    ],
)
def test_bad_input_gets_a_clear_json_error(client, body, status, code):
    r = client.post("/v1/ocr", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]


def test_invalid_json(client):
    r = client.post("/v1/ocr", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]["message"]


def test_error_messages_do_not_echo_input(client):
    secret_looking = "c2VjcmV0LXZhbHVl" * 4 + "!"
    r = client.post("/v1/ocr", json={"image": secret_looking, "det_thresh": "c2VjcmV0LXZhbHVl"})
    assert r.status_code == 422  # the wrong type is found before the image is looked at
    assert "c2VjcmV0LXZhbHVl" not in r.text


def test_pixel_bomb_is_refused_with_413(client):
    import struct
    import zlib

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    w = h = 30000
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * (w + 1) * 8)) + chunk(b"IEND", b""))
    r = client.post("/v1/ocr", json={"image": b64(png)})
    assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_large"


def test_body_over_the_limit_is_refused_before_parsing(client):
    big = b'{"image": "' + b"A" * (21 * 1024 * 1024) + b'"}'
    r = client.post("/v1/ocr", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_refused(client):
    def gen():
        yield b'{"image": "'
        for _ in range(22):
            yield b"A" * (1024 * 1024)
        yield b'"}'

    r = client.post("/v1/ocr", content=gen(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_route_and_method(client):
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/v1/ocr")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_openapi_documents_the_api(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    op = spec["paths"]["/v1/ocr"]["post"]
    assert {"200", "400", "401", "413", "415", "422", "503"} <= set(op["responses"])
    assert httpx.get(f"{server.url}/docs").status_code == 200


# --- concurrency and logs -------------------------------------------------------------


def test_concurrent_requests_match_sequential_results(client, eval_dir):
    names = ["tess_phototest.png", "tjs_simple.png", "easyocr_chinese.jpg", "pp_word_10.png", "wildreceipt_2.jpeg", "tess_eurotext.png"]
    datas = [(eval_dir / n).read_bytes() for n in names]
    sequential = [_ocr(client, d).json()["lines"] for d in datas]
    with ThreadPoolExecutor(6) as pool:
        parallel = list(pool.map(lambda d: _ocr(client, d).json()["lines"], datas))
    assert parallel == sequential


def test_token_never_appears_in_the_log(server, client, eval_dir):
    _ocr(client, (eval_dir / "tjs_simple.png").read_bytes())
    httpx.post(f"{server.url}/v1/ocr?key={server.token}", json={"image": "aGVsbG8="})
    log = server.log.read_text(errors="replace")
    assert "POST /v1/ocr" in log  # the access log is there ...
    assert server.token not in log  # ... without the token
