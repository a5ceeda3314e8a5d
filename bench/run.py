"""Side-by-side benchmark: our service (embedded and through Triton), RapidOCR, PaddleOCR, the floor.

One run, one machine, the same images (evaluation/data plus rendered labels of several sizes) and
the same PP-OCRv6 small ONNX files for every system:

- ``ours``          this service, embedded onnxruntime backend, over HTTP (POST /v1/ocr);
- ``ours-triton``   this service over the local Triton (make triton's server), over HTTP;
- ``rapidocr``      RapidOCR 3.10 behind a minimal FastAPI wrapper (bench/peers/server.py, .venv-rapid);
- ``paddleocr``     PaddleOCR 3.7's pipeline, engine onnxruntime, same wrapper (.venv-ref);
- ``fastpaddle-*``  faster-paddle 1.0.4 (Rust, onnxruntime 1.28), same wrapper (.venv-fastpaddle), on the
                    PP-OCRv6 models inside its wheel (it cannot be given ours; the same weights, another
                    export: bench/peers/fastpaddle_models.py): ``-small`` / ``-tiny`` at its own defaults
                    (detection long side 1600), ``-small-960`` / ``-tiny-960`` at our detection limit;
- ``floor``         the pure onnxruntime forward passes our pipeline makes, replayed (bench/floor.py).

For each: images/s at concurrency 1, 4 and 8; p50/p95 latency; peak RSS of the whole process tree
(Triton's server and stubs included for ours-triton); CER with evaluation/scoring.py's rules.
Then a soak: N requests (default 5,000) against ours, RSS after warm-up vs at the end.

    .venv/bin/python -m bench.run [--systems ...] [--concurrency 1 4 8] [--rounds 1] [--soak 5000]

Prints a table, writes bench/results.json and bench/results.png. ``make bench`` sets up the
peers' environments and runs this.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import queue
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import psutil
import yaml

from bench import targets as targets_
from bench.dataset import BenchItem, load
from bench.floor import FLOOR_MODEL_SET
from bench.peers import fastpaddle_models
from bench.proxy import CountingProxy
from bench.timing import percentile, run_threads
from evaluation import EVAL_DIR
from evaluation.scoring import PredLine, score_item
from export_scripts.fetch_models import MODELS, stage_published
from harness.localserver import LocalServer, free_port
from preprocess_service.model_sets import DEFAULT_MODEL_SET, MODEL_SETS
from preprocess_service.settings import PROJECT_ROOT
from triton_local.launch import LocalTriton

DET, REC = "ppocrv6_small_det", "ppocrv6_small_rec"
# faster-paddle systems: (model size, detection long-side limit; None: its default, 1600)
FASTPADDLE = {
    "fastpaddle-small": ("small", None),
    "fastpaddle-tiny": ("tiny", None),
    "fastpaddle-small-960": ("small", 960),  # our det_limit_side_len
    "fastpaddle-tiny-960": ("tiny", 960),
}
SYSTEMS = ["ours", "ours-triton", "rapidocr", "paddleocr", *FASTPADDLE, "floor"]
RAPID_VENV = PROJECT_ROOT / ".venv-rapid"
REF_VENV = PROJECT_ROOT / ".venv-ref"
FASTPADDLE_VENV = PROJECT_ROOT / ".venv-fastpaddle"
TRITON_VENV = PROJECT_ROOT / ".venv-triton"
PEER_SERVER = PROJECT_ROOT / "bench" / "peers" / "server.py"


# ---------------------------------------------------------------- memory


class RssSampler:
    """Peak and latest resident memory of process trees, sampled every 50 ms on a thread."""

    def __init__(self, pids: list[int], interval: float = 0.05):
        self.pids, self.interval = pids, interval
        self.peak = self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> int:
        total = 0
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        return total

    def _loop(self):
        while not self._stop.is_set():
            self.last = self.sample()
            self.peak = max(self.peak, self.last)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- systems


@dataclass
class Target:
    """A running system: where to send a request (every system answers {"lines": [...]})."""

    url: str
    headers: dict[str, str]
    pids: list[int]
    stop: callable
    info: dict = field(default_factory=dict)
    proxy: CountingProxy | None = None  # between the service and Triton, for ours-triton


def start_ours(work: Path, backend: str, extra_env: dict[str, str] | None = None) -> Target:
    token = secrets.token_urlsafe(16)
    env = {"OCR_API_TOKENS": token, "OCR_LOG_LEVEL": "warning", **(extra_env or {})}
    triton = proxy = None
    if backend == "triton":
        # the models the service will ask for: its default set's, or the one the variant names
        folders = MODEL_SETS[env.get("OCR_MODEL_SET", os.environ.get("OCR_MODEL_SET", DEFAULT_MODEL_SET))].folders()
        triton = LocalTriton(TRITON_VENV, work / "triton", http_port=free_port(), grpc_port=free_port(),
                             metrics_port=free_port(), models=[folders["det"], folders["rec"]],
                             log_path=work / "triton.log")
        triton.start()
        # every byte between the service and Triton is counted (bytes per page on the hop)
        proxy = CountingProxy(triton.http_port).__enter__()
        env |= {"OCR_BACKEND": "triton", "OCR_TRITON_URL": f"127.0.0.1:{proxy.port}"}
    srv = LocalServer(env, log_path=work / f"ours-{backend}-{secrets.token_hex(3)}.log").start()
    info = httpx.get(f"{srv.url}/readyz").json()
    if proxy is not None:
        proxy.reset()

    def stop():
        srv.stop()
        if proxy:
            proxy.__exit__(None, None, None)
        if triton:
            triton.stop()

    pids = [srv.proc.pid] + ([triton.proc.pid] if triton else [])
    return Target(f"{srv.url}/v1/ocr", {"Authorization": f"Bearer {token}"}, pids, stop, info, proxy)


def stage_peer_models(work: Path) -> dict[str, Path]:
    """The same model files for the peers, as the model source publishes them (no CTC head),
    in the layouts the peers want: PaddleOCR folders (inference.onnx + inference.yml) and, for
    RapidOCR, the files plus a keys file holding the dictionary of inference.yml."""
    cache = PROJECT_ROOT / ".cache" / "wheels"
    out = {}
    for name in (DET, REC):
        out[name] = stage_published(name, work / "peer-models" / name, PROJECT_ROOT / "model_repository", cache)
    doc = yaml.safe_load((out[REC] / "inference.yml").read_text(encoding="utf-8"))
    keys = out[REC] / "keys.txt"
    keys.write_text("\n".join(doc["PostProcess"]["character_dict"]) + "\n", encoding="utf-8")
    out["keys"] = keys
    return out


def start_peer(work: Path, engine: str, models: dict[str, Path], timeout: float = 300) -> Target:
    """A peer behind bench/peers/server.py; `engine` is the system's name (rapidocr, paddleocr or
    one of FASTPADDLE, which take no model files: `models` may then be empty)."""
    port = free_port()
    info = {}
    if engine == "rapidocr":
        python = RAPID_VENV / "bin" / "python"
        args = ["--engine", "rapidocr", "--det", str(models[DET] / "inference.onnx"),
                "--rec", str(models[REC] / "inference.onnx"), "--keys", str(models["keys"])]
    elif engine in FASTPADDLE:
        python = FASTPADDLE_VENV / "bin" / "python"
        size, det_max_side = FASTPADDLE[engine]
        args = ["--engine", "fastpaddle", "--model-size", size]
        if det_max_side:
            args += ["--det-max-side", str(det_max_side)]
        info = fastpaddle_models.models_info(size, {n: m.onnx_sha256 for n, m in MODELS.items()})
    else:
        python = REF_VENV / "bin" / "python"
        args = ["--engine", "paddleocr", "--det-dir", str(models[DET]), "--rec-dir", str(models[REC])]
    if not python.exists():
        raise SystemExit(f"{python} missing: run `make bench` (it builds the peers' environments)")
    log = open(work / f"{engine}.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    proc = subprocess.Popen([str(python), str(PEER_SERVER), "--port", str(port), *args],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{engine} wrapper exited with {proc.returncode}; see {work / (engine + '.log')}")
        try:
            r = httpx.get(f"{url}/readyz", timeout=2)
            if r.status_code == 200:
                # what the wrapper reports beyond readiness (faster-paddle: version, resolved config)
                info = {k: v for k, v in r.json().items() if k != "ready"} | info
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"{engine} wrapper not ready after {timeout}s")
        time.sleep(0.3)

    def stop():
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    return Target(f"{url}/ocr", {}, [proc.pid], stop, info)


# ---------------------------------------------------------------- load


def drive(target: Target, bodies: dict[str, bytes], names: list[str], concurrency: int) -> dict:
    """Send every named image once with `concurrency` clients; latencies, statuses, answers.

    503/429 answers (our service's backpressure) are retried after their Retry-After; a
    request's latency runs from its first try to its final answer."""
    work: queue.Queue[str] = queue.Queue()
    for n in names:
        work.put(n)
    lat, statuses, retries, answers = [], {}, {}, {}
    lock = threading.Lock()
    headers = {**target.headers, "Content-Type": "application/json"}

    def worker():
        with httpx.Client(timeout=600) as client:
            while True:
                try:
                    n = work.get_nowait()
                except queue.Empty:
                    return
                t = time.perf_counter()
                while True:
                    r = client.post(target.url, content=bodies[n], headers=headers)
                    if r.status_code not in (429, 503):
                        break
                    # a well-behaved client (like `ocr send`): wait as told, try again
                    with lock:
                        retries[r.status_code] = retries.get(r.status_code, 0) + 1
                    time.sleep(min(float(r.headers.get("Retry-After", 1)), 5.0))
                dt = time.perf_counter() - t
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        lat.append(dt)
                        answers[n] = r.json()["lines"]

    wall = run_threads(worker, concurrency)
    return {"requests": len(names), "ok": len(lat), "statuses": statuses, "retried": retries, "wall_s": wall,
            "images_per_s": len(lat) / wall, "p50_ms": percentile(lat, 50) * 1000,
            "p95_ms": percentile(lat, 95) * 1000, "answers": answers}


def request_bodies(items: list[BenchItem]) -> dict[str, bytes]:
    """The JSON body of each image, encoded once: every system gets the same bytes."""
    return {it.name: json.dumps({"image": base64.b64encode(it.data).decode()}).encode() for it in items}


def cer(items: list[BenchItem], answers: dict[str, list[dict]]) -> dict:
    errors = chars = 0
    per = {}
    for it in items:
        pred = [PredLine(ln["text"], ln["box"]) for ln in answers.get(it.name, [])]
        s = score_item(pred, it.gt_lines, it.rule, it.dont_care)
        errors += s.errors
        chars += s.gt_chars
        per[it.name] = round(s.cer, 4)
    return {"cer": errors / max(chars, 1), "per_image": per}


def bench_http(system: str, target: Target, items: list[BenchItem], levels: list[int], rounds: int,
               answers_out: dict | None = None) -> dict:
    """Every concurrency level in turn; CER from the first. `answers_out` receives that level's
    answers (the response lines per image) when given."""
    bodies = request_bodies(items)
    names = [it.name for it in items]
    with RssSampler(target.pids) as rss:
        idle = rss.sample()
        # warm-up: the smallest and the largest image, so first-call costs are not timed
        by_size = sorted(items, key=lambda it: it.size[0] * it.size[1])
        drive(target, bodies, [by_size[0].name, by_size[-1].name], 1)
        result = {"rss_idle_mb": idle / 2**20, "levels": {}}
        for c in levels:
            r = drive(target, bodies, names * rounds, c)
            answers = r.pop("answers")
            if c == levels[0]:
                result |= cer(items, answers)
                if answers_out is not None:
                    answers_out.update(answers)
            result["levels"][str(c)] = r
            print(f"  {system:12s} c={c}: {r['images_per_s']:.2f} img/s, p50 {r['p50_ms']:.0f} ms, "
                  f"p95 {r['p95_ms']:.0f} ms, {r['ok']}/{r['requests']} ok", flush=True)
    result["rss_peak_mb"] = rss.peak / 2**20
    if target.info:
        result["service"] = target.info
    return result


def bench_floor(eval_dir: Path, work: Path, levels: list[int], rounds: int, images: list[str] | None) -> dict:
    out = work / "floor.json"
    cmd = [sys.executable, "-m", "bench.floor", "--eval-dir", str(eval_dir), "--out", str(out),
           "--rounds", str(rounds), "--concurrency", *map(str, levels)]
    if images:
        cmd += ["--images", *images]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    proc = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT)
    with RssSampler([proc.pid]) as rss:
        rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"bench.floor exited with {rc}")
    data = json.loads(out.read_text())
    for c, r in data["levels"].items():
        print(f"  {'floor':12s} c={c}: {r['images_per_s']:.2f} img/s, p50 {r['p50_ms']:.0f} ms, "
              f"p95 {r['p95_ms']:.0f} ms", flush=True)
    return {"levels": data["levels"], "rss_peak_mb": rss.peak / 2**20, "per_image_ms": data["per_image_ms"],
            "note": "holds every image's recorded tensors in memory; its RSS is not comparable"}


