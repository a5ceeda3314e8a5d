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


def render(name: str, kind: str, inputs: list[TensorDecl], outputs: list[TensorDecl]) -> str:
    d = KIND_DEFAULTS[kind]
    preferred = ", ".join(str(b) for b in d.preferred_batch_sizes)
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
        "# GPU by default; on a CPU-only Triton change kind to KIND_CPU.\n"
        "instance_group [\n  {\n    count: 1\n    kind: KIND_GPU\n  }\n]\n"
    )


def render_for_model(name: str, kind: str, model: str | Path | BinaryIO | bytes) -> str:
    inputs, outputs = read_io(model)
    return render(name, kind, inputs, outputs)
