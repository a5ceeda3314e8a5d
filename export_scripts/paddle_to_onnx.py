"""Export PaddleOCR / PaddleX models (PaddlePaddle format) to ONNX, in the repository layout.

Input: one folder per model, as PaddleOCR / PaddleX publish them: ``inference.json`` (PIR) or
``inference.pdmodel``, ``inference.pdiparams`` and ``inference.yml``. The kind (detection,
recognition, classifier) is read from ``inference.yml``. Output, the layout the service and
Triton read::

    <repository>/<name>/1/model.onnx    (the uint8 input head, see input_head.py; recognition also the
                                        greedy-CTC head, see ctc_head.py)
    <repository>/<name>/inference.yml   (copied)
    <repository>/<name>/config.pbtxt    (triton_config.py)

Each model is converted with paddle2onnx (optimizer off: its default one pip-installs packages
at run time), with batch, height and width kept dynamic as the model declares them. Then Paddle
inference and onnxruntime run the same random inputs of several shapes and the maximum absolute
difference is reported; above ``--tolerance`` (1e-4 for float32) the export fails.

``--fp16`` also writes ``<name>_fp16`` (weights and compute in float16, float32 inputs and
outputs, converted with onnxruntime's float16 tool) and checks it on real images given with
``--images``: detection maps and recognised texts against the float32 model. Never the default:
FP16 has broken some PP-OCR detection models under TensorRT.

    python -m export_scripts.paddle_to_onnx --model ppocrv6_server_det=PATH [--model NAME=PATH ...]
        [--repository model_repository] [--opset 14] [--tolerance 1e-4] [--fp16 --images DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from export_scripts import input_head, triton_config

ROOT = Path(__file__).resolve().parent.parent

# Input shapes for the parity check; dimensions the model fixes are taken from the model.
PARITY_SHAPES = {
    "det": [(1, 3, 64, 64), (2, 3, 96, 160), (1, 3, 320, 224)],
    "rec": [(1, 3, 48, 320), (4, 3, 48, 160), (2, 3, 48, 640)],
    "cls": [(1, 3, 48, 192), (4, 3, 48, 192)],
}
KINDS = {"DBPostProcess": "det", "CTCLabelDecode": "rec", "Topk": "cls", "ClsPostProcess": "cls"}


class ExportError(RuntimeError):
    pass


@dataclass
class ExportReport:
    name: str
    kind: str
    source: str
    onnx_path: str
    max_abs_diff: float
    shapes: list[list[int]]
    passed: bool
    fp16: dict | None = field(default=None)


def read_yml(folder: Path) -> dict:
    yml = folder / "inference.yml"
    if not yml.exists():
        raise ExportError(f"{folder}: inference.yml is missing")
    return yaml.safe_load(yml.read_text(encoding="utf-8")) or {}


def model_files(folder: Path) -> tuple[Path, Path]:
    params = folder / "inference.pdiparams"
    for name in ("inference.json", "inference.pdmodel"):
        if (folder / name).exists() and params.exists():
            return folder / name, params
    raise ExportError(f"{folder}: expected inference.json or inference.pdmodel, and inference.pdiparams")


def model_kind(doc: dict, folder: Path) -> str:
    post = (doc.get("PostProcess") or {}).get("name")
    if post not in KINDS:
        raise ExportError(f"{folder}: unknown PostProcess.name {post!r} in inference.yml")
    return KINDS[post]


def convert(model_file: Path, params_file: Path, out: Path, opset: int) -> None:
    import paddle2onnx

    paddle2onnx.export(
        str(model_file), str(params_file), save_file=str(out), opset_version=opset,
        optimize_tool="None", enable_onnx_checker=True,
    )
    if not out.exists():
        raise ExportError(f"paddle2onnx wrote no model for {model_file}")


def _shapes_for(kind: str, onnx_path: Path) -> list[tuple[int, ...]]:
    import onnxruntime as ort

    declared = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    shapes = []
    for shape in PARITY_SHAPES[kind]:
        shapes.append(tuple(d if isinstance(d, int) and d > 0 else s for d, s in zip(declared, shape)))
    return shapes


def paddle_predictor(model_file: Path, params_file: Path):
    import paddle.inference as pi

    config = pi.Config(str(model_file), str(params_file))
    config.disable_gpu()
    config.disable_glog_info()
    return pi.create_predictor(config)


def run_paddle(predictor, x: np.ndarray) -> np.ndarray:
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


def parity(model_file: Path, params_file: Path, onnx_path: Path, kind: str, seed: int = 0) -> tuple[float, list]:
    """Max |paddle - onnxruntime| over random inputs of several shapes (first output)."""
    import onnxruntime as ort

    predictor = paddle_predictor(model_file, params_file)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    worst = 0.0
    shapes = _shapes_for(kind, onnx_path)
    for shape in shapes:
        x = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
        ref = run_paddle(predictor, x)
        got = session.run([session.get_outputs()[0].name], {name: x})[0]
        if ref.shape != got.shape:
            raise ExportError(f"{onnx_path}: output shape {got.shape} differs from Paddle's {ref.shape} for input {shape}")
        worst = max(worst, float(np.abs(ref.astype(np.float64) - got.astype(np.float64)).max()))
    return worst, [list(s) for s in shapes]


def to_fp16(model_bytes: bytes) -> bytes:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load_from_string(model_bytes), keep_io_types=True)
    return model.SerializeToString()


def fp16_check(kind: str, fp32: bytes, fp16: bytes, folder: Path, images: list[Path]) -> dict:
    """Compare float16 and float32 models on real images the way the pipeline feeds them."""
    import onnxruntime as ort

    from preprocess_service.imaging import decode_image
    from preprocess_service.model_spec import DetSpec, RecSpec, load_spec
    from preprocess_service.stages import classification, detection, recognition

    s32 = ort.InferenceSession(fp32, providers=["CPUExecutionProvider"])
    s16 = ort.InferenceSession(fp16, providers=["CPUExecutionProvider"])
    inp = s32.get_inputs()[0].name
    out = s32.get_outputs()[0].name
    lean = s32.get_inputs()[0].type == "tensor(uint8)"  # the uint8 input head (input_head.py)
    spec = load_spec(folder.parent, folder.name)
    stats = {"images": len(images), "max_abs_diff": 0.0}
    flipped = total = same_text = 0
    for path in images:
        img = decode_image(path.read_bytes(), 10**8)
        feed: dict[str, np.ndarray]
        if isinstance(spec, DetSpec):
            feed = {inp: detection.preprocess(img, spec, detection.ResizePolicy(), uint8=lean).tensor}
        elif isinstance(spec, RecSpec):
            batch = recognition.plan_batches([img], spec, 1, uint8=lean)[0]
            feed = {inp: batch.tensor}
            if batch.widths is not None:
                feed[input_head.VALID_WIDTH] = batch.widths
        elif lean:
            x, widths = classification.preprocess_u8([img], spec)
            feed = {inp: x, input_head.VALID_WIDTH: widths}
        else:
            feed = {inp: classification.preprocess([img], spec)}
        a, b = s32.run([out], feed)[0], s16.run([out], feed)[0]
        stats["max_abs_diff"] = max(stats["max_abs_diff"], float(np.abs(a - b).max()))
        if isinstance(spec, DetSpec):
            flipped += int(((a > spec.thresh) != (b > spec.thresh)).sum())
            total += a.size
        elif isinstance(spec, RecSpec):
            same_text += recognition.ctc_decode(a, spec.charset)[0][0] == recognition.ctc_decode(b, spec.charset)[0][0]
        else:
            same_text += int(a.argmax() == b.argmax())
    if kind == "det":
        stats["binarized_pixels_changed"] = flipped / max(total, 1)
    else:
        stats["same_result_ratio"] = same_text / max(len(images), 1)
    return stats


def export_one(name: str, source: Path, repository: Path, opset: int, tolerance: float,
               check: bool = True, fp16: bool = False, images: list[Path] | None = None) -> ExportReport:
    doc = read_yml(source)
    kind = model_kind(doc, source)
    model_file, params_file = model_files(source)
    folder = repository / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        convert(model_file, params_file, raw, opset)
        diff, shapes = parity(model_file, params_file, raw, kind) if check else (float("nan"), [])
        passed = (not check) or diff <= tolerance
        if not passed:
            raise ExportError(f"{name}: max |paddle - onnx| = {diff:.3g} is over the tolerance {tolerance:g}")
        data = raw.read_bytes()
    shutil.copyfile(source / "inference.yml", folder / "inference.yml")
    # as every served model: the greedy-CTC head on recognition, the uint8 input head on all
    from preprocess_service.model_spec import load_spec

    data = input_head.serve_ready(data, kind, load_spec(repository, name))
    (folder / "1" / "model.onnx").write_bytes(data)
    (folder / "config.pbtxt").write_text(triton_config.render_for_model(name, kind, data, doc))
    report = ExportReport(name, kind, str(source), str(folder / "1" / "model.onnx"), diff, shapes, passed)
    if fp16:
        half = to_fp16(data)
        fp16_folder = repository / f"{name}_fp16"
        (fp16_folder / "1").mkdir(parents=True, exist_ok=True)
        (fp16_folder / "1" / "model.onnx").write_bytes(half)
        shutil.copyfile(source / "inference.yml", fp16_folder / "inference.yml")
        (fp16_folder / "config.pbtxt").write_text(triton_config.render_for_model(f"{name}_fp16", kind, half, doc))
        report.fp16 = fp16_check(kind, data, half, folder, images or []) if images else {"images": 0}
    return report


def print_report(reports: list[ExportReport]) -> None:
    print("| model | kind | max abs diff (paddle vs onnxruntime) | shapes | result |")
    print("|---|---|---|---|---|")
    for r in reports:
        shapes = ", ".join("x".join(map(str, s)) for s in r.shapes)
        print(f"| {r.name} | {r.kind} | {r.max_abs_diff:.3g} | {shapes} | {'ok' if r.passed else 'FAIL'} |")
        if r.fp16:
            print(f"|   {r.name}_fp16 | {r.kind} | vs fp32 on real images: {json.dumps(r.fp16)} | | |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                    help="repository folder name and the Paddle model folder; repeat per model")
    ap.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    ap.add_argument("--opset", type=int, default=14)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--no-check", action="store_true", help="skip the Paddle parity check")
    ap.add_argument("--fp16", action="store_true", help="also write <name>_fp16 (GPU use; never the default)")
    ap.add_argument("--images", type=Path, help="folder of real images for the FP16 accuracy check")
    ap.add_argument("--report", type=Path, help="write the parity report as JSON here")
    args = ap.parse_args(argv)
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")) if args.images else None
    reports = []
    try:
        for spec in args.model:
            name, _, path = spec.partition("=")
            if not name or not path:
                raise ExportError(f"--model wants NAME=DIR, got {spec!r}")
            reports.append(export_one(name, Path(path), args.repository, args.opset, args.tolerance,
                                      check=not args.no_check, fp16=args.fp16, images=images))
    except ExportError as exc:
        print_report(reports)
        print(f"paddle_to_onnx: error: {exc}", file=sys.stderr)
        return 1
    print_report(reports)
    if args.report:
        args.report.write_text(json.dumps([asdict(r) for r in reports], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