def soak(items: list[BenchItem], work: Path, requests: int, concurrency: int, max_pixels: int) -> dict:
    """RSS of the embedded service over `requests` requests cycling through the images up to
    `max_pixels` (so the run stays minutes long). Baseline: after the first tenth (warm-up:
    every image and shape seen under concurrency); then RSS after each further tenth, so a
    plateau and a leak look different."""
    small = [it for it in items if it.size[0] * it.size[1] <= max_pixels]
    bodies = request_bodies(small)
    names = [small[i % len(small)].name for i in range(requests)]
    target = start_ours(work, "onnxruntime")
    try:
        warm = max(len(small), requests // 10)
        sampler = RssSampler(target.pids)
        t0 = time.perf_counter()
        drive(target, bodies, names[:warm], concurrency)
        base = sampler.sample()
        trajectory, ok, statuses = [], 0, {}
        step = max(1, (requests - warm) // 9)
        for start in range(warm, requests, step):
            r = drive(target, bodies, names[start:start + step], concurrency)
            ok += r["ok"]
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
            trajectory.append([start + len(names[start:start + step]), round(sampler.sample() / 2**20, 1)])
        end = sampler.sample()
        wall = time.perf_counter() - t0
    finally:
        target.stop()
    return {"requests": requests, "warmup_requests": warm, "images": len(small), "concurrency": concurrency,
            "ok_after_warmup": ok, "statuses_after_warmup": statuses, "wall_s": wall,
            "rss_after_warmup_mb": base / 2**20, "rss_end_mb": end / 2**20,
            "rss_growth_pct": 100 * (end - base) / base, "rss_mb_by_request": trajectory}


# ---------------------------------------------------------------- report


def table(results: dict, levels: list[int]) -> str:
    head = ["system"] + [f"img/s c={c}" for c in levels] + ["p50 ms c=1", "p95 ms c=1",
                                                           f"p50 ms c={levels[1] if len(levels) > 1 else levels[0]}",
                                                           "peak RSS MiB", "CER"]
    rows = []
    for name, r in results["systems"].items():
        lv = r["levels"]
        c2 = str(levels[1] if len(levels) > 1 else levels[0])
        rows.append([name] + [f"{lv[str(c)]['images_per_s']:.2f}" for c in levels]
                    + [f"{lv[str(levels[0])]['p50_ms']:.0f}", f"{lv[str(levels[0])]['p95_ms']:.0f}",
                       f"{lv[c2]['p50_ms']:.0f}", f"{r['rss_peak_mb']:.0f}",
                       f"{r['cer']:.4f}" if "cer" in r else "-"])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def targets(results: dict) -> list[str]:
    s = results["systems"]
    lines = []
    if "ours" in s:
        ours = s["ours"]
        peers = [p for p in ("rapidocr", "paddleocr", *FASTPADDLE) if p in s and "cer" in s[p]]
        if peers and "4" in ours["levels"]:
            best = max(peers, key=lambda p: s[p]["levels"]["4"]["images_per_s"])
            ratio = ours["levels"]["4"]["images_per_s"] / s[best]["levels"]["4"]["images_per_s"]
            lines.append(f"throughput c=4: ours / {best} (the fastest peer) = {ratio:.2f}x; "
                         f"CER ours {ours['cer']:.4f} vs {best} {s[best]['cer']:.4f}")
            fair = [p for p in peers if s[p]["cer"] <= ours["cer"]]
            if fair:
                best = max(fair, key=lambda p: s[p]["levels"]["4"]["images_per_s"])
                ratio = ours["levels"]["4"]["images_per_s"] / s[best]["levels"]["4"]["images_per_s"]
                lines.append(f"throughput c=4 against the fastest peer at equal or better CER: ours / {best} = "
                             f"{ratio:.2f}x (target >= {targets_.SPEEDUP_C4}x)")
            else:
                lines.append("no peer reaches our CER: the fastest peer at equal or better CER does not exist in this run")
        if "ours-triton" in s and "4" in ours["levels"]:
            tr = s["ours-triton"]
            ratio = tr["levels"]["4"]["images_per_s"] / ours["levels"]["4"]["images_per_s"]
            lines.append(f"throughput c=4: ours-triton / ours = {ratio:.2f}x (target >= {targets_.TRITON_RATIO}x)")
            if "triton_hop" in tr:
                hop = tr["triton_hop"]
                lines.append(f"Triton hop: {hop['bytes_to_triton_per_page'] / 1e6:.2f} MB to Triton and "
                             f"{hop['bytes_from_triton_per_page'] / 1e6:.2f} MB back per page")
        if "floor" in s and "1" in ours["levels"]:
            ratio = ours["levels"]["1"]["p50_ms"] / s["floor"]["levels"]["1"]["p50_ms"]
            mean_ratio = (1 / ours["levels"]["1"]["images_per_s"]) / (1 / s["floor"]["levels"]["1"]["images_per_s"])
            lines.append(f"latency c=1: ours / floor = {ratio:.2f}x at the median, {mean_ratio:.2f}x in total "
                         f"time (target <= {targets_.LATENCY_C1}x)")
    if "soak" in results:
        k = results["soak"]
        lines.append(f"RSS over {k['requests']} requests: {k['rss_after_warmup_mb']:.0f} -> {k['rss_end_mb']:.0f} MiB "
                     f"({k['rss_growth_pct']:+.1f}%, target < {targets_.RSS_GROWTH_PCT:g}%)")
    return lines


def chart(results: dict, levels: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["systems"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(levels)
    x = np.arange(len(names))
    for i, c in enumerate(levels):
        vals = [results["systems"][n]["levels"][str(c)]["images_per_s"] for n in names]
        ax1.bar(x + i * width, vals, width, label=f"concurrency {c}")
    ax1.set_xticks(x + width * (len(levels) - 1) / 2, names, rotation=30, ha="right")
    ax1.set_ylabel("images / s")
    ax1.set_title("Throughput (higher is better)")
    ax1.legend()
    p50 = [results["systems"][n]["levels"][str(levels[0])]["p50_ms"] for n in names]
    p95 = [results["systems"][n]["levels"][str(levels[0])]["p95_ms"] for n in names]
    ax2.bar(x - 0.2, p50, 0.4, label="p50")
    ax2.bar(x + 0.2, p95, 0.4, label="p95")
    ax2.set_xticks(x, names, rotation=30, ha="right")
    ax2.set_ylabel("ms")
    ax2.set_yscale("log")
    ax2.set_title(f"Latency at concurrency {levels[0]} (lower is better)")
    ax2.legend()
    fig.suptitle(f"{results['machine']['cpu']} ({results['machine']['cores']} cores), {results['date'][:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def command_line(module: str, argv: list[str] | None) -> str:
    """How a benchmark was invoked, for its artifact: ``python -m <module> <args>``, shell-quoted
    (``argv`` as given to its ``main``; None: the process's own arguments)."""
    return " ".join(["python -m", module, *map(shlex.quote, sys.argv[1:] if argv is None else argv)])


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "providers": onnxruntime.get_available_providers()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    ap.add_argument("--systems", nargs="*", choices=SYSTEMS, default=SYSTEMS)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--rounds", type=int, default=1, help="passes over the image set per concurrency level")
    ap.add_argument("--soak", type=int, default=5000, help="requests of the RSS soak against ours (0: skip)")
    ap.add_argument("--soak-max-pixels", type=int, default=1_500_000)
    ap.add_argument("--images", nargs="+", help="only these image names (quick checks)")
    ap.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "artifacts" / "bench.json")
    args = ap.parse_args(argv)

    items = [it for it in load(args.eval_dir) if not args.images or it.name in args.images]
    results = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
               "images": {it.name: list(it.size) for it in items}, "concurrency": args.concurrency,
               "rounds": args.rounds, "models": [DET, REC],  # the peers' (published float) models
               "model_sets": {"ours": DEFAULT_MODEL_SET, "floor": FLOOR_MODEL_SET},
               "systems": {}}
    with tempfile.TemporaryDirectory(prefix="ocr-bench-") as tmp:
        work = Path(tmp)
        peer_models = stage_peer_models(work) if {"rapidocr", "paddleocr"} & set(args.systems) else {}
        for system in args.systems:
            print(f"{system}:", flush=True)
            t = time.perf_counter()
            if system == "floor":
                results["systems"][system] = bench_floor(args.eval_dir, work, args.concurrency, args.rounds, args.images)
                continue
            if system in ("ours", "ours-triton"):
                target = start_ours(work, "triton" if system == "ours-triton" else "onnxruntime")
            else:
                target = start_peer(work, system, peer_models)
            start_s = time.perf_counter() - t
            try:
                results["systems"][system] = bench_http(system, target, items, args.concurrency, args.rounds)
                results["systems"][system]["start_s"] = start_s
                if target.proxy is not None:  # every page posted, the two warm-up pages included
                    levels = results["systems"][system]["levels"].values()
                    pages = 2 + sum(lv["requests"] for lv in levels)
                    results["systems"][system]["triton_hop"] = {
                        "pages": pages, "bytes_to_triton_per_page": target.proxy.up / pages,
                        "bytes_from_triton_per_page": target.proxy.down / pages}
            finally:
                target.stop()
        if args.soak:
            print(f"soak: {args.soak} requests against ours", flush=True)
            results["soak"] = soak(items, work, args.soak, 4, args.soak_max_pixels)
    results["targets"] = targets(results)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    print()
    print(f"{results['date']} - {results['machine']['cpu']}, {results['machine']['cores']} cores, "
          f"{len(items)} images x {args.rounds} round(s) per level")
    print(table(results, args.concurrency))
    for line in results["targets"]:
        print("- " + line)
    if len(args.concurrency) > 1:
        chart(results, args.concurrency, args.out.with_suffix(".png"))
        print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
