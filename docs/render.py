"""Render every measured figure of README.md and docs/*.md from the JSON artifacts in docs/artifacts/.

    python3 docs/render.py           # rewrite the generated regions in place   (make docs)
    python3 docs/render.py --check   # change nothing; exit 1 on any problem   (make docs-check)

A generated region is the text between

    <!-- BEGIN generated: NAME -->
    <!-- END generated: NAME -->

and it is exactly what REGIONS[NAME] makes of the artifacts. Everything outside the regions is
hand-written prose. The check fails when a region differs from what the artifacts give (a figure
edited by hand, or an artifact re-measured without `make docs`), when an artifact a region needs
is missing, when prose outside the regions holds something that looks like a measured figure,
and when a doc names a repository path or links a file that does not exist.
Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path("docs") / "artifacts"
# which command writes each artifact (named in the error when one is missing)
WRITTEN_BY = {
    "bench.json": "make bench (python -m bench.run)",
    "levers.json": "make levers (python -m bench.levers)",
    "levers-defaults.json": "make levers (python -m bench.levers --out docs/artifacts/levers-defaults.json, the "
                            "variants that chose the float defaults)",
    "setup-footprint.json": "make setup-footprint (python -m bench.setup_footprint)",
    "api-example.json": ".venv/bin/python docs/api_example.py",
    "hostile.json": "make hostile (the hostile-client suite, tests/e2e/test_hostile.py)",
    "memory-costs.json": "python -m bench.memory_costs",
    "triton-hop.json": "python -m bench.triton_hop",
    "triton-vs-embedded.json": "python -m bench.pairs --out docs/artifacts/triton-vs-embedded.json "
                               "embedded=onnxruntime ours-triton=triton",
    "det-threads.json": "python -m bench.pairs (the command is in the artifact)",
    "shape-buckets.json": "python -m bench.shapes",
    "batcher.json": "python -m bench.batcher",
    "triton-balance.json": "python -m bench.triton_balance",
    "gpu-bench.json": "bash bench/gpu_run.sh on a GPU machine, from the loads of make gpu-stage (docs/gpu.md)",
    "bench.png": "make bench (python -m bench.run)",
    "gpu-image.json": "make test-image-gpu (tests/image/test-image-gpu.sh)",
    "openvino.json": "python -m bench.openvino_compare",
    "int8.json": "python -m export_scripts.quantize --measure",
}
# a folder beside the repository that a user's clone does not have (spelled so that this file
# itself does not name it)
OUTSIDE = "../" + "shared"
# the capacity page's target: pages per second on one GPU node
CAPACITY_PAGES_PER_S = 1000
PEERS = ("paddleocr", "rapidocr", "fastpaddle-small", "fastpaddle-tiny", "fastpaddle-small-960", "fastpaddle-tiny-960")
# the project's targets, checked against bench.json
sys.path.insert(0, str(ROOT))
from bench.targets import LATENCY_C1 as TARGET_LATENCY_C1  # noqa: E402 - the targets, written once
from bench.targets import RSS_GROWTH_PCT as TARGET_RSS_GROWTH_PCT  # noqa: E402
from bench.targets import SPEEDUP_C4 as TARGET_SPEEDUP_C4  # noqa: E402
from bench.targets import SPEEDUP_FLOOR as TARGET_SPEEDUP_FLOOR  # noqa: E402
from bench.targets import TRITON_RATIO as TARGET_TRITON_RATIO  # noqa: E402

# the adoption rule of a speed lever: accuracy kept against the baseline
from evaluation.rule import MAX_MEAN_CER_RISE as RULE_MEAN_CER  # noqa: E402 - the accuracy rule, written once
from evaluation.rule import MAX_OVERALL_CER_RISE as RULE_CER  # noqa: E402

REGION = re.compile(r"<!-- BEGIN generated: ([\w-]+) -->\n(.*?)<!-- END generated: ([\w-]+) -->", re.S)
MARKER = re.compile(r"<!-- (?:BEGIN|END) generated")
# prose that looks measured: decimals with a unit, decimal ratios, CER-like fractions, counts of tests
FIGURE = re.compile(r"\b\d+\.\d+ ?(?:ms|s|min|KiB|MiB|GiB|MB|GB|%|img/s|images/s)(?![\w/])"
                    r"|\b\d+\.\d+x\b|\b0\.\d{3,}\b|\b\d[\d,]* tests\b|\d ?(?:img/s|images/s)\b")
REPO_PATH = re.compile(r"`((?:\.ci|bench|docs|evaluation|export_scripts|harness|helm|model_repository|preprocess_service"
                       r"|tests|triton_local)/[^`\s<>*{}]*?)(?:::(\w+))?`")
TEST_FILE = re.compile(r"`(test_\w+\.py)(?:::(\w+))?`")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
# Docs describe the project and the machine a figure was measured on, never how the work around it
# was organised (who did what, when, in which sitting, under which ticket).
# Written as alternations of words, so that this file holds none of the phrases it rejects.
CIRCUMSTANCE = re.compile(
    r"(?i)\b(?:this|that|the (?:previous|last|next|earlier)|an earlier|a later) (?:work )?session\b"
    r"|\bissue #?\d+\b|\b(?:this|that) (?:task|ticket)\b|\bfield[- ]notes?\b|\bshared (?:\d-core )?machine\b"
    r"|\bwhile (?:other|more) work (?:ran|was running)\b|\b(?:made|measured|built) here\b|\bon (?:this|that) machine\b")


class MissingArtifact(Exception):
    pass


class Artifacts:
    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[str, dict] = {}

    def __getitem__(self, name: str) -> dict:
        if name not in self.cache:
            path = self.root / ARTIFACTS / name
            if not path.exists():
                raise MissingArtifact(f"{ARTIFACTS / name} is missing: {WRITTEN_BY.get(name, 'no known command')} writes it")
            self.cache[name] = json.loads(path.read_text(encoding="utf-8"))
        return self.cache[name]


# --- small formatting helpers ----------------------------------------------------------------

def table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def compact(o, indent: int = 0) -> str:
    """JSON with one line per value while it fits in 100 columns."""
    one = json.dumps(o, ensure_ascii=False)
    if len(one) + indent <= 100 or not isinstance(o, (dict, list)) or not o:
        return one
    pad = " " * (indent + 2)
    if isinstance(o, dict):
        items = [f"{pad}{json.dumps(k)}: {compact(v, indent + 2)}" for k, v in o.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    return "[\n" + ",\n".join(pad + compact(v, indent + 2) for v in o) + "\n" + " " * indent + "]"


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def gpu_providers(m: dict) -> list[str]:
    return [p for p in m.get("providers", []) if p.startswith(("CUDA", "Tensorrt", "ROCM", "MIGraphX"))]


def machine(m: dict) -> str:
    """bench.json's machine: 'AMD EPYC, 2 cores, 23.5 GiB memory, no GPU (onnxruntime 1.32.0 ...)'."""
    gpu = gpu_providers(m)
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB memory, "
            f"{'GPU providers ' + ', '.join(gpu) if gpu else 'no GPU'} (onnxruntime {m['onnxruntime']}, "
            f"Python {m['python']})")


