"""Triton locked down as the chart runs it, checked on the real Triton on loopback: the rendered
restricted-API flag (model repository, shared memory, logging, trace behind the admin key) is
accepted by tritonserver, refuses those APIs without the key, and leaves the service's own calls
(health, metadata, config, inference) working; the sidecar's loopback exec probes answer as the
kubelet would read them."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import urllib.error
import urllib.request

import cv2
import numpy as np

from harness.localserver import free_port
from preprocess_service.backends import create_backend
from preprocess_service.options import RequestOptions
from preprocess_service.pipeline import Pipeline
from preprocess_service.settings import Settings
from tests.conftest import MODELS, TRITON_VENV
from tests.e2e.test_helm import by_kind, render
from tests.helpers import render_lines
from triton_local.launch import LocalTriton


def _triton_container(docs, colocated: bool) -> dict:
    name = "rel-ocr-service" if colocated else "rel-ocr-service-triton"
    [dep] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == name]
    [c] = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "triton"]
    return c


def _call(url: str, path: str, body: bytes | None = None, headers: dict | None = None) -> int:
    req = urllib.request.Request(f"http://{url}{path}", data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_rendered_restrictions_hold_on_a_real_triton(tmp_path):
    docs = render(["--set", "backend=triton"])
    c = _triton_container(docs, colocated=False)
    [flag] = [a for a in c["args"] if a.startswith("--http-restricted-api=")]
    [secret] = [s for s in by_kind(docs, "Secret") if s["metadata"]["name"] == "rel-ocr-service-triton-admin"]
    key = base64.b64decode(secret["data"]["admin-key"]).decode()
    assert len(key) >= 32 and key not in str(c)  # the pod spec names the Secret, never the key
    [env] = [e for e in c["env"] if e["name"] == "TRITON_ADMIN_KEY"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "rel-ocr-service-triton-admin", "key": "admin-key"}
    own = render(["--set", "backend=triton,triton.adminSecret=my-admin"])
    assert not [s for s in by_kind(own, "Secret") if "admin" in s["metadata"]["name"]]
    [own_env] = [e for e in _triton_container(own, colocated=False)["env"] if e["name"] == "TRITON_ADMIN_KEY"]
    assert own_env["valueFrom"]["secretKeyRef"]["name"] == "my-admin"
    flag = flag.replace("$(TRITON_ADMIN_KEY)", key)  # what the kubelet expands from env
    triton = LocalTriton(TRITON_VENV, tmp_path / "triton", http_port=free_port(), grpc_port=free_port(),
                         metrics_port=free_port(), models=MODELS, extra_args=[flag])
    with triton:
        url = triton.url
        assert _call(url, "/v2/repository/index", b"{}") == 403
        assert _call(url, f"/v2/repository/models/{MODELS[0]}/unload", b"{}") == 403
        assert _call(url, "/v2/systemsharedmemory/status") == 403
        assert _call(url, "/v2/logging") == 403
        assert _call(url, "/v2/repository/index", b"{}", {"triton-admin-key": key}) == 200
        assert _call(url, "/v2/repository/index", b"{}", {"triton-admin-key": "guess"}) == 403

        async def read_page():
            settings = Settings(api_tokens="x", backend="triton", triton_url=url)
            backend = create_backend(settings)
            try:
                pipeline = await Pipeline.create(settings, backend)
                img = cv2.cvtColor(np.array(render_lines(["locked down"])), cv2.COLOR_RGB2BGR)
                return [line.text for line in (await pipeline.read(img, RequestOptions())).lines]
            finally:
                await backend.close()

        assert "locked down" in asyncio.run(read_page())
        assert _call(url, "/v2/health/ready") == 200  # models still loaded: nothing could unload them


def test_the_sidecar_listens_on_loopback_and_its_exec_probes_work(triton):
    """The sidecar binds 127.0.0.1 (metrics stay on 0.0.0.0 for the scraper); its probes are exec
    probes, run here against the real Triton: 0 while it serves, not 0 where nothing listens."""
    def container(port: int) -> dict:
        return _triton_container(render(["--set", "backend=triton,triton.colocated.enabled=true",
                                         "--set", f"triton.ports.http={port}"]), colocated=True)

    c = container(triton.http_port)
    assert "--http-address=127.0.0.1" in c["args"] and "--metrics-address=0.0.0.0" in c["args"]
    [flag] = [a for a in c["args"] if a.startswith("--http-restricted-api=")]
    assert flag.startswith("--http-restricted-api=model-repository,logging,trace:")  # its API registers shm
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "httpGet" not in c[probe]
        cmd = c[probe]["exec"]["command"]
        assert subprocess.run(cmd, timeout=10).returncode == 0, (probe, cmd)
        dead = container(free_port())[probe]["exec"]["command"]
        assert subprocess.run(dead, timeout=10, capture_output=True).returncode != 0, probe
    standalone = _triton_container(render(["--set", "backend=triton"]), colocated=False)
    assert not any(a.startswith("--http-address") for a in standalone["args"])
    assert standalone["readinessProbe"]["httpGet"]["port"] == "http"


def test_a_probe_fails_on_an_error_answer(triton):
    """A Triton that answers but is not ready fails the probe: the probe reads the status line."""
    c = _triton_container(render(["--set", "backend=triton,triton.colocated.enabled=true",
                                  "--set", f"triton.ports.http={triton.http_port}"]), colocated=True)
    cmd = c["readinessProbe"]["exec"]["command"]
    missing = [cmd[0], cmd[1], cmd[2].replace("/v2/health/ready", "/v2/models/no_such_model/ready")]
    assert subprocess.run(missing, timeout=10).returncode != 0
