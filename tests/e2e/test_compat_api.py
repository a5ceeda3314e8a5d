"""The original API (/image_label) and the PaddleX serving API (/ocr), over real HTTP with real images."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from tests.helpers import b64, pdf_bytes

LEGACY_401 = {"response": {"ProcessType": "F", "ErrorMessage": "Authentification error"}}


def _v1_texts(client, data: bytes) -> list[str]:
    return [ln["text"] for ln in client.post("/v1/ocr", json={"image": b64(data)}).json()["lines"]]


# --- /image_label -------------------------------------------------------------------------


def test_legacy_client_sending_str_of_bytes(server, client, eval_dir):
    """A Python client that sends str(base64.b64encode(data)), i.e. "b'iVBOR...'"."""
    data = (eval_dir / "tess_phototest.png").read_bytes()
    wrapped = str(base64.b64encode(data))
    assert wrapped.startswith("b'")
    r = httpx.post(f"{server.url}/image_label", params={"key": server.token}, json={"base64string": wrapped}, timeout=60)
    assert r.status_code == 200
    assert r.json() == {"Ocr_Output": _v1_texts(client, data)}
    assert r.json()["Ocr_Output"][0] == "This is a lot of 12 point text to test the"


def test_legacy_plain_base64_and_double_quotes(server, eval_dir):
    data = (eval_dir / "tjs_simple.png").read_bytes()
    for value in (base64.b64encode(data).decode(), 'b"' + base64.b64encode(data).decode() + '"'):
        r = httpx.post(f"{server.url}/image_label?key={server.token}", json={"base64string": value}, timeout=60)
        assert r.json() == {"Ocr_Output": ["Tesseract.js"]}


@pytest.mark.parametrize("params", [{}, {"key": "wrong"}, {"key": ""}])
def test_legacy_auth_error_is_exactly_the_old_body(server, params):
    r = httpx.post(f"{server.url}/image_label", params=params, json={"base64string": "aGk="})
    assert r.status_code == 401 and r.json() == LEGACY_401


def test_legacy_bearer_header_is_not_a_key(server):
    r = httpx.post(f"{server.url}/image_label", json={"base64string": "aGk="},
                   headers={"Authorization": f"Bearer {server.token}"})
    assert r.status_code == 401 and r.json() == LEGACY_401


def test_legacy_bad_input_is_a_clear_error(server):
    r = httpx.post(f"{server.url}/image_label?key={server.token}", json={"base64string": "b'@@@'"})
    assert r.status_code == 400 and "base64string" in r.json()["error"]["message"]
    r = httpx.post(f"{server.url}/image_label?key={server.token}", json={})
    assert r.status_code == 422


def test_legacy_key_is_redacted_in_logs(server):
    httpx.post(f"{server.url}/image_label?key={server.token}", json={"base64string": "aGk="})
    log = server.log.read_text()
    assert "/image_label?key=[REDACTED]" in log and server.token not in log


# --- PaddleX /ocr -------------------------------------------------------------------------------


def _paddlex(server, body, token=None):
    headers = {"Authorization": f"Bearer {token or server.token}"}
    return httpx.post(f"{server.url}/ocr", json=body, headers=headers, timeout=120)


def test_paddlex_image(server, client, eval_dir):
    data = (eval_dir / "tess_phototest.png").read_bytes()
    r = _paddlex(server, {"file": b64(data), "fileType": 1})
    assert r.status_code == 200
    body = r.json()
    assert body["errorCode"] == 0 and body["errorMsg"] == "Success" and body["logId"] == r.headers["x-request-id"]
    page = body["result"]["ocrResults"][0]
    pr = page["prunedResult"]
    assert pr["rec_texts"] == _v1_texts(client, data)
    assert len(pr["rec_scores"]) == len(pr["rec_polys"]) == len(pr["rec_boxes"]) == len(pr["rec_texts"]) == 8
    for poly, box in zip(pr["rec_polys"], pr["rec_boxes"]):
        assert box == [min(p[0] for p in poly), min(p[1] for p in poly), max(p[0] for p in poly), max(p[1] for p in poly)]
    assert pr["text_det_params"]["thresh"] == 0.2 and pr["text_rec_score_thresh"] == 0.5
    assert "ocrImage" not in page
    assert body["result"]["dataInfo"] == {"width": 640, "height": 480, "type": "image"}


def test_paddlex_settings_are_applied(server, eval_dir):
    data = b64((eval_dir / "tess_phototest.png").read_bytes())
    plain = _paddlex(server, {"file": data, "fileType": 1}).json()["result"]["ocrResults"][0]["prunedResult"]
    scores = sorted(plain["rec_scores"])
    thresh = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2  # between two lines' scores
    strict = _paddlex(server, {"file": data, "fileType": 1, "textRecScoreThresh": thresh}).json()
    pruned = strict["result"]["ocrResults"][0]["prunedResult"]
    assert 0 < len(pruned["rec_texts"]) < len(plain["rec_texts"]) and min(pruned["rec_scores"]) >= thresh
    tiny = _paddlex(server, {"file": data, "fileType": 1, "textDetLimitSideLen": 64, "textDetLimitType": "max"}).json()
    assert tiny["result"]["ocrResults"][0]["prunedResult"]["text_det_params"]["limit_side_len"] == 64




def test_paddlex_pdf_page_by_page(server):
    pdf = pdf_bytes([["First page text"], ["Second page 2026", "another line"]])
    for file_type in (0, None):  # declared, or detected from the content
        r = _paddlex(server, {"file": b64(pdf), "fileType": file_type} if file_type is not None else {"file": b64(pdf)})
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        assert [p["prunedResult"]["rec_texts"] for p in result["ocrResults"]] == [["First page text"], ["Second page 2026", "another line"]]
        assert result["dataInfo"]["type"] == "pdf" and result["dataInfo"]["numPages"] == 2


def test_paddlex_visualize(server, eval_dir):
    data = (eval_dir / "tjs_simple.png").read_bytes()
    page = _paddlex(server, {"file": b64(data), "fileType": 1, "visualize": True}).json()["result"]["ocrResults"][0]
    jpeg = base64.b64decode(page["ocrImage"])
    im = Image.open(io.BytesIO(jpeg))
    assert im.format == "JPEG" and im.size == (320, 180)


@pytest.mark.parametrize(
    "body,status",
    [
        ({"file": "@@@", "fileType": 1}, 400),
        ({"file": "aGVsbG8=", "fileType": 1}, 415),
        ({"file": "aGVsbG8=", "fileType": 0}, 415),  # says PDF, is not
        ({"file": b64(b"%PDF-1.4 broken"), "fileType": 0}, 400),
        ({"file": "aGk=", "fileType": 7}, 422),
        ({"file": "aGk=", "colour": 1}, 422),
        ({"fileType": 1}, 422),
        ({"file": "aGk=", "textDetLimitType": "min"}, 422),
        ({"file": "aGk=", "useDocUnwarping": True}, 422),
        ({"file": "https://example.com/a.png", "fileType": 1}, 422),
    ],
)
def test_paddlex_errors_in_the_envelope(server, body, status):
    r = _paddlex(server, body)
    assert r.status_code == status, r.text
    env = r.json()
    assert env["errorCode"] == status and env["errorMsg"] and env["logId"] and "result" not in env


def test_paddlex_auth_and_page_limit(server):
    r = httpx.post(f"{server.url}/ocr", json={"file": "aGk="})
    assert r.status_code == 401 and r.json()["errorCode"] == 401
    r = _paddlex(server, {"file": b64(pdf_bytes([["p"]] * 11)), "fileType": 0})
    assert r.status_code == 413 and "11 pages" in r.json()["errorMsg"]


def test_openapi_documents_all_three_contracts(server):
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"/v1/ocr", "/image_label", "/ocr"} <= set(paths)


def test_paddlex_url_input_only_from_allow_listed_hosts(eval_dir, tmp_path):
    """A local file server stands for an allow-listed host (loopback only)."""
    import functools
    import http.server
    import threading

    from harness.localserver import LocalServer, free_port
    from preprocess_service.fetch import host_allowed

    assert host_allowed("https://img.example.com/a.png", ["img.example.com"])
    assert not host_allowed("https://img.example.com.evil.net/a.png", ["img.example.com"])
    assert not host_allowed("ftp://img.example.com/a.png", ["img.example.com"])
    assert host_allowed("http://127.0.0.1:8000/a", ["127.0.0.1:8000"]) and not host_allowed("http://127.0.0.1:9/a", ["127.0.0.1:8000"])

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "simple.png").write_bytes((eval_dir / "tjs_simple.png").read_bytes())
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    files = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    token = "url-input-token-0123456789"
    try:
        with LocalServer({"OCR_API_TOKENS": token, "OCR_URL_ALLOWED_HOSTS": f"127.0.0.1:{port}"},
                         log_path=tmp_path / "svc.log") as srv:
            def call(url):
                return httpx.post(f"{srv.url}/ocr", json={"file": url, "fileType": 1},
                                  headers={"Authorization": f"Bearer {token}"}, timeout=60)

            ok = call(f"http://127.0.0.1:{port}/simple.png")
            assert ok.status_code == 200 and ok.json()["result"]["ocrResults"][0]["prunedResult"]["rec_texts"] == ["Tesseract.js"]
            assert call(f"http://127.0.0.1:{port}/missing.png").status_code == 422
            other = call(f"http://localhost:{port}/simple.png")  # same machine, but not the listed host
            assert other.status_code == 422 and "allow-list" in other.json()["errorMsg"]
    finally:
        files.shutdown()