def level(system: dict, c: int) -> dict:
    return system["levels"][str(c)]


def retried(system: dict) -> int:
    return sum(n for lv in system["levels"].values() for n in lv.get("retried", {}).values())


# --- regions ----------------------------------------------------------------------------------

def setup_footprint(a: Artifacts) -> str:
    f = a["setup-footprint.json"]
    d, m = f["disk_mib"], f["machine"]
    dev = f["dev_only_packages_present"]
    extras = ("none of the test, export or bench packages" if not dev
              else "development-only packages present: " + ", ".join(dev))
    return (f"From a bare clone, `make serve` took **{duration(f['seconds'])}** to set itself up before the server "
            f"started, and left **{d['total']:.0f} MiB** on disk: {d['venv']:.0f} MiB of `.venv-serve` "
            f"({f['packages']} packages; {extras}), {d['model_repository']:.0f} MiB of `model_repository/` and "
            f"{d['wheel_cache']:.0f} MiB of downloaded model wheel in `.cache/`. Measured {f['date']} at commit "
            f"`{f['commit'][:10]}`, on {m['cores']} cores, {'a GPU' if m['gpu'] else 'no GPU'}, Python {m['python']}, "
            f"pip's cache off, by `make setup-footprint`.\n")


def headline(a: Artifacts) -> str:
    b = a["bench.json"]
    s = b["systems"]
    ours = level(s["ours"], 4)["images_per_s"]
    peers = [p for p in PEERS if p in s]
    fastest = max(peers, key=lambda p: level(s[p], 4)["images_per_s"])
    best = min(peers, key=lambda p: s[p]["cer"])  # the most accurate peer
    r = lambda p: ours / level(s[p], 4)["images_per_s"]  # noqa: E731
    return (f"On {b['machine']['cores']} CPU cores {'with' if gpu_providers(b['machine']) else 'without'} a GPU, "
            f"the embedded service read {ours:.2f} images/s at concurrency 4 at a character error rate of "
            f"{s['ours']['cer']:.4f}: {r(best):.2f}x the most accurate peer ({best}, CER {s[best]['cer']:.4f}) and "
            f"{r(fastest):.2f}x the fastest ({fastest}, CER {s[fastest]['cer']:.4f}) "
            f"({b['date'][:10]}, `make bench`).\n")


def bench_setup(a: Artifacts) -> str:
    b = a["bench.json"]
    return (f"Measured {b['date'][:10]} on {machine(b['machine'])}: {len(b['images'])} images x {b['rounds']} "
            f"pass(es) per concurrency level ({', '.join(map(str, b['concurrency']))}), "
            + (f"model sets: ours `{b['model_sets']['ours']}`, the floor `{b['model_sets']['floor']}`; the peers "
               f"the published {', '.join(b['models'])}" if "model_sets" in b else f"models {', '.join(b['models'])}")
            + "; `make bench`, artifact `docs/artifacts/bench.json`.\n")


def bench_table(a: Artifacts) -> str:
    b = a["bench.json"]
    cs = b["concurrency"]
    head = ["system"] + [f"img/s c={c}" for c in cs] + [f"p50 ms c={cs[0]}", f"p95 ms c={cs[0]}",
                                                        f"p50 ms c={cs[1]}", "peak RSS MiB", "CER",
                                                        "mean CER per image", "503s retried"]
    rows = []
    for name, s in b["systems"].items():
        row = [name] + [f"{level(s, c)['images_per_s']:.2f}" for c in cs]
        row += [f"{level(s, cs[0])['p50_ms']:.0f}", f"{level(s, cs[0])['p95_ms']:.0f}",
                f"{level(s, cs[1])['p50_ms']:.0f}", f"{s['rss_peak_mb']:.0f}"]
        row += ([f"{s['cer']:.4f}", f"{mean(s['per_image'].values()):.3f}", retried(s)] if "cer" in s
                else ["-", "-", "-"])
        rows.append(row)
    notes = [f"{name}: {s['note']}" for name, s in b["systems"].items() if s.get("note")]
    return table(head, rows) + "\n" + "".join(f"\n({n})\n" for n in notes)


