"""Static INT8 (QDQ) quantisation of the PP-OCRv6 small detection and recognition models.

A CPU speed lever, served exactly like the float models: each result is an extra folder of the
model repository, used by the default model set ``ppocrv6_small_int8`` (``ppocrv6_small_int8rec``:
recognition only; or one by one with ``OCR_DET_MODEL`` / ``OCR_REC_MODEL``)::

    model_repository/ppocrv6_small_det_int8/{1/model.onnx, inference.yml, config.pbtxt}
    model_repository/ppocrv6_small_rec_int8/{1/model.onnx, inference.yml, config.pbtxt}

How a folder is made (``make int8``, i.e. ``python -m export_scripts.quantize``; seconds):

1. the *published* float model, read from the pinned wheel and verified by its sha256
   (``fetch_models.published_model_bytes``); recognition's opset 11 raised to 13 (per-channel
   DequantizeLinear needs it; the converted model computes bit-identical outputs);
2. ``quant_pre_process`` (onnx shape inference and onnxruntime's basic graph optimisation: folds
   batch norms into convolutions, so they quantise as one; no symbolic shape inference, sympy is
   not a dependency);
3. ``quantize_static``: QDQ format, uint8 activations (asymmetric) and int8 weights, per output
   channel for recognition and per tensor for detection (``Recipe.per_channel``, see ``TARGETS``),
   what onnxruntime's CPU kernels (MLAS, u8s8) run fastest; weights at 7 bits
   (``reduce_range``) so that CPUs without VNNI cannot saturate the u8s8 16-bit pair sums (the
   chosen models meet the adoption rule with them; VNNI CPUs run the same kernels either way);
   the nodes of ``Recipe.exclude`` stay float (see ``TARGETS``);
   the activation ranges come from ``export_scripts/int8_ranges/<folder>.json``, committed;
4. ``input_head.serve_ready``: the same heads as every served model (uint8 NHWC input with the
   normalisation inside; detection's ``prob_u8``; recognition's greedy-CTC outputs).

The ranges (``--calibrate``, minutes): the rendered calibration set of ``evaluation/calibration``
(16 pages for detection, 160 line crops for recognition, from a fixed seed; nothing of
``evaluation/data`` nor of the benchmark's labels) through the service's own float
pre-processing (``detection.preprocess``, ``recognition.plan_batches``) into the pre-processed
model, one input at a time; each activation's range is the 0.001/99.999 percentile of its
histogram. MinMax ranges (the default) cost detection 0.019 of overall CER on the evaluation set
(text lines of neighbouring columns merged on a two-column page): a few outliers stretch a
range and leave too few levels for the rest. Committed, the ranges make ``make int8`` fast and
the same bytes on any machine; recalibrating on this project's machine reproduces them exactly.

Why quantise before the heads rather than the served model with the heads excluded: the heads
are a Cast/Mul/Add/Transpose/Where prologue and a Clip/Round/Cast or ArgMax/ReduceMax epilogue
that must stay exact (tests/unit/test_model_repository.py checks them against the float path)
and have nothing to gain from int8; the calibrator also feeds float tensors, which the
published model takes as they are. Adding the heads last keeps one code path
(``serve_ready``) for every served model, float or int8.

Deterministic: the wheel, the committed ranges, onnx and onnxruntime give the same bytes (built
twice; two independent calibrations gave the same ranges and models). Each folder's served
sha256 is pinned in ``TARGETS`` and verified like fetch_models does; a different result is
refused unless ``--accept-new-sha256``.

    python -m export_scripts.quantize [--targets NAME ...] [--force] [--accept-new-sha256]
    python -m export_scripts.quantize --calibrate                # re-measure the ranges, rebuild
    python -m export_scripts.quantize --measure [--repeats 5]   # writes docs/artifacts/int8.json

``--measure``: in-process latency (the service's Pipeline with default settings, the variants
taking turns image by image over the benchmark's 35 images, medians; and single model runs, best
and median) and CER (evaluation/scoring.py over the 31
evaluation images) for fp32, det int8, rec int8 and both, plus how each rendered label of
bench/dataset.py reads, and the adoption rule's verdict for each (``adoptable``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.rule import MAX_MEAN_CER_RISE, MAX_OVERALL_CER_RISE
from export_scripts import fetch_models, input_head
from export_scripts.fetch_models import FetchError, sha256_file
from preprocess_service.tensors import CTC_ARGMAX, CTC_MAX_PROB, PROB_U8

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "docs" / "artifacts" / "int8.json"
RANGES_DIR = ROOT / "export_scripts" / "int8_ranges"

# The adoption rule: an int8 variant may become a default only if, against the fp32 pipeline on
# evaluation/data, it meets the accuracy rule (evaluation.rule: MAX_OVERALL_CER_RISE,
# MAX_MEAN_CER_RISE) and every rendered label still reads exactly (see labels_ok: as exactly as
# with fp32).


@dataclass(frozen=True)
class Recipe:
    """How one model is quantised (see the module docstring for the choices)."""

    per_channel: bool = True
    reduce_range: bool = True
    method: str = "minmax"  # minmax | percentile | entropy
    percentile: float = 99.999
    exclude: tuple[str, ...] = ()  # nodes left in float: node names or the names of their outputs
    exclude_after: tuple[str, ...] = ()  # ... and every node downstream of these tensors


@dataclass(frozen=True)
class Target:
    name: str  # the model-repository folder written
    source: str  # the fetch_models folder whose published model is quantised
    kind: str  # det | rec
    served_sha256: str  # of 1/model.onnx as written (with the heads)
    recipe: Recipe = Recipe()


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        # per-tensor weights: with per-channel weights a rendered label lost a character (the
        # suite's 28 px label read "1072-604-01REV E"); per-tensor reads every label exactly
        Target("ppocrv6_small_det_int8", "ppocrv6_small_det", "det",
               "265a7936ba2fd76f687a9b395a3b64583d122ac3f7f7aadbeedced90ff3e4b68",
               Recipe(method="percentile", per_channel=False)),
        # the first convolution (the 3-channel input layer) stays float, the usual practice: with it
        # int8 too, one more character of a rendered label went missing. Chosen among five variants
        # (float FC head, attention, neck, first conv; 8-bit weights) on rendered pages held out
        # from the calibration set (streams 3+) and the labels; this one read closest to fp32.
        Target("ppocrv6_small_rec_int8", "ppocrv6_small_rec", "rec",
               "ec72251043308413bcdcdc645812c29bc06fa44c2208af67cdffb4ae59e45942",
               Recipe(method="percentile", exclude=("Conv.0",))),
    )
}


class QuantizeError(RuntimeError):
    pass


# --- calibration ----------------------------------------------------------------------------


def calibration_inputs(kind: str, spec) -> list[np.ndarray]:
    """The float inputs of the published model, as the service would feed them, for the
    calibration set (evaluation/calibration)."""
    from evaluation import calibration
    from preprocess_service.stages import detection, recognition

    if kind == "det":
        policy = detection.ResizePolicy()
        return [detection.preprocess(img, spec, policy, uint8=False).tensor for img in calibration.pages()]
    crops = calibration.line_crops()
    return [b.tensor for b in recognition.plan_batches(crops, spec, 1, uint8=False)]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of input tensors; ``set_range``
    selects a slice (the calibration feeds one input at a time)."""

    def __init__(self, input_name: str, tensors: list[np.ndarray]):
        self._name = input_name
        self._tensors = tensors
        self._it: Iterator[np.ndarray] = iter(tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self._tensors[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        t = next(self._it, None)
        return None if t is None else {self._name: t}


# --- quantisation ---------------------------------------------------------------------------


def _excluded_nodes(model, recipe: Recipe) -> list[str]:
    """Node names of ``model`` (the pre-processed float model) that the recipe keeps in float."""
    names = set()
    tainted = set(recipe.exclude_after)
    for node in model.graph.node:  # topological order
        if (node.name in recipe.exclude or any(o in recipe.exclude for o in node.output)
                or any(i in tainted for i in node.input)):
            names.add(node.name)
            if tainted & set(node.input) or any(o in recipe.exclude_after for o in node.output):
                tainted.update(node.output)
    return sorted(names)


def calibration_ranges(pre_model: Path, kind: str, spec, recipe: Recipe) -> dict[str, list[float]]:
    """Run the calibration set through ``pre_model`` (the pre-processed float model): each
    activation's [low, high] by the recipe's method, as float32 values."""
    import onnx
    from onnxruntime.quantization.calibrate import create_calibrator
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    with tempfile.TemporaryDirectory(prefix="ocr-calib-") as tmp:
        calibrator = create_calibrator(  # the tensors quantize_static would calibrate
            pre_model, sorted(set(QLinearOpsRegistry) | set(QDQRegistry)),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=_method(recipe),
            extra_options={"percentile": recipe.percentile} if recipe.method == "percentile" else {},
        )
        reader = _Reader(onnx.load(str(pre_model)).graph.input[0].name, calibration_inputs(kind, spec))
        for i in range(len(reader)):  # one at a time: the histogram calibrators cannot stack sizes
            reader.set_range(i, i + 1)
            calibrator.collect_data(reader)
        data = calibrator.compute_data()
        del calibrator
    return {name: [float(np.float32(td.range_value[0])), float(np.float32(td.range_value[1]))]
            for name, td in sorted(data.data.items())}


def _method(recipe: Recipe):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy}[recipe.method]


def ranges_path(target: Target) -> Path:
    return RANGES_DIR / f"{target.name}.json"


def write_ranges(path: Path, target: Target, ranges: dict[str, list[float]]) -> None:
    from evaluation import calibration

    doc = {
        "written_by": "python -m export_scripts.quantize --calibrate",
        "model": target.source,
        "calibration_set": f"evaluation/calibration, seed {calibration.SEED}: {_calibration_counts()}",
        "calibration_set_sha256": calibration.digest(),
        "method": _calibration_key(target.recipe),
        "ranges": ranges,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_ranges(doc), encoding="utf-8")


def dump_ranges(doc: dict) -> str:
    """The ranges document as JSON, one tensor a line (floats as Python writes them: exact)."""
    head = json.dumps({k: v for k, v in doc.items() if k != "ranges"}, indent=1, ensure_ascii=False)
    rows = ",\n".join(f"  {json.dumps(k)}: [{lo!r}, {hi!r}]" for k, (lo, hi) in sorted(doc["ranges"].items()))
    return head[:-2] + ',\n "ranges": {\n' + rows + "\n }\n}\n"


def read_ranges(path: Path, target: Target) -> dict[str, list[float]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("method") != _calibration_key(target.recipe):
        raise QuantizeError(f"{path} was calibrated by {doc.get('method')}, {target.name} now asks for "
                            f"{_calibration_key(target.recipe)}: run `python -m export_scripts.quantize --calibrate`")
    return doc["ranges"]


def _calibration_key(recipe: Recipe) -> dict:
    """What the ranges depend on (the rest of the recipe applies when quantising)."""
    return {"method": recipe.method, **({"percentile": recipe.percentile} if recipe.method == "percentile" else {})}


def _ort_cache(ranges: dict[str, list[float]], recipe: Recipe, path: Path) -> None:
    """The ranges as onnxruntime's calibration cache (quantize_static reads it instead of calibrating)."""
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    data = {name: TensorData(lowest=np.array(lo, dtype=np.float32), highest=np.array(hi, dtype=np.float32))
            for name, (lo, hi) in ranges.items()}
    save_tensors_data(TensorsData(_method(recipe), data), path)


def pre_process(float_model: bytes, path: Path) -> None:
    """``quant_pre_process`` of the float model (opset raised to 13 first where lower), into ``path``."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load_from_string(float_model)
    if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 13:
        # per-channel DequantizeLinear (its axis) needs opset 13; the converted float model
        # computes the same numbers (recognition: opset 11, checked bit-exact)
        float_model = version_converter.convert_version(model, 13).SerializeToString()
    src = path.with_name("float.onnx")
    src.write_bytes(float_model)
    quant_pre_process(str(src), str(path), skip_symbolic_shape=True)  # sympy is not a dependency


@contextlib.contextmanager
def _root_logger_at(level: int) -> Iterator[None]:
    """The root logger at ``level`` for the block only (the quantiser's advice and progress)."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(before)


def quantize_bytes(float_model: bytes, recipe: Recipe, ranges: dict[str, list[float]]) -> bytes:
    """The published float model quantised (QDQ, no heads) with the given activation ranges."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with _root_logger_at(logging.ERROR), tempfile.TemporaryDirectory(prefix="ocr-int8-") as tmp:
        pre, out, cache = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx", Path(tmp) / "ranges.json"
        pre_process(float_model, pre)
        _ort_cache(ranges, recipe, cache)
        quantize_static(
            str(pre), str(out), None,
            quant_format=QuantFormat.QDQ,
            per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=_method(recipe),
            nodes_to_exclude=_excluded_nodes(onnx.load(str(pre)), recipe),
            calibration_cache_path=str(cache),
        )
        model = onnx.load(str(out))
    # nothing of this run (paths, times) in the file
    model.producer_name, model.producer_version = "export_scripts.quantize", "1"
    del model.metadata_props[:]
    return model.SerializeToString()


def calibrate(target: Target, repository: Path, cache_dir: Path) -> dict[str, list[float]]:
    """The target's activation ranges, measured afresh on the calibration set."""
    from preprocess_service.model_spec import load_spec

    spec = load_spec(repository, target.source)
    with tempfile.TemporaryDirectory(prefix="ocr-calib-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        pre_process(fetch_models.published_model_bytes(target.source, cache_dir), pre)
        return calibration_ranges(pre, target.kind, spec, target.recipe)


def build(target: Target, repository: Path, cache_dir: Path) -> bytes:
    """The served model bytes of ``target`` (quantised, then the heads)."""
    from preprocess_service.model_spec import load_spec

    spec = load_spec(repository, target.source)
    float_model = fetch_models.published_model_bytes(target.source, cache_dir)
    ranges = read_ranges(ranges_path(target), target)
    return input_head.serve_ready(quantize_bytes(float_model, target.recipe, ranges), target.kind, spec)


def is_complete(target: Target, repository: Path) -> bool:
    folder = repository / target.name
    model = folder / "1" / "model.onnx"
    return (bool(target.served_sha256) and model.exists() and (folder / "inference.yml").exists()
            and (folder / "config.pbtxt").exists() and sha256_file(model) == target.served_sha256)


def generate(repository: Path, names: list[str], cache_dir: Path, accept_new: bool = False,
             force: bool = False) -> dict[str, str]:
    """Write the named int8 folders (those not already present and verified, or all with
    ``force``). Returns {name: sha256} of the folders written."""
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        raise QuantizeError(f"unknown target(s) {unknown}; known: {sorted(TARGETS)}")
    written = {}
    for name in names:
        target = TARGETS[name]
        if not force and is_complete(target, repository):
            continue
        if not (repository / target.source / "inference.yml").exists():
            raise QuantizeError(f"{target.source} is not in {repository}: run `make models` first")
        if not ranges_path(target).exists():
            raise QuantizeError(f"{ranges_path(target)} is missing: `python -m export_scripts.quantize --calibrate` measures it")
        t0 = time.perf_counter()
        data = build(target, repository, cache_dir)
        written[name] = digest = fetch_models.write_derived_folder(
            repository, name, target.source, target.kind, data, target.served_sha256, accept_new, QuantizeError,
            "other ranges, recipe, onnx or onnxruntime")
        print(f"quantize: {name}: sha256 {digest} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return written


# --- measurement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    adoptable: bool
    reasons: tuple[str, ...]


def adoption(base_overall: float, base_mean: float, overall: float, mean: float, labels_fine: bool) -> Verdict:
    """The adoption rule applied to one variant's figures against the fp32 pipeline's."""
    reasons = []
    if overall > base_overall + MAX_OVERALL_CER_RISE + 1e-12:
        reasons.append(f"overall CER {overall:.4f} > fp32 {base_overall:.4f} + {MAX_OVERALL_CER_RISE}")
    if mean > base_mean + MAX_MEAN_CER_RISE + 1e-12:
        reasons.append(f"mean per-image CER {mean:.4f} > fp32 {base_mean:.4f} + {MAX_MEAN_CER_RISE}")
    if not labels_fine:
        reasons.append("a rendered label reads worse than with fp32")
    return Verdict(not reasons, tuple(reasons))


FP32 = "fp32"
_FLOAT = {"model_set": "ppocrv6_small"}  # each variant swaps models of the float set
VARIANTS: dict[str, dict[str, str]] = {
    FP32: _FLOAT,
    "det int8": {**_FLOAT, "det_model": "ppocrv6_small_det_int8"},
    "rec int8": {**_FLOAT, "rec_model": "ppocrv6_small_rec_int8"},
    "det + rec int8": {**_FLOAT, "det_model": "ppocrv6_small_det_int8", "rec_model": "ppocrv6_small_rec_int8"},
}


def make_pipeline(repository: Path, **models: str):
    from preprocess_service.backends import create_backend
    from preprocess_service.pipeline import Pipeline
    from preprocess_service.settings import Settings

    settings = Settings(api_tokens="unused-in-process", model_repository=repository, **models)  # type: ignore[arg-type]
    pipe = asyncio.run(Pipeline.create(settings, create_backend(settings)))
    asyncio.run(pipe.warmup())
    return pipe


@dataclass
class Accuracy:
    overall_cer: float
    mean_image_cer: float
    per_image: dict[str, float]
    labels: dict[str, list[str]]  # what the pipeline read from each rendered label
    label_errors: dict[str, int]  # character errors per label (evaluation/scoring.py, exact rule)

    @property
    def labels_exact(self) -> bool:
        return not any(self.label_errors.values())


def labels_ok(base: Accuracy, variant: Accuracy) -> bool:
    """The adoption rule's label clause: every label the fp32 pipeline reads exactly still reads
    exactly, and none reads worse. (The fp32 pipeline itself misreads one character of the
    40-line label_xl, "parcel" as "parce", as bench.json records: "every label exact" taken
    literally would rule out fp32 itself.)"""
    return all(variant.label_errors[k] <= base.label_errors[k] for k in base.label_errors)


def accuracy(pipe, eval_dir: Path) -> Accuracy:
    """CER by evaluation/scoring.py on the evaluation images; the rendered labels read exactly?"""
    LABELS, render_label = _bench_dataset().LABELS, _bench_dataset().render_label
    from evaluation.scoring import PredLine, Rule, load_items, score_item
    from preprocess_service.imaging import decode_image
    from preprocess_service.options import RequestOptions

    errors = chars = 0
    per_image = {}
    for item in load_items(eval_dir):
        img = decode_image(item.image.read_bytes(), 10**8)
        res = asyncio.run(pipe.read(img, RequestOptions()))
        s = score_item([PredLine(ln.text, ln.box.tolist()) for ln in res.lines], item.gt_lines, item.rule, item.dont_care)
        errors, chars = errors + s.errors, chars + s.gt_chars
        per_image[item.name] = s.cer
    labels, label_errors = {}, {}
    for name, (size, lines) in LABELS.items():
        im = np.ascontiguousarray(np.asarray(render_label(size, lines).convert("RGB"))[:, :, ::-1])
        read = asyncio.run(pipe.read(im, RequestOptions())).lines
        labels[name] = [ln.text for ln in read]
        label_errors[name] = score_item([PredLine(ln.text) for ln in read], lines, Rule()).errors
    return Accuracy(errors / max(chars, 1), float(np.mean(list(per_image.values()))), per_image, labels, label_errors)


def latency(pipes: dict[str, object], images: list[np.ndarray], repeats: int) -> dict[str, dict[str, float]]:
    """Every image read by every variant in turn (the order rotating from image to image), so
    that load from other work falls on all variants alike; ``repeats`` rounds. Per variant: the
    median over rounds of each image's time, averaged over the images (``ms_per_image_median``),
    the best round's mean, and the same medians for the detection and recognition stages."""
    from preprocess_service.options import RequestOptions

    names = list(pipes)
    ms: dict[str, list[list[tuple[float, float, float]]]] = {n: [[] for _ in images] for n in names}
    for r in range(repeats):
        t_round = time.perf_counter()
        for i, img in enumerate(images):
            for k in range(len(names)):
                name = names[(i + r + k) % len(names)]
                t = time.perf_counter()
                res = asyncio.run(pipes[name].read(img, RequestOptions()))  # type: ignore[attr-defined]
                ms[name][i].append(((time.perf_counter() - t) * 1000, res.timings_ms.get("detection", 0.0),
                                    res.timings_ms.get("recognition", 0.0)))
        print(f"  round {r + 1}/{repeats}: {time.perf_counter() - t_round:.0f} s", flush=True)
    out = {}
    for name in names:
        per_image = ms[name]
        rounds = [statistics.mean(per_image[i][r][0] for i in range(len(images))) for r in range(repeats)]
        out[name] = {
            "ms_per_image_median": round(statistics.mean(statistics.median(s[0] for s in im) for im in per_image), 1),
            "ms_per_image_best_round": round(min(rounds), 1),
            "ms_per_image_worst_round": round(max(rounds), 1),
            "det_ms_per_image_median": round(statistics.mean(statistics.median(s[1] for s in im) for im in per_image), 1),
            "rec_ms_per_image_median": round(statistics.mean(statistics.median(s[2] for s in im) for im in per_image), 1),
        }
    return out


def model_latency(pipes: dict[str, object], page: np.ndarray, runs: int) -> dict[str, dict[str, float]]:
    """One model run at a time, through the service's own backend (its sessions and threads):
    detection on ``page`` resized by the default policy (960 px limit), recognition on a batch of
    two 48 x 320 crops of it; interleaved fp32/int8, best and median ms of ``runs``. Best-of is the
    figure least disturbed by other load on the machine."""
    from preprocess_service.stages import detection, recognition

    out: dict[str, dict[str, float]] = {}
    samples: dict[tuple[str, str], list[float]] = {}
    jobs = []
    for name, pipe in pipes.items():
        p: Any = pipe
        det_in = detection.preprocess(page, p.det, detection.ResizePolicy(), uint8=p._lean(p.det.name))
        crops = [page[40:88, 40:360], page[120:168, 40:360]]
        batch = recognition.plan_batches(crops, p.rec, 2, uint8=p._lean(p.rec.name))[0]
        det_io, rec_io = p.backend.io(p.det.name), p.backend.io(p.rec.name)
        jobs.append((name, "det", p, p.det.name, {det_io.inputs[0]: det_in.tensor},
                     [PROB_U8] if PROB_U8 in det_io.outputs else [det_io.outputs[0]]))
        jobs.append((name, "rec", p, p.rec.name, p._inputs(rec_io, batch.tensor, batch.widths),
                     [CTC_ARGMAX, CTC_MAX_PROB] if CTC_ARGMAX in rec_io.outputs else [rec_io.outputs[0]]))
    for _ in range(runs):
        for name, kind, p, model, inputs, outputs in jobs:
            t = time.perf_counter()
            asyncio.run(p.backend.run(model, inputs, outputs))
            samples.setdefault((name, kind), []).append((time.perf_counter() - t) * 1000)
    for (name, kind), ms in samples.items():
        out.setdefault(name, {})[f"{kind}_model_ms_best"] = round(min(ms), 1)
        out[name][f"{kind}_model_ms_median"] = round(statistics.median(ms), 1)
    return out


def measure(repository: Path, eval_dir: Path, repeats: int) -> dict:
    load = _bench_dataset().load
    from preprocess_service.imaging import decode_image
    from preprocess_service.settings import available_cores

    pipes = {name: make_pipeline(repository, **models) for name, models in VARIANTS.items()}
    acc = {}
    for name, pipe in pipes.items():
        t = time.perf_counter()
        acc[name] = accuracy(pipe, eval_dir)
        print(f"{name}: CER {acc[name].overall_cer:.4f}, mean {acc[name].mean_image_cer:.4f}, labels exact "
              f"{acc[name].labels_exact} ({time.perf_counter() - t:.0f} s)", flush=True)
    images = [decode_image(it.data, 10**8) for it in load(eval_dir)]
    page = decode_image((eval_dir / "tess_unlv_8071_093.png").read_bytes(), 10**8)
    models = model_latency({k: pipes[k] for k in (FP32, "det + rec int8")}, page, 10 * repeats)
    speed = latency(pipes, images, repeats)
    base = acc[FP32]
    variants = {}
    for name, a in acc.items():
        v = adoption(base.overall_cer, base.mean_image_cer, a.overall_cer, a.mean_image_cer, labels_ok(base, a))
        variants[name] = {
            "settings": {f"OCR_{k.upper()}": val for k, val in VARIANTS[name].items()},
            **speed[name],
            "speedup_vs_fp32": round(speed[FP32]["ms_per_image_median"] / speed[name]["ms_per_image_median"], 2),
            **models.get(name, {}),
            "cer_overall": round(a.overall_cer, 5),
            "cer_mean_per_image": round(a.mean_image_cer, 5),
            "labels_exact": a.labels_exact,
            "label_errors": a.label_errors,
            "labels_no_worse_than_fp32": labels_ok(base, a),
            "adoptable": v.adoptable,
            "not_adoptable_because": list(v.reasons),
            "per_image_cer": {k: round(c, 4) for k, c in a.per_image.items()},
            "labels_read": a.labels,
        }
    return {
        "command": "python -m export_scripts.quantize --measure" + (f" --repeats {repeats}" if repeats != 5 else ""),
        "date": datetime.date.today().isoformat(),
        "machine": {"cores": available_cores(), "cpu": _cpu_name(), "python": platform.python_version(),
                    "onnxruntime": _ort_version()},
        "note": "in-process Pipeline (embedded onnxruntime, default settings), one image at a time; "
                "ms_per_image_median: each image's median over the rounds, averaged over the benchmark's 35 images "
                "(31 evaluation images and 4 rendered labels), the variants taking turns image by image; on 2 cores "
                "the timings move by several percent from run to run: compare within one run only",
        "images_timed": len(images),
        "model_runs": "det_model_ms_* / rec_model_ms_*: one model run at a time through the service's backend, "
                      "fp32 and int8 interleaved, 10 x repeats runs: detection on tess_unlv_8071_093.png resized to "
                      "960 px on its long side, recognition on a batch of two 48 x 320 crops of it",
        "repeats": repeats,
        "adoption_rule": {"max_overall_cer_rise": MAX_OVERALL_CER_RISE, "max_mean_image_cer_rise": MAX_MEAN_CER_RISE,
                          "labels": "every label fp32 reads exactly still reads exactly, none reads worse "
                                    "(fp32 itself misreads one character of label_xl)"},
        "quantisation": {
            "format": "QDQ", "activations": "uint8 asymmetric, ranges by each model's recipe (method)",
            "weights": "int8, 7-bit (reduce_range), per channel or per tensor by each model's recipe (per_channel)",
            "calibration": "evaluation/calibration (rendered, seed "
                           f"{_calibration_seed()}): {_calibration_counts()}",
            "models": {t.name: {"source": t.source, "sha256": t.served_sha256, "recipe": dataclasses.asdict(t.recipe)}
                       for t in TARGETS.values()},
        },
        "variants": variants,
    }


def _bench_dataset():
    """bench.dataset (the rendered labels, the benchmark's images), imported at run time: bench/
    is outside what mypy checks."""
    import importlib

    return importlib.import_module("bench.dataset")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _calibration_seed() -> int:
    from evaluation import calibration

    return calibration.SEED


def _calibration_counts() -> str:
    from evaluation import calibration

    return f"{calibration.N_PAGES} pages (detection), {calibration.N_LINES} line crops (recognition)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "wheels")
    ap.add_argument("--targets", nargs="+", default=sorted(TARGETS), choices=sorted(TARGETS))
    ap.add_argument("--calibrate", action="store_true",
                    help="measure the activation ranges afresh on the calibration set and rewrite "
                         "export_scripts/int8_ranges/ (slow: minutes), then rebuild")
    ap.add_argument("--force", action="store_true", help="rebuild even when the folder is present and verified")
    ap.add_argument("--accept-new-sha256", action="store_true", help="write a result whose sha256 is not the pinned one")
    ap.add_argument("--measure", action="store_true", help="then measure speed and CER, write docs/artifacts/int8.json")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds over the images (--measure)")
    ap.add_argument("--eval-dir", type=Path, help="the evaluation set (--measure; default evaluation/data)")
    ap.add_argument("--out", type=Path, default=ARTIFACT)
    args = ap.parse_args(argv)
    try:
        if args.calibrate:
            for name in args.targets:
                target, t0 = TARGETS[name], time.perf_counter()
                path = ranges_path(target)
                old = path.read_text(encoding="utf-8") if path.exists() else None
                write_ranges(path, target, calibrate(target, args.repository, args.cache_dir))
                same = old == path.read_text(encoding="utf-8")
                print(f"quantize: {path.relative_to(ROOT)}: {'unchanged' if same else 'rewritten'} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
        written = generate(args.repository, args.targets, args.cache_dir, args.accept_new_sha256,
                           args.force or args.calibrate)
    except (QuantizeError, FetchError) as exc:
        print(f"quantize: error: {exc}", file=sys.stderr)
        return 1
    if not written:
        print(f"quantize: {len(args.targets)} int8 model(s) present and verified in {args.repository}")
    if args.measure:
        os.environ.pop("OCR_DET_MODEL", None)
        os.environ.pop("OCR_REC_MODEL", None)
        from evaluation import EVAL_DIR

        result = measure(args.repository, args.eval_dir or EVAL_DIR, args.repeats)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print("| variant | median ms/image | CER overall | mean per-image CER | labels exact | adoptable |")
        print("|---|---|---|---|---|---|")
        for name, v in result["variants"].items():
            print(f"| {name} | {v['ms_per_image_median']:.0f} ({v['speedup_vs_fp32']:.2f}x) | {v['cer_overall']:.4f} | "
                  f"{v['cer_mean_per_image']:.4f} | {v['labels_exact']} | {v['adoptable']} |")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
