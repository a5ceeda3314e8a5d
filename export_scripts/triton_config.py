"""Write a Triton ``config.pbtxt`` for one ONNX model of the repository.

Inputs and outputs are read from the model itself (names, element types, which dimensions are
dynamic), so the config always matches the file it serves. The first dimension of every tensor
is the batch dimension (``max_batch_size`` > 0); the others are listed with -1 for dynamic.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import onnxruntime as ort

_ONNX_TO_TRITON = {
    "tensor(float)": "TYPE_FP32",
    "tensor(float16)": "TYPE_FP16",
    "tensor(int64)": "TYPE_INT64",
    "tensor(int32)": "TYPE_INT32",
    "tensor(uint8)": "TYPE_UINT8",
}


@dataclass(frozen=True)
class KindDefaults:
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int


# Detection inputs differ in H and W from image to image: Triton batches only equal shapes, so
# a small batch is enough. Recognition crops share H=48 and are sent in width buckets, so they
# batch well across clients.
KIND_DEFAULTS = {
    "det": KindDefaults(max_batch_size=4, preferred_batch_sizes=(1, 2, 4), max_queue_delay_us=1000),
    "rec": KindDefaults(max_batch_size=32, preferred_batch_sizes=(8, 16, 32), max_queue_delay_us=2000),
    "cls": KindDefaults(max_batch_size=32, preferred_batch_sizes=(8, 16, 32), max_queue_delay_us=2000),
}


@dataclass(frozen=True)
class TensorDecl:
    name: str
    data_type: str
    dims: tuple[int, ...]  # without the batch dimension


def _dims(shape) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else -1 for d in shape[1:])


def read_io(model: str | Path | BinaryIO | bytes) -> tuple[list[TensorDecl], list[TensorDecl]]:
    """Inputs and outputs of an ONNX model, as Triton declares them."""
    if isinstance(model, io.IOBase):
        model = model.read()
    if isinstance(model, Path):
        model = str(model)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    def decl(arg) -> TensorDecl:
        if arg.type not in _ONNX_TO_TRITON:
            raise ValueError(f"tensor {arg.name}: unsupported type {arg.type}")
        return TensorDecl(arg.name, _ONNX_TO_TRITON[arg.type], _dims(arg.shape))

    return [decl(a) for a in sess.get_inputs()], [decl(a) for a in sess.get_outputs()]


def _tensor_block(label: str, tensors: list[TensorDecl]) -> str:
    items = []
    for t in tensors:
        dims = ", ".join(str(d) for d in t.dims)
        items.append(f'  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n    dims: [ {dims} ]\n  }}')
    return f"{label} [\n" + ",\n".join(items) + "\n]\n"


# A warm-up request per model so the first client does not pay for lazy initialisation.
WARMUP_SHAPES = {"det": (3, 736, 736), "rec": (3, 48, 320), "cls": (3, 48, 192)}
WARMUP_BATCH = {"det": 1, "rec": 8, "cls": 8}


def trt_shape_ranges(inference_yml: dict | None) -> dict[str, list[list[int]]]:
    """min/opt/max input shapes for TensorRT from a PaddleX inference.yml (Hpi backend_configs)."""
    cfgs = ((inference_yml or {}).get("Hpi") or {}).get("backend_configs") or {}
    for key in ("tensorrt", "paddle_infer"):
        shapes = (cfgs.get(key) or {}).get("dynamic_shapes") or (cfgs.get(key) or {}).get("trt_dynamic_shapes")
        if shapes:
            return {name: [list(map(int, s)) for s in ranges] for name, ranges in shapes.items()}
    return {}


def _shape(s: list[int]) -> str:
    return "x".join(str(v) for v in s)


def render(name: str, kind: str, inputs: list[TensorDecl], outputs: list[TensorDecl],
           inference_yml: dict | None = None) -> str:
    d = KIND_DEFAULTS[kind]
    preferred = ", ".join(str(b) for b in d.preferred_batch_sizes)
    first = inputs[0]
    warm_dims = ", ".join(str(v) for v in WARMUP_SHAPES[kind])
    ranges = trt_shape_ranges(inference_yml)
    trt = ""
    if ranges:
        lines = [f"#   {n}: min {_shape(r[0])}, opt {_shape(r[1])}, max {_shape(r[2])}" for n, r in ranges.items()]
        trt = (
            "# TensorRT (GPU only): Triton's onnxruntime backend can hand the graph to TensorRT. The\n"
            "# shape profile from inference.yml is:\n" + "\n".join(lines) + "\n"
            "# Uncomment to enable (FP32: FP16 has broken some PP-OCR detection models under TensorRT).\n"
            "# The first request per new shape builds an engine; keep the cache on a volume.\n"
            "# optimization { execution_accelerators { gpu_execution_accelerator: [ {\n"
            '#   name: "tensorrt"\n'
            '#   parameters { key: "precision_mode" value: "FP32" }\n'
            '#   parameters { key: "max_workspace_size_bytes" value: "1073741824" }\n'
            '#   parameters { key: "trt_engine_cache_enable" value: "1" }\n'
            '#   parameters { key: "trt_engine_cache_path" value: "/tmp/trt-cache" }\n'
            "# } ] } }\n"
        )
    return (
        f"# Triton config for {name} ({kind}). Written by export_scripts/triton_config.py from the\n"
        f"# model's own inputs and outputs; pre/post-processing settings live in inference.yml.\n"
        f'name: "{name}"\n'
        f'backend: "onnxruntime"\n'
        f"max_batch_size: {d.max_batch_size}\n"
        + _tensor_block("input", inputs)
        + _tensor_block("output", outputs)
        + "dynamic_batching {\n"
        f"  preferred_batch_size: [ {preferred} ]\n"
        f"  max_queue_delay_microseconds: {d.max_queue_delay_us}\n"
        "}\n"
        "# KIND_AUTO: one instance on each GPU when the server has GPUs (the production case), on the\n"
        "# CPU otherwise. Use KIND_GPU to refuse to load without a GPU, KIND_CPU to pin to the CPU.\n"
        "instance_group [\n  {\n    count: 1\n    kind: KIND_AUTO\n  }\n]\n"
        "model_warmup [\n  {\n"
        f'    name: "zeros_{_shape(list(WARMUP_SHAPES[kind]))}"\n'
        f"    batch_size: {WARMUP_BATCH[kind]}\n"
        "    inputs {\n"
        f'      key: "{first.name}"\n'
        f"      value {{\n        data_type: {first.data_type}\n        dims: [ {warm_dims} ]\n        zero_data: true\n      }}\n"
        "    }\n  }\n]\n"
        + trt
    )


def render_for_model(name: str, kind: str, model: str | Path | BinaryIO | bytes, inference_yml: dict | None = None) -> str:
    inputs, outputs = read_io(model)
    return render(name, kind, inputs, outputs, inference_yml)