def bench_targets(a: Artifacts) -> str:
    b = a["bench.json"]
    s = b["systems"]
    ours4 = level(s["ours"], 4)["images_per_s"]
    peers = sorted((p for p in PEERS if p in s), key=lambda p: -level(s[p], 4)["images_per_s"])
    ratios = ", ".join(f"{ours4 / level(s[p], 4)['images_per_s']:.2f}x {p} ({level(s[p], 4)['images_per_s']:.2f})"
                       for p in peers)
    speedup = ours4 / level(s[peers[0]], 4)["images_per_s"]
    as_good = [p for p in peers if s[p]["cer"] <= s["ours"]["cer"]]  # peers reading at least as well as ours
    out = [f"- **Throughput at concurrency 4**: ours {ours4:.2f} images/s, {ratios}; CER ours "
           f"{s['ours']['cer']:.4f}, " + ", ".join(f"{p} {s[p]['cer']:.4f}" for p in peers) + "."]
    if as_good:
        r = ours4 / level(s[as_good[0]], 4)["images_per_s"]
        out.append(f"  Target at least {TARGET_SPEEDUP_C4}x the fastest peer at equal or better CER ({as_good[0]}): "
                   f"{r:.2f}x, {'met' if r >= TARGET_SPEEDUP_C4 else 'not met'}.")
    else:
        best = min(peers, key=lambda p: s[p]["cer"])
        r = ours4 / level(s[best], 4)["images_per_s"]
        out.append(f"  No peer reads at equal or better CER than ours, so the target (at least {TARGET_SPEEDUP_C4}x "
                   f"the fastest peer at equal or better CER) selects none. Against the most accurate peer "
                   f"({best}, CER {s[best]['cer']:.4f}): {r:.2f}x, {'at least' if r >= TARGET_SPEEDUP_C4 else 'under'} "
                   f"{TARGET_SPEEDUP_C4}x. Against the fastest peer whatever its CER ({peers[0]}, CER "
                   f"{s[peers[0]]['cer']:.4f}): {speedup:.2f}x, {'at least' if speedup >= TARGET_SPEEDUP_C4 else 'under'} "
                   f"{TARGET_SPEEDUP_C4}x.")
    if "floor" in s:
        f4 = level(s["floor"], 4)["images_per_s"]
        out.append(f"- **Throughput against the float32 floor** (the published float models' forward passes, "
                   f"`bench/floor.py`): ours {ours4 / f4:.2f}x the floor's {f4:.2f} images/s at concurrency 4 "
                   f"(ours: `{b.get('model_sets', {}).get('ours', 'ppocrv6_small')}`). Target at least "
                   f"{TARGET_SPEEDUP_FLOOR}x: {'met' if ours4 / f4 >= TARGET_SPEEDUP_FLOOR else 'not met'}.")
    if "ours-triton" in s:
        t4 = level(s["ours-triton"], 4)["images_per_s"]
        out.append(f"- **Triton against embedded**: ours-triton {t4:.2f} images/s at concurrency 4, {t4 / ours4:.2f}x "
                   f"the embedded backend. Target at least {TARGET_TRITON_RATIO}x: "
                   f"{'met' if t4 / ours4 >= TARGET_TRITON_RATIO else 'not met'}.")
    if "floor" in s:
        o1, f1 = level(s["ours"], 1), level(s["floor"], 1)
        med, tot = o1["p50_ms"] / f1["p50_ms"], o1["wall_s"] / f1["wall_s"]
        out.append(f"- **Latency at concurrency 1**: {med:.2f}x the floor at the median, {tot:.2f}x in total time "
                   f"for the set. Target at most {TARGET_LATENCY_C1}x: "
                   f"{'met' if max(med, tot) <= TARGET_LATENCY_C1 else 'not met'}.")
    if "soak" in b:
        k = b["soak"]
        out.append(f"- **RSS over {k['requests']:,} requests** (concurrency {k['concurrency']}, {k['images']} images "
                   f"cycled, {k['warmup_requests']:,} of warm-up, {duration(k['wall_s'])}): "
                   f"{k['rss_after_warmup_mb']:.0f} MiB after warm-up, {k['rss_end_mb']:.0f} MiB at the end "
                   f"({k['rss_growth_pct']:+.1f}%); {k['ok_after_warmup']:,} of "
                   f"{k['requests'] - k['warmup_requests']:,} answered 200. Target growth under "
                   f"{TARGET_RSS_GROWTH_PCT:.0f}%: {'met' if k['rss_growth_pct'] < TARGET_RSS_GROWTH_PCT else 'not met'}. "
                   f"RSS at each step: " + ", ".join(f"{mb:.0f}" for _, mb in k["rss_mb_by_request"])
                   + f" MiB (every {k['rss_mb_by_request'][1][0] - k['rss_mb_by_request'][0][0]:,} requests).")
    return "\n".join(out) + "\n"


