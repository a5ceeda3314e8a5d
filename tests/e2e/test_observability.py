"""Metrics, logs and alerts: the service's /metrics, a real Prometheus scraping it and Triton,
promtool on the exposition and the alert rules, JSON logs with request ids."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.localserver import LocalServer, free_port
from tests.conftest import MODELS, ROOT
from tests.helpers import b64

RULES = ROOT / "helm" / "ocr-service" / "files" / "alert-rules.yml"
DASHBOARD = ROOT / "helm" / "ocr-service" / "files" / "grafana-dashboard.json"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found: `make test` installs Debian's prometheus package")
    return path


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return samples.get(key, 0.0)


def test_exposition_passes_promtool(server, client, eval_dir):
    client.post("/v1/ocr", json={"image": b64((eval_dir / "tjs_simple.png").read_bytes())})
    text = httpx.get(f"{server.url}/metrics").text
    r = subprocess.run([_tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_metrics_count_requests_stages_lines_and_models(server, client, eval_dir):
    before = _samples(httpx.get(f"{server.url}/metrics").text)
    ok = client.post("/v1/ocr", json={"image": b64((eval_dir / "tess_phototest.png").read_bytes())})
    bad = client.post("/v1/ocr", json={"image": "%%%"})
    assert ok.status_code == 200 and bad.status_code == 400
    after = _samples(httpx.get(f"{server.url}/metrics").text)

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("ocr_http_requests_total", route="/v1/ocr", method="POST", code="200") == 1
    assert delta("ocr_http_requests_total", route="/v1/ocr", method="POST", code="400") == 1
    for stage in ("decode", "detection", "crop", "recognition", "total"):
        assert delta("ocr_stage_duration_seconds_count", stage=stage, backend="onnxruntime") == 1, stage
    assert delta("ocr_images_processed_total", backend="onnxruntime") == 1
    assert delta("ocr_text_lines_total", backend="onnxruntime") == 8
    assert _value(after, "ocr_model_info", role="det", model=MODELS[0], backend="onnxruntime",
                  execution_provider="CPUExecutionProvider") == 1
    assert ("ocr_http_requests_in_flight", ()) in after


def test_unknown_paths_do_not_create_label_values(server):
    httpx.get(f"{server.url}/no/such/{secrets.token_hex(4)}")
    text = httpx.get(f"{server.url}/metrics").text
    assert 'route="unmatched"' in text and "/no/such" not in text


def test_json_logs_with_request_id_and_no_secrets(server, client, eval_dir):
    r = client.post("/v1/ocr", json={"image": b64((eval_dir / "tjs_simple.png").read_bytes())},
                    headers={"X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    httpx.get(f"{server.url}/healthz?key={server.token}")
    time.sleep(0.2)
    lines = [ln for ln in server.log.read_text().splitlines() if ln.strip()]
    records = [json.loads(ln) for ln in lines]  # every line is a JSON object
    access = [r for r in records if r.get("logger") == "preprocess_service.access"]
    mine = [r for r in access if r.get("request_id") == "trace-42"]
    assert mine and mine[0]["status"] == 200 and mine[0]["route"] == "/v1/ocr" and mine[0]["duration_ms"] > 0
    # docs/security.md, "What is logged": time, level, logger, message, request id; method, path,
    # route, status, duration and client address on the access line
    assert {"time", "level", "logger", "message", "request_id", "method", "path", "route", "status", "duration_ms",
            "client"} <= set(mine[0]), sorted(mine[0])
    assert mine[0]["method"] == "POST" and mine[0]["path"] == "/v1/ocr" and mine[0]["client"].startswith("127.0.0.1")
    text = server.log.read_text()
    assert server.token not in text and "key=[REDACTED]" in text
    assert b64((eval_dir / "tjs_simple.png").read_bytes())[:40] not in text  # no image data


def test_several_worker_processes_report_one_total(tmp_path, eval_dir):
    token = secrets.token_urlsafe(16)
    data = b64((eval_dir / "pp_word_10.png").read_bytes())
    with LocalServer({"OCR_API_TOKENS": token, "OCR_WORKERS": "2"}, log_path=tmp_path / "svc.log") as srv:
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(4) as pool:
                codes = list(pool.map(lambda _: c.post(f"{srv.url}/v1/ocr", json={"image": data}).status_code, range(12)))
            assert codes == [200] * 12
            pids = {json.loads(ln).get("message") for ln in (tmp_path / "svc.log").read_text().splitlines()
                    if "Started server process" in ln}
            assert len(pids) >= 2  # two workers really ran
            for _ in range(4):  # whichever worker answers /metrics reports all of them
                samples = _samples(c.get(f"{srv.url}/metrics").text)
                assert _value(samples, "ocr_http_requests_total", route="/v1/ocr", method="POST", code="200") == 12
                assert _value(samples, "ocr_images_processed_total", backend="onnxruntime") == 12


def test_alert_rules_pass_promtool_check_and_unit_tests():
    promtool = _tool("promtool")
    r = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([promtool, "test", "rules", str(ROOT / "tests" / "prometheus" / "alert-rules.test.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def _query(prom: str, expr: str) -> list:
    r = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert r["status"] == "success", (expr, r)
    return r["data"]["result"]


def test_real_prometheus_scrapes_service_and_triton(server, client, triton, triton_service, tmp_path, eval_dir):
    prom_port = free_port()
    svc_triton, svc_token = triton_service
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "ocr-service", "static_configs": [{"targets": [server.url.removeprefix("http://"),
                                                                         svc_triton.url.removeprefix("http://")]}]},
            {"job_name": "triton", "static_configs": [{"targets": [f"127.0.0.1:{triton.metrics_port}"]}]},
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [_tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
        stdout=open(tmp_path / "prometheus.log", "wb"), stderr=subprocess.STDOUT,
    )
    prom = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{prom}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.3)
        image = b64((eval_dir / "tjs_simple.png").read_bytes())
        for _ in range(3):
            assert client.post("/v1/ocr", json={"image": image}).status_code == 200
            r = httpx.post(f"{svc_triton.url}/v1/ocr", json={"image": image},
                           headers={"Authorization": f"Bearer {svc_token}"}, timeout=60)
            assert r.status_code == 200
        expected = {
            'sum(ocr_http_requests_total{job="ocr-service", route="/v1/ocr", code="200"})': 6,
            'sum(ocr_images_processed_total{backend="triton"})': 3,
            f'sum(nv_inference_request_success{{job="triton", model="{MODELS[0]}"}})': 3,
            f'sum(nv_inference_request_success{{job="triton", model="{MODELS[1]}"}})': 3,
            'count(up{job=~"ocr-service|triton"} == 1)': 3,
        }
        deadline = time.monotonic() + 30
        while True:
            got = {e: float(res[0]["value"][1]) if (res := _query(prom, e)) else 0.0 for e in expected}
            if all(got[e] >= v for e, v in expected.items()):
                break
            assert time.monotonic() < deadline, got
            time.sleep(1)
        info = _query(prom, 'ocr_model_info{role="rec"}')
        providers = {s["metric"]["execution_provider"] for s in info}
        assert providers == {"CPUExecutionProvider", "triton:onnxruntime:KIND_CPU"}
        # every dashboard query returns series from what Prometheus scraped (the dashboard's variables
        # as a user picks "all"), except the panels whose series cannot exist in this run
        assert httpx.post(f"{server.url}/v1/ocr", json={"image": image}).status_code == 401  # a refusal
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        assert len(exprs) >= 12
        no_series_here = {'code=~"5.."': "no 5xx in this run", "ocr_backend_errors_total": "no backend errors",
                          "nv_gpu_": "a CPU Triton exports no GPU metrics", "DCGM_": "no DCGM exporter here"}
        variables = {"$__rate_interval": "1m", "$namespace": ".*", "$triton_job": "triton", "$job": "ocr-service",
                     "$pod": ".*"}
        empty = []
        deadline = time.monotonic() + 30
        for expr in exprs:
            query = expr
            for name, value in variables.items():
                query = query.replace(name, value)
            expected_empty = any(k in expr for k in no_series_here)
            while not (result := _query(prom, query)) and not expected_empty and time.monotonic() < deadline:
                time.sleep(1)  # a rate needs two scrapes after the requests
            if not result and not expected_empty:
                empty.append(expr)
        assert not empty, f"dashboard queries with no series: {empty}"
        # a rate needs two scrapes after the requests: wait for the next one rather than race it
        quantile = 'histogram_quantile(0.5, sum by (le, stage) (rate(ocr_stage_duration_seconds_bucket[1m])))'
        deadline = time.monotonic() + 30
        while not _query(prom, quantile):
            assert time.monotonic() < deadline, "no stage-duration rate after 30 s of scrapes"
            time.sleep(1)
        # every ocr_* metric the alert rules, the dashboard and the docs name is one the service exports
        exported = {f.name for f in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text)}
        exported |= {n + suffix for n in exported for suffix in ("_total", "_bucket", "_count", "_sum", "_created")}
        named = set()
        for source in (RULES, DASHBOARD, ROOT / "docs" / "observability.md", ROOT / "docs" / "operations.md"):
            named |= set(re.findall(r"\bocr_[a-z_]+[a-z]", source.read_text()))
        assert named and not named - exported, sorted(named - exported)
        # the alert rules loaded into the real server
        rules = httpx.get(f"{prom}/api/v1/rules").json()["data"]["groups"]
        assert {g["name"] for g in rules} == {"ocr-service", "triton"}
    finally:
        proc.terminate()
        proc.wait(20)


def test_made_up_methods_do_not_make_new_series(server):
    """The HTTP method is the client's choice: beyond the standard ones every method is counted as
    "other", so 300 made-up methods add one series, not 300 (and /metrics stays small)."""
    before = httpx.get(f"{server.url}/metrics").text
    with httpx.Client(base_url=server.url, timeout=10) as c:
        codes = {c.request(f"X{i:03d}EVIL", "/healthz").status_code for i in range(300)}
    assert codes <= {400, 404, 405, 501}, codes
    text = httpx.get(f"{server.url}/metrics").text
    assert "EVIL" not in text
    assert 'method="other"' in text
    assert len(text) < len(before) + 4000  # a handful of new series at most, whatever the methods
