"""The ingress gate in-process: token before body, size, memory budget, body read timeouts.
(The same cases over real sockets against a real server are in tests/e2e/test_hostile.py.)"""

from __future__ import annotations

import asyncio
import json

import pytest

from preprocess_service.budget import MIB
from tests.api.conftest import TOKEN, Api
from tests.api.test_contracts import b64, bars_png

pytestmark = pytest.mark.anyio

NO_TOKEN = {"Authorization": ""}


async def test_no_token_is_401_before_size_and_validation(make_app):
    app = make_app(max_body_bytes=4096)
    async with app.router.lifespan_context(app):
        http = Api(app).http
        huge = await http.post("/v1/ocr", content=b"x" * 10_000, headers=NO_TOKEN)
        bad_json = await http.post("/v1/ocr", content=b"{not json", headers=NO_TOKEN)
        paddlex = await http.post("/ocr", content=b"{not json", headers=NO_TOKEN)
        legacy = await http.post("/image_label?key=wrong", content=b"{not json", headers=NO_TOKEN)
    assert huge.status_code == bad_json.status_code == 401 and huge.json()["error"]["code"] == "unauthorized"
    assert huge.headers["connection"] == "close"
    assert paddlex.status_code == 401 and paddlex.json()["errorCode"] == 401
    assert legacy.status_code == 401 and legacy.json()["response"]["ErrorMessage"] == "Authentification error"


async def _call(app, path: str, chunks: list[tuple[float, bytes]], headers: list[tuple[bytes, bytes]],
                complete: bool = True):
    """A raw ASGI call whose body arrives in timed chunks (a slow client), as the server would pass it."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    queue = list(chunks)
    sent: list[dict] = []

    async def receive():
        if not queue:
            await asyncio.sleep(3600)
        delay, data = queue.pop(0)
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": data, "more_body": bool(queue) or not complete}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


async def test_a_stalled_body_is_dropped_with_408(make_app):
    app = make_app(body_idle_timeout_s=0.3, body_timeout_s=5)
    payload = json.dumps({"image": b64(bars_png())}).encode()
    headers = [(b"authorization", f"Bearer {TOKEN}".encode()), (b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode())]
    async with app.router.lifespan_context(app):
        status, body = await _call(app, "/v1/ocr", [(0, payload[:100])], headers, complete=False)  # then nothing
        assert status == 408 and body["error"]["code"] == "request_timeout"
        # a body trickled in time but too slowly in all
        slow = make_app(body_idle_timeout_s=1, body_timeout_s=0.5)
        async with slow.router.lifespan_context(slow):
            chunks = [(0.2, payload[i:i + 500]) for i in range(0, len(payload), 500)]
            status, body = await _call(slow, "/v1/ocr", chunks, headers)
            assert status == 408
        ok_status, ok = await _call(app, "/v1/ocr", [(0.05, payload[:500]), (0.05, payload[500:])], headers)
        assert ok_status == 200 and ok["lines"]


async def test_bodies_are_paid_for_from_the_memory_budget(make_app):
    app = make_app()
    async with app.router.lifespan_context(app):
        api = Api(app)
        budget = app.state.context.admission.budget
        budget.capacity = budget.in_use + 1 * MIB  # room for a body of about a third of a MiB
        small = await api.http.post("/v1/ocr", json={"image": b64(bars_png())})
        assert small.status_code == 413  # the body fits; its page's cost never could, in 1 MiB
        big = await api.http.post("/v1/ocr", json={"image": "A" * 600_000})
        assert big.status_code == 503 and big.json()["error"]["code"] == "overloaded" and big.headers["retry-after"]
        assert budget.in_use == 0  # every reservation was given back
        # the charge is exactly three times the declared length: one byte over the room is refused
        room = budget.capacity - budget.in_use
        for length, status in ((room // 3 - 20, 200), (room // 3 + 1, 503)):
            body = b'{"image": "' + b"A" * (length - 13) + b'"}'
            assert len(body) == length
            r = await api.http.post("/v1/ocr", content=body, headers={"Content-Type": "application/json"})
            assert (r.status_code == 503) == (status == 503), (length, r.status_code, r.text[:200])


async def test_a_page_over_the_whole_budget_is_413_with_its_cost(make_app):
    app = make_app()
    async with app.router.lifespan_context(app):
        api = Api(app)
        budget = app.state.context.admission.budget
        budget.capacity = 400 * MIB
        r = await api.http.post("/v1/ocr", json={"image": b64(bars_png()), "det_limit_side_len": 8192})
        assert r.status_code == 200  # a small image is not up-scaled: a high limit costs nothing here
        big = bars_png(n=40, width=6000)  # 6000 x 2440
        r = await api.http.post("/v1/ocr", json={"image": b64(big), "det_limit_side_len": 8192})
        assert r.status_code == 413 and "MiB" in r.json()["error"]["message"]
        r = await api.http.post("/v1/ocr", json={"image": b64(big)})  # the default limit fits
        assert r.status_code == 200, r.text
        assert budget.in_use == 0


async def test_json_bodies_are_parsed_off_the_event_loop(make_app, monkeypatch):
    """Every body-taking route parses its JSON in a worker thread (api.body): the parse of a large
    body does not run on the event loop's thread, on the native, PaddleX and original routes."""
    import threading

    from preprocess_service.api import body

    threads: list[str] = []
    real = body.json.loads

    def recording(data):
        threads.append(threading.current_thread().name)
        return real(data)

    monkeypatch.setattr(body.json, "loads", recording)
    app = make_app()
    async with app.router.lifespan_context(app):
        http = Api(app).http
        loop_thread = threading.current_thread().name
        image = b64(bars_png())
        native = await http.post("/v1/ocr", json={"image": image})
        paddlex = await http.post("/ocr", json={"file": image, "fileType": 1})
        legacy = await http.post(f"/image_label?key={TOKEN}", json={"base64string": image}, headers=NO_TOKEN)
    assert native.status_code == paddlex.status_code == legacy.status_code == 200, (native.text, paddlex.text)
    assert len(threads) == 3 and loop_thread not in threads, (threads, loop_thread)