def triton_vs_embedded(a: Artifacts) -> str:
    out = []
    b = a["bench.json"]
    s = b["systems"]
    if "ours-triton" in s:
        o, t = s["ours"], s["ours-triton"]
        same = o.get("per_image") == t.get("per_image")
        t4, o4 = level(t, 4)["images_per_s"], level(o, 4)["images_per_s"]
        out.append(f"- the full `make bench` run ({b['date'][:10]}, {machine(b['machine'])}, the local Triton, one pass): "
                   f"ours-triton {t4:.2f} images/s at concurrency 4 against {o4:.2f} embedded, {t4 / o4:.2f}x; peak RSS "
                   f"{t['rss_peak_mb']:.0f} MiB (Triton's server and stubs included) against {o['rss_peak_mb']:.0f} MiB; "
                   f"per-image CER {'identical on every image' if same else 'different on some images'}.")
    p = a["triton-vs-embedded.json"]
    e, t = p["variants"]["embedded"], p["variants"]["ours-triton"]
    out.append(f"- the two alone, taking turns ({p['date'][:10]}, {p['repeats']} runs each, `bench/pairs.py`, "
               f"`docs/artifacts/triton-vs-embedded.json`): ours-triton "
               f"{', '.join(f'{x:.2f}' for x in t['images_per_s'])} images/s at concurrency {p['concurrency']}, median "
               f"{t['median']:.2f}, against embedded {', '.join(f'{x:.2f}' for x in e['images_per_s'])}, median "
               f"{e['median']:.2f}: {t['median'] / e['median']:.2f}x; CER {t['cer']:.4f} and {e['cer']:.4f}.")
    return "\n".join(out) + "\n"


def accuracy_table(a: Artifacts) -> str:
    b = a["bench.json"]
    names = [n for n, s in b["systems"].items() if "per_image" in s]
    rows = [[f"`{img}`", f"{w}x{h}"] + [f"{b['systems'][n]['per_image'][img]:.3f}" for n in names]
            for img, (w, h) in b["images"].items()]
    rows.append(["**overall, character-weighted**", ""] + [f"**{b['systems'][n]['cer']:.4f}**" for n in names])
    rows.append(["**mean per image**", ""] + [f"**{mean(b['systems'][n]['per_image'].values()):.4f}**" for n in names])
    return (f"Measured {b['date'][:10]} by `make bench` on {machine(b['machine'])}; "
            f"artifact `docs/artifacts/bench.json`.\n\n" + table(["image", "pixels"] + [f"CER {n}" for n in names], rows) + "\n")


def accuracy_differences(a: Artifacts) -> str:
    s = a["bench.json"]["systems"]
    out = []
    for peer in (p for p in PEERS if p in s):
        ours, theirs = s["ours"]["per_image"], s[peer]["per_image"]
        diff = [img for img in ours if ours[img] != theirs[img]]
        better = [img for img in diff if ours[img] < theirs[img]]
        worse = [img for img in diff if ours[img] > theirs[img]]
        out.append(f"- against **{peer}**: the same CER on {len(ours) - len(diff)} of {len(ours)} images; ours lower on "
                   f"{len(better)}, higher on {len(worse)}.")
        out += [f"  - `{img}`: ours {ours[img]:.4f}, {peer} {theirs[img]:.4f}" for img in diff]
    return "\n".join(out) + "\n"


def levers_table(a: Artifacts, name: str = "levers.json") -> str:
    v = a[name]["http"]
    base = next(iter(v.values()))
    rows = []
    for variant, r in v.items():
        c1, c4 = level(r, 1), level(r, 4)
        rows.append([variant, f"{c1['images_per_s']:.2f} ({c1['images_per_s'] / level(base, 1)['images_per_s']:.2f}x)",
                     f"{c4['images_per_s']:.2f} ({c4['images_per_s'] / level(base, 4)['images_per_s']:.2f}x)",
                     f"{c1['p50_ms']:.0f}", f"{c4['p95_ms']:.0f}", f"{r['rss_peak_mb']:.0f}", f"{r['cer']:.4f}",
                     f"{mean_image_cer(r):.4f}", labels_read(r), retried(r)])
    lv = a[name]
    where = (f"Measured {lv['date'][:10]} on {machine(lv['machine'])}" if "machine" in lv and "date" in lv
             else f"`{name}` records no date or machine")
    return (f"{where}; {lv['images']} images, one pass per level; ratios against the first row; "
            f"`make levers`, artifact `docs/artifacts/{name}`.\n\n"
            + table(["variant", "img/s c=1", "img/s c=4", "p50 ms c=1", "p95 ms c=4", "peak RSS MiB", "CER",
                     "mean CER per image", "labels exact", "503s retried"], rows) + "\n")


def mean_image_cer(r: dict) -> float:
    """The mean per-image CER over the evaluation images (the rendered labels left out)."""
    per = [c for img, c in r["per_image"].items() if not img.startswith("label_")]
    return sum(per) / len(per)


def labels_read(r: dict) -> str:
    labels = {img: c for img, c in r["per_image"].items() if img.startswith("label_")}
    return f"{sum(c == 0 for c in labels.values())} of {len(labels)}"


def levers_cer(a: Artifacts, name: str = "levers.json") -> str:
    v = a[name]["http"]
    base_name, base = next(iter(v.items()))
    out = []
    for variant, r in v.items():
        diff = [img for img in base["per_image"] if r["per_image"][img] != base["per_image"][img]]
        if variant != base_name and diff:
            out.append(f"- {variant}: " + "; ".join(
                f"`{img}` {base['per_image'][img]:.4f} -> {r['per_image'][img]:.4f}" for img in diff))
    same = [variant for variant, r in v.items() if variant != base_name and r["per_image"] == base["per_image"]]
    if same:
        out.append("- the same CER on every image: " + ", ".join(same))
    return "\n".join(out) + "\n"


