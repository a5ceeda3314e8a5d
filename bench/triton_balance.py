"""How the service's calls spread over Triton pods as they scale: a ClusterIP Service against
client-side balancing (``OCR_TRITON_BALANCE=dns`` over a headless Service).

    python -m bench.triton_balance                       # writes docs/artifacts/triton-balance.json
    python -m bench.triton_balance --phase-s 8 --out /tmp/balance.json

Two real Tritons (``make triton``'s server, the default model set) on two addresses, and the
service's pipeline in this process on the Triton backend, reading the benchmark's images at
``--concurrency`` pages at once. Three phases, the same for both ways of reaching Triton:

1. ``one pod``: only Triton A is in the Service;
2. ``scaled to two``: Triton B joins (the autoscaler added a pod);
3. ``A leaves``: A is taken out (its pod is terminating and drains; it still answers).

- ``clusterip``: ``OCR_TRITON_URL`` is a stand-in for a ClusterIP Service (``bench.proxy.
  ServiceProxy``: each new TCP connection goes to a pod picked at random, as kube-proxy does);
  ``OCR_TRITON_BALANCE=off``.
- ``headless + dns``: ``OCR_TRITON_BALANCE=dns``; the headless Service's DNS answer (one address
  per ready pod) is scripted by the phase (A; A and B; B), in place of a cluster's DNS, and
  re-read every ``OCR_TRITON_RESOLVE_S`` (1 s here).

Each Triton's own count of inference calls (``nv_inference_request_success``, every model) is read
at the phase boundaries: the artifact gives each phase's share of calls per Triton, pages done and
pages failed. On 2 cores the two Tritons share the same CPUs, so pages/s says nothing of scaling;
the shares are the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from bench.dataset import load
from bench.provenance import provenance
from bench.proxy import ServiceProxy
from bench.run import command_line, machine
from evaluation import EVAL_DIR
from harness.localserver import free_port
from preprocess_service.backends import create_backend
from preprocess_service.model_sets import DEFAULT_MODEL_SET, MODEL_SETS
from preprocess_service.options import RequestOptions
from preprocess_service.pipeline import Pipeline
from preprocess_service.settings import Settings
from triton_local.launch import LocalTriton

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "docs" / "artifacts" / "triton-balance.json"
TRITON_VENV = ROOT / ".venv-triton"
PHASES = ("one pod", "scaled to two", "A leaves")
MODES = ("clusterip", "headless + dns")
_SUCCESS = re.compile(r"^nv_inference_request_success\{[^}]*\}\s+([0-9.e+]+)$", re.M)


def calls(triton: LocalTriton) -> int:
    """Inference calls Triton has answered so far, every model."""
    with urllib.request.urlopen(triton.metrics_url, timeout=5) as r:
        text = r.read().decode()
    return int(sum(float(v) for v in _SUCCESS.findall(text)))


async def drive(mode: str, tritons: dict[str, LocalTriton], pages: list[np.ndarray], concurrency: int,
                phase_s: float) -> dict:
    members = {"one pod": ["A"], "scaled to two": ["A", "B"], "A leaves": ["B"]}
    current = {"names": members[PHASES[0]]}
    proxy = None
    if mode == "clusterip":
        proxy = ServiceProxy([tritons[n].http_port for n in current["names"]]).__enter__()
        settings = Settings(api_tokens="unused-in-process", backend="triton", triton_url=f"127.0.0.1:{proxy.port}")
        resolver = None
    else:
        settings = Settings(api_tokens="unused-in-process", backend="triton", triton_url="triton-headless:8000",
                            triton_balance="dns", triton_resolve_s=1.0)

        async def resolver(host: str, port: int) -> list[str]:  # the scripted headless Service answer
            return [tritons[n].url for n in current["names"]]
    backend = create_backend(settings, triton_resolver=resolver)
    pipeline = await Pipeline.create(settings, backend)
    done = failed = 0
    stop = asyncio.Event()

    async def worker(k: int) -> None:
        nonlocal done, failed
        i = k
        while not stop.is_set():
            try:
                await pipeline.read(pages[i % len(pages)], RequestOptions())
                done += 1
            except Exception as exc:  # counted, and the run goes on: a lost page is a result here
                failed += 1
                print(f"  {mode}: page failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            i += concurrency

    phases = []
    tasks = [asyncio.create_task(worker(k)) for k in range(concurrency)]
    try:
        for phase in PHASES:
            current["names"] = members[phase]
            if proxy is not None:
                proxy.backends = [tritons[n].http_port for n in members[phase]]
            before = {n: calls(t) for n, t in tritons.items()}
            done0, failed0, t0 = done, failed, time.monotonic()
            await asyncio.sleep(phase_s)
            after = {n: calls(t) for n, t in tritons.items()}
            seconds = time.monotonic() - t0
            per = {n: after[n] - before[n] for n in tritons}
            total = sum(per.values()) or 1
            phases.append({"phase": phase, "in_service": members[phase], "seconds": round(seconds, 1),
                           "pages": done - done0, "failed": failed - failed0,
                           "pages_per_s": round((done - done0) / seconds, 2),
                           "calls": per, "share": {n: round(per[n] / total, 3) for n in tritons}})
            print(f"  {mode:15s} {phase:14s} pages {done - done0:4d}  failed {failed - failed0}  "
                  + "  ".join(f"{n} {per[n] / total:5.1%}" for n in tritons), flush=True)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await backend.close()
        if proxy is not None:
            proxy.__exit__(None, None, None)
    out = {"settings": {"OCR_TRITON_URL": settings.triton_url, "OCR_TRITON_BALANCE": settings.triton_balance,
                        "OCR_TRITON_RESOLVE_S": settings.triton_resolve_s}, "phases": phases}
    if proxy is not None:
        out["connections_opened"] = {n: proxy.connections.get(t.http_port, 0) for n, t in tritons.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phase-s", type=float, default=20.0, help="seconds per phase")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ARTIFACT)
    args = ap.parse_args(argv)
    pages = [cv2.imdecode(np.frombuffer(it.data, np.uint8), cv2.IMREAD_COLOR) for it in load(EVAL_DIR)]
    models = [m for m in MODEL_SETS[DEFAULT_MODEL_SET].folders().values() if m]
    with tempfile.TemporaryDirectory() as tmp:
        tritons = {n: LocalTriton(TRITON_VENV, Path(tmp) / n, http_port=free_port(), grpc_port=free_port(),
                                  metrics_port=free_port(), models=models) for n in ("A", "B")}
        try:
            for t in tritons.values():
                t.start()
            results = {mode: asyncio.run(drive(mode, tritons, pages, args.concurrency, args.phase_s))
                       for mode in MODES}
        finally:
            for t in tritons.values():
                t.stop()
    doc = {"command": command_line("bench.triton_balance", argv), "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": machine(), **provenance(DEFAULT_MODEL_SET), "pages": len(pages), "concurrency": args.concurrency,
           "phase_s": args.phase_s, "modes": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print("\n| mode | phase | in the Service | pages | failed | share A | share B |\n|---|---|---|---|---|---|---|")
    for mode, r in results.items():
        for p in r["phases"]:
            print(f"| {mode} | {p['phase']} | {'+'.join(p['in_service'])} | {p['pages']} | {p['failed']} | "
                  f"{p['share']['A']:.0%} | {p['share']['B']:.0%} |")
    print(f"wrote {args.out}")
    lost = sum(p["failed"] for r in results.values() for p in r["phases"])
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