@pytest.mark.parametrize(("over_mib", "trimmed"), [(1, True), (0, False), (100_000, False)])
async def test_memory_is_handed_back_after_a_request_over_the_trim_threshold(make_app, monkeypatch, over_mib, trimmed):
    """OCR_MALLOC_TRIM_OVER_MIB: after a request that reserved more than it, freed memory is handed
    back (memory.trim, glibc's malloc_trim, really called); 0 turns it off; under it, no trim."""
    from preprocess_service import memory

    calls = []
    real = memory.trim

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(memory, "trim", counting)
    app = make_app(malloc_trim_over_mib=over_mib)
    async with app.router.lifespan_context(app):
        r = await Api(app).http.post("/v1/ocr", json={"image": b64(bars_png())})
    assert r.status_code == 200, r.text
    assert bool(calls) == trimmed, calls
    assert real() is True  # glibc: malloc_trim is there and runs


async def test_the_json_structure_caps_hold_at_their_edge(make_app):
    """docs/security.md: at most 1,000 objects and arrays and 1,000 keys per JSON body; one more is
    413 before parsing, at the cap the body is parsed and validated as usual."""
    from preprocess_service.api.ingress import MAX_JSON_CONTAINERS, MAX_JSON_KEYS

    app = make_app()
    async with app.router.lifespan_context(app):
        http = Api(app).http

        def body(containers: int, keys: int) -> bytes:
            # {"image": "...", "x": [ {} x (containers - 2) ]} plus (keys - 2) keys in an object
            inner = ",".join(["{}"] * (containers - 3))
            extra = ",".join(f'"k{i}": 0' for i in range(keys - 3))
            return ('{"image": "aGk=", "x": [' + inner + '], "y": {' + extra + '}}').encode()

        at_cap = await http.post("/v1/ocr", content=body(MAX_JSON_CONTAINERS, MAX_JSON_KEYS),
                                 headers={"Content-Type": "application/json"})
        over = await http.post("/v1/ocr", content=body(MAX_JSON_CONTAINERS + 1, MAX_JSON_KEYS),
                               headers={"Content-Type": "application/json"})
        over_keys = await http.post("/v1/ocr", content=body(MAX_JSON_CONTAINERS, MAX_JSON_KEYS + 1),
                                    headers={"Content-Type": "application/json"})
    assert at_cap.status_code == 422 and at_cap.json()["error"]["code"] == "invalid_request", at_cap.text[:300]
    for r in (over, over_keys):
        assert r.status_code == 413 and "objects and arrays" in r.json()["error"]["message"], r.text[:300]