def levers_rule(a: Artifacts) -> str:
    """The adoption rule applied to every variant of levers.json against its first row."""
    v = a["levers.json"]["http"]
    base = next(iter(v.values()))
    b_cer, b_mean = base["cer"], mean_image_cer(base)
    b_labels = {img: c for img, c in base["per_image"].items() if img.startswith("label_")}
    rows = []
    for variant, r in list(v.items())[1:]:
        labels_ok = all(r["per_image"][img] <= c for img, c in b_labels.items())
        ok = (r["cer"] <= b_cer + RULE_CER and mean_image_cer(r) <= b_mean + RULE_MEAN_CER and labels_ok)
        speed = level(r, 4)["images_per_s"] / level(base, 4)["images_per_s"]
        rows.append([variant, f"{speed:.2f}x", f"{r['cer'] - b_cer:+.4f}", f"{mean_image_cer(r) - b_mean:+.4f}",
                     "yes" if labels_ok else "no", "**yes**" if ok else "no"])
    return (f"Rule: CER within +{RULE_CER} and mean per-image CER within +{RULE_MEAN_CER} of the first row, no "
            f"rendered label read worse.\n\n"
            + table(["variant", "img/s c=4 vs first row", "CER change", "mean CER change", "labels as good",
                     "keeps accuracy"], rows) + "\n")


def pairs_table(a: Artifacts, name: str) -> str:
    """A bench.pairs artifact: every run of every variant, the medians and their ratios."""
    p = a[name]
    rows = [[variant, ", ".join(f"{x:.2f}" for x in v["images_per_s"]), f"{v['median']:.2f}",
             f"{v['ratio_to_first']:.2f}x", f"{v['cer']:.4f}"] for variant, v in p["variants"].items()]
    return (f"Measured {p['date'][:10]} on {machine(p['machine'])}, default model set `{p['default_model_set']}`: "
            f"{p['images']} images at concurrency {p['concurrency']}, the variants taking turns, {p['repeats']} runs "
            f"each (`{p['command']}`, artifact `docs/artifacts/{name}`).\n\n"
            + table(["variant", f"img/s c={p['concurrency']}, each run", "median", "median vs first", "CER"], rows)
            + "\n")


def levers_glue(a: Artifacts) -> str:
    micro = a["levers.json"]["micro_ms_per_pass"]
    b = a["bench.json"]
    used = [k for k in micro if k.endswith((", pybase64", ", ours", "orjson.dumps", "orjson.loads"))
            or k.startswith("image decode, ours")]
    glue = sum(micro[k] for k in used)
    model_ms = sum(b["systems"]["floor"]["per_image_ms"].values())
    return (table(["step, whole image set, best of 5", "ms", "used"],
                  [[k, f"{ms:.2f}", "yes" if k in used else ""] for k, ms in micro.items()])
            + f"\n\nThe glue the service uses adds up to {glue:.0f} ms for the set, against {model_ms / 1000:.1f} s of "
              f"model passes for the same images in `make bench`'s floor ({100 * glue / model_ms:.1f}%).\n")


def api_example(a: Artifacts) -> str:
    e = a["api-example.json"]
    return (f"The real answer for `evaluation/data/{e['image']}` (recorded {e['date']} on {e['machine']} by "
            f"`.venv/bin/python docs/api_example.py`, artifact `docs/artifacts/api-example.json`):\n\n"
            f"```json\n{compact(e['v1_ocr'])}\n```\n")


def api_example_paddlex(a: Artifacts) -> str:
    e = a["api-example.json"]
    return (f"The real answer for `evaluation/data/{e['paddlex_image']}` (same recording):\n\n"
            f"```json\n{compact(e['paddlex_ocr'])}\n```\n")


def hostile_table(a: Artifacts) -> str:
    h = a["hostile.json"]
    def statuses(s) -> str:
        if isinstance(s, dict):
            return ", ".join(f"{code} x{n}" if n > 1 else str(code) for code, n in sorted(s.items())) or "-"
        return ", ".join(str(x) for x in s) or "-"

    def witness(c: dict) -> str:
        w = c.get("witness")
        if not w:
            return "-"
        return f"{statuses(w['statuses'])} in {w['answered_s']:g} s"

    rows = [[c["case"], c.get("sent", ""), statuses(c.get("statuses", {})), f"{c['peak_rss_mib']:.0f}",
             f"{c.get('budget_mib', h['budget_mib']):.0f}",
             f"{c['healthz_max_s'] * 1000:.0f}" if "healthz_max_s" in c else "-", witness(c)] for c in h["cases"]]
    return (f"Measured {h['date']} on {h['machine']['cores']} cores, no GPU, by `make hostile` "
            f"(`docs/artifacts/hostile.json`); the service's resident set after start-up was "
            f"{h['baseline_rss_mib']:.0f} MiB, its budget {h['budget_mib']:.0f} MiB (75% of the chart's 2 GiB "
            f"limit).\n\n" + table(["case", "what was sent", "status", "peak RSS MiB", "budget MiB", "/healthz max ms",
                            "witness OCR"], rows) + "\n")


def memory_costs(a: Artifacts) -> str:
    m = a["memory-costs.json"]
    c = m["constants"]

    def charged(r: dict) -> str:
        if r["kind"] == "det":
            return f"{c['DET_FIXED_MIB']:.0f} MiB + {r['charged_bytes_per_pixel']} B/px"
        if r["kind"] == "pdf":
            return f"{r['charged_bytes_per_pixel']} B/px (renderer: {c['PDF_WORKER_FIXED_MIB']:.0f} MiB + {r['charged_worker_bytes_per_pixel']} B/px)"
        return f"{r['charged_bytes_per_pixel']} B/px"

    rows = [[r["kind"], f"{r['width']}x{r['height']}", f"{r['peak_mib'] - r['base_mib']:.0f}",
             f"{r['bytes_per_pixel']:.0f}", charged(r)] for r in m["rows"]]
    return (table(["stage", "input", "peak over base MiB", "measured bytes per pixel", "charged"], rows)
            + f"\n\nDecoding is charged by the image's kind: {c['DECODE_BYTES_PER_PIXEL']} bytes per pixel for 8-bit "
            f"images, {c['DECODE_ALPHA_BYTES_PER_PIXEL']} with transparency, {c['DECODE_DEEP_BYTES_PER_PIXEL']} for "
            f"16-bit and float samples; a PDF page {c['PDF_RENDER_BYTES_PER_PIXEL']}, its BGR array in the service and "
            f"{c['PDF_WORKER_BYTES_PER_PIXEL']} in the renderer process (the two processes' peaks added; the "
            "renderer's fixed part, about 48 MiB measured, is covered by the page cost's recognition term, since no "
            "model runs while a page renders); detection "
            f"{c['DET_BYTES_PER_PIXEL']} per input pixel plus {c['DET_FIXED_MIB']:.0f} MiB (measured {m['date']} on "
            f"{m['machine']['cores']} cores, no GPU, by `python -m bench.memory_costs`; "
            "`tests/unit/test_budget_costs.py` holds every charge to its measurement).\n")


def triton_hop(a: Artifacts) -> str:
    t = a["triton-hop.json"]
    rows = []
    for name, v in t["variants"].items():
        rows.append([name, f"{v['bytes_to_triton_per_page'] / 1e6:.3f}", f"{v['bytes_from_triton_per_page'] / 1e6:.3f}",
                     f"{v['bytes_per_page'] / 1e6:.3f}", f"{v['service_cpu_ms_per_page']:.0f}"])
    return (f"Over the {t['images']} evaluation images, one request at a time, measured {t['date']} on "
            f"{t['machine']['cores']} cores, no GPU, by `python -m bench.triton_hop` "
            f"(`docs/artifacts/triton-hop.json`):\n\n"
            + table(["tensors", "MB to Triton per page", "MB back per page", "MB per page", "service CPU ms per page"], rows)
            + f"\n\nThe uint8 tensors carry {t['uint8_over_float32_bytes']:.3f} of the float32 bytes per page; "
            f"the text read was {'the same' if t['same_text'] else 'NOT the same'} on every image. Model sets: "
            + ", ".join(f"{k} `{v}`" for k, v in t.get("model_sets", {}).items())
            + (f"; commit `{t['commit'][:10]}`" if t.get("commit") else "") + ".\n")


def capacity(a: Artifacts) -> str:
    t = a["triton-hop.json"]
    rows = []
    for name, v in t["variants"].items():
        cores = CAPACITY_PAGES_PER_S * v["service_cpu_ms_per_page"] / 1000
        up = CAPACITY_PAGES_PER_S * v["bytes_to_triton_per_page"] * 8 / 1e9
        down = CAPACITY_PAGES_PER_S * v["bytes_from_triton_per_page"] * 8 / 1e9
        rows.append([name, f"{v['service_cpu_ms_per_page']:.0f}", f"{cores:.0f}", f"{up:.1f}", f"{down:.1f}"])
    return (table(["tensors", "service CPU ms per page", f"service cores for {CAPACITY_PAGES_PER_S} pages/s",
                   "Gbit/s to the GPU node", "Gbit/s back"], rows)
            + f"\n\nInputs: `docs/artifacts/triton-hop.json` ({t['date']}, {t['machine']['cores']} cores, no GPU). "
            f"Cores = pages/s x CPU ms per page / 1000; bandwidth = pages/s x bytes per page x 8.\n")


def shape_buckets(a: Artifacts) -> str:
    d = a["shape-buckets.json"]
    rows = []
    for r in d["rows"]:
        for k in ("off", "on"):
            x = r[k]
            rows.append([r["model_set"], k, x["distinct_shapes"].get("det", 0), x["distinct_shapes"].get("rec", 0),
                         f"{x['cer']:.4f}", f"{x['mean_image_cer']:.4f}", "yes" if x["labels_exact"] else "no",
                         f"{x['seconds']:.1f}"])
    verdicts = "; ".join(f"{r['model_set']}: CER {r['cer_delta']:+.4f}, mean per-image CER "
                         f"{r['mean_image_cer_delta']:+.4f}, {r['same_text_images']}/{d['images']} images read the "
                         f"same, {'within' if r['within_rule'] else 'outside'} the rule, "
                         f"{'within' if r['within_shape_targets'] else 'over'} the shape targets" for r in d["rows"])
    s = d["settings"]
    return (f"Measured on {machine(d['machine'])}, {d['date']} (`{d['command']}`, artifact "
            f"`docs/artifacts/shape-buckets.json`): {d['images']} images (the evaluation set, the benchmark's "
            f"rendered labels, held-out labels and evaluation pages scaled to random sizes), in-process, one page "
            f"at a time, distinct input shapes per model as the model received them. Buckets: canvases "
            f"{', '.join(s['det_canvases'])}; detection batch sizes {s['det_batch_sizes']}; recognition widths "
            f"{s['rec_width_buckets']}; batch sizes {s['rec_batch_sizes']}; `OCR_REC_BATCH_SIZE` "
            f"{s['rec_batch_size']}. Targets: detection at most {d['targets']['det']} shapes, recognition at most "
            f"{d['targets']['rec']}.\n\n"
            + table(["model set", "buckets", "det shapes", "rec shapes", "CER", "mean image CER", "labels exact",
                     "seconds, one at a time"], rows)
            + f"\n\nBuckets on against off: {verdicts}.\n")


def fp16_accuracy(a: Artifacts) -> str:
    d = a["shape-buckets.json"]
    f = d["fp16"]
    full, half = f["ppocrv6_small"], f["ppocrv6_small_fp16"]
    return (f"On onnxruntime's CPU provider ({machine(d['machine'])}, {d['date']}, `{d['command']}`, artifact "
            f"`docs/artifacts/shape-buckets.json`), both with buckets on, over the same {d['images']} images: "
            f"float32 CER {full['cer']:.4f} (mean per image {full['mean_image_cer']:.4f}), FP16 CER "
            f"{half['cer']:.4f} ({half['mean_image_cer']:.4f}); {f['same_text_images']}/{d['images']} images read "
            f"exactly the same; {'within' if f['within_rule'] else 'outside'} the accuracy rule.\n")