async def test_the_gate_takes_its_routes_from_the_route_table(make_app):
    """The ingress gate has no list of its own: every POST route of the app (its OpenAPI) is
    a body-taking route the gate authenticates, each with its contract's way of presenting a token."""
    from preprocess_service.api.ingress import Ingress

    app = make_app()
    gate = next(m for m in app.user_middleware if m.cls is Ingress)
    ingress = Ingress(None, **gate.kwargs)
    table = ingress._protected({"app": app})
    posts = {path for path, ops in app.openapi()["paths"].items() if "post" in ops}
    assert set(table) == posts == {"/v1/ocr", "/v1/ocr/batch", "/v1/ocr/upload", "/ocr", "/image_label"}
    assert {path: auth for path, (auth, _) in table.items()} == {
        "/v1/ocr": "bearer", "/v1/ocr/batch": "bearer", "/v1/ocr/upload": "bearer", "/ocr": "bearer",
        "/image_label": "key"}


async def test_a_request_refused_before_routing_is_counted_under_its_route(make_app):
    """A 401 from the gate never reaches the router, yet its metrics and access line name the
    route (a known path), not "unmatched"; an unknown path stays "unmatched"."""
    app = make_app()
    async with app.router.lifespan_context(app):
        http = Api(app).http
        assert (await http.post("/v1/ocr", json={"image": "x"}, headers=NO_TOKEN)).status_code == 401
        assert (await http.post("/no/such/path", json={}, headers=NO_TOKEN)).status_code == 404
        text = (await http.get("/metrics")).text
    refused = [ln for ln in text.splitlines() if ln.startswith("ocr_http_requests_total{") and 'code="401"' in ln]
    assert any('route="/v1/ocr"' in ln for ln in refused), refused
    assert "/no/such/path" not in text


async def test_multipart_bodies_are_parsed_off_the_event_loop(make_app, monkeypatch):
    """An upload's multipart body is parsed in a worker thread (api.body), not on the event loop:
    twenty 19 MB uploads at once would otherwise hold the loop for 40 ms each, back to back."""
    import threading

    from starlette.formparsers import MultiPartParser

    threads: list[str] = []
    real = MultiPartParser.parse

    async def recording(self):
        threads.append(threading.current_thread().name)
        return await real(self)

    monkeypatch.setattr(MultiPartParser, "parse", recording)
    app = make_app()
    async with app.router.lifespan_context(app):
        loop_thread = threading.current_thread().name
        r = await Api(app).http.post("/v1/ocr/upload", files={"file": ("a.png", bars_png(), "image/png")})
        bad = await Api(app).http.post("/v1/ocr/upload", content=b"--x\\r\\nnot a part",
                                       headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 200 and r.json()["lines"], r.text
    assert bad.status_code in (400, 422) and bad.json()["error"]["code"] in ("bad_request", "invalid_request"), bad.text
    assert threads and loop_thread not in threads, (threads, loop_thread)