def batcher(a: Artifacts) -> str:
    d = a["batcher.json"]
    rows = []
    for name, v in d["variants"].items():
        for c in d["levels"]:
            m = v["median"][str(c)]
            rows.append([name, c, f"{m['images_per_s']:.2f}", f"{m['p50_ms']:.0f}", f"{m['p95_ms']:.0f}",
                         f"{m['ratio_to_baseline']:.2f}x"])
    return (f"The real HTTP service, embedded onnxruntime on {machine(d['machine'])}, {d['date'][:10]} "
            f"(`{d['command']}`, artifact `docs/artifacts/batcher.json`): {d['images']} images at each level, "
            f"variants taking turns, {d['repeats']} repeats, medians; batcher delay {d['delay_us']} µs; model set "
            f"`{d['model_set']}`.\n\n"
            + table(["variant", "concurrency", "img/s", "p50 ms", "p95 ms", f"vs {d['baseline']}"], rows) + "\n")


def triton_balance(a: Artifacts) -> str:
    d = a["triton-balance.json"]
    rows = []
    for mode, r in d["modes"].items():
        for p in r["phases"]:
            rows.append([mode, p["phase"], " + ".join(p["in_service"]), p["pages"], p["failed"],
                         f"{p['share']['A']:.0%}", f"{p['share']['B']:.0%}"])
    return (f"Two local Tritons (A and B) on {machine(d['machine'])}, {d['date'][:10]} (`{d['command']}`, artifact "
            f"`docs/artifacts/triton-balance.json`): the pipeline at {d['concurrency']} pages at once, "
            f"{d['phase_s']:g} s per phase, model set `{d['model_set']}`; each Triton's share of the model calls from "
            "its own counter (`nv_inference_request_success`). Both Tritons share the same cores, so pages per "
            "phase say nothing of scaling.\n\n"
            + table(["way in", "phase", "in the Service", "pages", "failed", "calls to A", "calls to B"], rows) + "\n")


def artifact_table(a: Artifacts) -> str:
    """Every artifact and the command that writes it (WRITTEN_BY; check() keeps the folder to it)."""
    rows = []
    for name, command in sorted(WRITTEN_BY.items()):
        present = (a.root / ARTIFACTS / name).exists()
        rows.append([f"`{name}`" + ("" if present else " (not recorded yet)"), command])
    return table(["artifact in `docs/artifacts/`", "written by"], rows) + "\n"


def gpu_bench(a: Artifacts) -> str:
    if not (a.root / ARTIFACTS / "gpu-bench.json").exists():
        return ("No GPU run is recorded yet: there is no `gpu-bench.json` in `docs/artifacts/`. Every GPU figure of "
                "these docs is rendered from it once `bash bench/gpu_run.sh` has run on a GPU machine "
                "([gpu.md](gpu.md#the-gpu-benchmark)).\n")
    d = a["gpu-bench.json"]
    env = d["environment"]
    rows = []
    for name, v in d.get("variants", {}).items():
        if isinstance(v, str):
            rows.append([name, "-", v, "", "", "", ""])
            continue
        for c, lv in v["levels"].items():
            if isinstance(lv, str):
                rows.append([name, c, lv, "", "", "", ""])
                continue
            rows.append([name, c, f"{lv['img_s']:.1f}", f"{lv['p50_ms']}", f"{lv['p95_ms']}",
                         f"{lv['cpu_ms_per_page']}", f"{lv['gpu_busy_pct']}"])
    procs = d.get("processes")
    tail = (f" Four processes sharing the GPU: {procs['img_s_total']:.1f} img/s in all, GPU busy "
            f"{procs['gpu_busy_pct']}%." if isinstance(procs, dict) else "")
    return (f"{env.get('gpu') or 'no GPU'} (driver {env.get('driver')}), {env['cpu_cores']} cores, onnxruntime "
            f"{env['onnxruntime']}, {d['measured_at'][:10]}{' (dry run, CPU provider)' if d['dry_run'] else ''}, "
            f"{d['images']} images (artifact `gpu-bench.json` in `docs/artifacts/`).\n\n"
            + table(["variant", "concurrency", "img/s", "p50 ms", "p95 ms", "CPU ms/page", "GPU busy %"], rows)
            + "\n" + tail + "\n")


REGIONS = {
    "setup-footprint": setup_footprint,
    "headline": headline,
    "bench-setup": bench_setup,
    "bench-table": bench_table,
    "bench-targets": bench_targets,
    "triton-vs-embedded": triton_vs_embedded,
    "accuracy-table": accuracy_table,
    "accuracy-differences": accuracy_differences,
    "levers-table": levers_table,
    "levers-cer": levers_cer,
    "levers-rule": levers_rule,
    "levers-defaults-table": lambda a: levers_table(a, "levers-defaults.json"),
    "levers-defaults-cer": lambda a: levers_cer(a, "levers-defaults.json"),
    "levers-glue": levers_glue,
    "det-threads": lambda a: pairs_table(a, "det-threads.json"),
    "api-example": api_example,
    "api-example-paddlex": api_example_paddlex,
    "hostile-table": hostile_table,
    "memory-costs": memory_costs,
    "triton-hop": triton_hop,
    "capacity": capacity,
    "shape-buckets": shape_buckets,
    "fp16-accuracy": fp16_accuracy,
    "batcher": batcher,
    "triton-balance": triton_balance,
    "artifact-table": artifact_table,
    "gpu-bench": gpu_bench,
}


# --- render and check -------------------------------------------------------------------------

def docs(root: Path) -> list[Path]:
    return [root / "README.md", root / "SECURITY.md"] + sorted((root / "docs").glob("*.md"))


def render(text: str, artifacts: Artifacts) -> str:
    """The text with every generated region re-rendered; raises on unknown, unclosed or missing."""
    def one(m: re.Match) -> str:
        name, body, end = m.groups()
        if name != end:
            raise ValueError(f"region {name!r} is closed by END {end!r}")
        if name not in REGIONS:
            raise ValueError(f"unknown region {name!r} (docs/render.py REGIONS)")
        return f"<!-- BEGIN generated: {name} -->\n{REGIONS[name](artifacts)}<!-- END generated: {name} -->"

    out = REGION.sub(one, text)
    if len(MARKER.findall(text)) != 2 * len(REGION.findall(text)):
        raise ValueError("a BEGIN or END generated marker has no partner")
    return out


def prose(text: str) -> str:
    """The hand-written part: generated regions and fenced code blocks cut out."""
    text = REGION.sub("", text)
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


# Artifacts that describe the product as it ships: each records the commit and the model set it
# was measured with (bench/provenance.py), and that set must be the service's default.
DEFAULT_SET_ARTIFACTS = ("api-example.json", "hostile.json", "memory-costs.json", "triton-hop.json",
                         "setup-footprint.json", "triton-balance.json", "batcher.json")


def provenance_problems(root: Path) -> list[str]:
    """An artifact of DEFAULT_SET_ARTIFACTS that lacks its commit or model set, or was measured with
    another model set than the default the docs describe; any other artifact that records one
    string model set must record the default too."""
    from preprocess_service.model_sets import DEFAULT_MODEL_SET as default  # no imports beyond the stdlib
    problems = []
    for path in sorted((root / ARTIFACTS).glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        model_set = doc.get("model_set") if isinstance(doc, dict) else None
        if path.name in DEFAULT_SET_ARTIFACTS:
            for key in ("commit", "model_set"):
                if not (isinstance(doc, dict) and doc.get(key)):
                    problems.append(f"docs/artifacts/{path.name}: records no {key} (re-measure: {WRITTEN_BY[path.name]})")
        if isinstance(model_set, str) and model_set != default:
            problems.append(f"docs/artifacts/{path.name}: measured with model set {model_set}, the docs describe the "
                            f"default {default} (re-measure: {WRITTEN_BY.get(path.name, '?')})")
    return problems


def check(root: Path = ROOT) -> list[str]:
    problems = []
    artifacts = Artifacts(root)
    tests = {p.name: p for p in (root / "tests").rglob("test_*.py")}
    for path in sorted((root / ARTIFACTS).iterdir()):
        if path.name not in WRITTEN_BY:
            problems.append(f"docs/artifacts/{path.name}: no command writes it (docs/render.py WRITTEN_BY)")
    problems += provenance_problems(root)
    for doc in docs(root):
        rel = doc.relative_to(root)
        text = doc.read_text(encoding="utf-8")
        try:
            if render(text, artifacts) != text:
                problems.append(f"{rel}: a generated region differs from docs/artifacts (run `make docs`)")
        except (MissingArtifact, ValueError) as exc:
            problems.append(f"{rel}: {exc}")
        except (KeyError, IndexError, TypeError) as exc:
            problems.append(f"{rel}: an artifact lacks what a region needs: {exc!r}")
        for line in prose(text).splitlines():
            for m in FIGURE.finditer(line):
                problems.append(f"{rel}: a figure outside a generated region: {m.group(0)!r} in {line.strip()[:80]!r}")
        named = [(root / path.rstrip("/"), path, func) for path, func in REPO_PATH.findall(text)]
        named += [(tests.get(name), name, func) for name, func in TEST_FILE.findall(text)]
        for path, name, func in named:
            if path is None or not path.exists():
                problems.append(f"{rel}: `{name}` does not exist" + (" under tests/" if path is None else ""))
            elif func and f"def {func}(" not in path.read_text(encoding="utf-8"):
                problems.append(f"{rel}: `{name}` has no `{func}`")
        for link in LINK.findall(text):
            if "://" in link or link.startswith("mailto:"):
                continue
            target = Path(os.path.normpath(doc.parent / link))
            if not target.is_relative_to(os.path.normpath(root)) or not target.exists():
                problems.append(f"{rel}: link {link!r} leads to no file of the repository")
        for line in prose(text).splitlines():
            for m in CIRCUMSTANCE.finditer(line):
                problems.append(f"{rel}: describes the work, not the project: {m.group(0)!r} in {line.strip()[:80]!r}")
        if OUTSIDE in text:
            problems.append(f"{rel}: refers to {OUTSIDE}, outside the repository (the set is evaluation/data/)")
    return problems


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        problems = check(ROOT)
        for p in problems:
            print(p, file=sys.stderr)
        print("docs: up to date with docs/artifacts" if not problems else f"docs: {len(problems)} problem(s)")
        return 1 if problems else 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    artifacts = Artifacts(ROOT)
    for doc in docs(ROOT):
        text = doc.read_text(encoding="utf-8")
        try:
            new = render(text, artifacts)
        except (MissingArtifact, ValueError) as exc:
            print(f"{doc.relative_to(ROOT)}: {exc}", file=sys.stderr)
            return 1
        if new != text:
            doc.write_text(new, encoding="utf-8")
            print(f"rendered {doc.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
