"""Write a Triton ``config.pbtxt`` for one ONNX model of the repository.

Inputs and outputs are read from the model itself (names, element types, which dimensions are
dynamic), so the config always matches the file it serves. The first dimension of every tensor
is the batch dimension (``max_batch_size`` > 0); the others are listed with -1 for dynamic.

Besides the tensors, each config carries:

* a bounded queue (``dynamic_batching.default_queue_policy``): a request beyond
  ``max_queue_size`` is refused at once, one still queued past its timeout is refused without
  running; the service sends each call's remaining deadline as its ``timeout``
  (``allow_timeout_override``: shorter than ``default_timeout_microseconds``, never longer);
* the CUDA execution provider's options (the same choices as the embedded backend's
  ``OCR_ORT_CUDA_*`` settings: ``CudaOptions`` in ``preprocess_service.backends.onnxruntime_backend``);
* optionally (``--tensorrt``) the TensorRT execution accelerator with an explicit shape profile
  (min/opt/max per input) built from the model's ``inference.yml``, ``max_batch_size`` and the
  recognition width bucket.

Regenerate the committed configs (after ``make models``)::

    python -m export_scripts.triton_config                      # CUDA EP, no TensorRT (committed)
    python -m export_scripts.triton_config --tensorrt           # + TensorRT, widths in buckets of 320
    python -m export_scripts.triton_config --check              # exit 1 if a config is stale

Every folder but the CPU-only INT8 ones also gets ``configs/gpu.pbtxt`` (``render_gpu``), the
config Triton loads on GPU nodes with ``--model-config-name=gpu``: ``KIND_GPU`` (a CUDA failure
is a load failure, never a silent CPU fallback), batch sizes and warm-up shapes from the
service's shape buckets.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import onnxruntime as ort
import yaml

from preprocess_service.backends.onnxruntime_backend import CudaOptions

ROOT = Path(__file__).resolve().parent.parent

_ONNX_TO_TRITON = {
    "tensor(float)": "TYPE_FP32",
    "tensor(float16)": "TYPE_FP16",
    "tensor(int64)": "TYPE_INT64",
    "tensor(int32)": "TYPE_INT32",
    "tensor(uint8)": "TYPE_UINT8",
}


@dataclass(frozen=True)
class QueuePolicy:
    """Triton's ``default_queue_policy`` of the dynamic batcher (timeout_action is REJECT)."""

    max_queue_size: int
    default_timeout_us: int
    allow_timeout_override: bool = True

    def __post_init__(self) -> None:
        if self.max_queue_size < 1:
            raise ValueError("max_queue_size must be >= 1 (0 would mean an unbounded queue)")
        if self.default_timeout_us < 1:
            raise ValueError("default_timeout_us must be >= 1 (0 would mean no timeout)")


@dataclass(frozen=True)
class KindDefaults:
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int
    queue: QueuePolicy
    # Instances and onnxruntime intra-op threads per instance (0: onnxruntime's default, all cores).
    # Every kind runs side by side on one thread per instance: several requests are in Triton at
    # once, and one detection run over all cores left cores idle between runs while the others
    # waited for its single instance. On 2 cores at concurrency 4 (bench.pairs, embedded against
    # ours-triton, interleaved): one detection instance over both cores 2.6-2.9 img/s; two
    # single-thread instances per model 0.81-0.88x the embedded median; three at par (the
    # committed run: docs/artifacts/triton-vs-embedded.json). Triton's
    # `intra_op_thread_count` applies to CPU instances; GPU instances are `count` per GPU.
    instances: int = 3
    intra_op_threads: int = 1


# Detection inputs differ in H and W from image to image: Triton batches only equal shapes, so
# a small batch is enough. Recognition crops share H=48 and are sent in width buckets, so they
# batch well across clients.
# Queues: a detection request holds a whole page (960 x 960 x 3 at the default side limit: 2.8 MB
# as uint8, 11 MB as float32), so 16 of them bound the queued memory to 45 (180) MB; recognition
# and classification batches are small (8 crops of 48 x 320: 0.4 (1.5) MB), 128 of them as much.
# Timeouts: Triton lets a request ask for a shorter timeout than the default, never a longer one,
# so the default is the longest a request may wait in the queue and must cover the service's
# longest per-call deadline (OCR_TRITON_TIMEOUT_S, 30 s; a unit test holds them together). The
# service sends each call's remaining deadline, which is shorter.
DEFAULT_QUEUE_TIMEOUT_US = 30_000_000
KIND_DEFAULTS = {
    "det": KindDefaults(max_batch_size=4, preferred_batch_sizes=(1, 2, 4), max_queue_delay_us=1000,
                        queue=QueuePolicy(max_queue_size=16, default_timeout_us=DEFAULT_QUEUE_TIMEOUT_US)),
    "rec": KindDefaults(max_batch_size=32, preferred_batch_sizes=(8, 16, 32), max_queue_delay_us=2000,
                        queue=QueuePolicy(max_queue_size=128, default_timeout_us=DEFAULT_QUEUE_TIMEOUT_US)),
    "cls": KindDefaults(max_batch_size=32, preferred_batch_sizes=(8, 16, 32), max_queue_delay_us=2000,
                        queue=QueuePolicy(max_queue_size=128, default_timeout_us=DEFAULT_QUEUE_TIMEOUT_US)),
}

# Detection resizes both sides to multiples of 32 (stages/detection.py).
DET_ALIGN = 32
# The recognition width bucket the TensorRT profile assumes by default: the value docs/triton.md
# recommends for OCR_REC_WIDTH_MULTIPLE on a GPU.
DEFAULT_REC_WIDTH_MULTIPLE = 320


@dataclass(frozen=True)
class TensorRTOptions:
    """Triton onnxruntime backend's TensorRT accelerator (``gpu_execution_accelerator``)."""

    # FP32: FP16 has broken some PP-OCR detection models under TensorRT.
    precision_mode: str = "FP32"
    max_workspace_size_bytes: int = 1 << 30
    engine_cache_path: str = "/tmp/trt-cache"  # keep it on a volume: engines take minutes to build
    rec_width_multiple: int = DEFAULT_REC_WIDTH_MULTIPLE  # the service's OCR_REC_WIDTH_MULTIPLE (0: none)
    # largest detection side in the profile (None: inference.yml's, 4000 for PP-OCR); the engine's
    # memory follows the max shape, so a deployment that keeps OCR_DET_MAX_SIDE_LIMIT lower can
    # lower this too
    det_max_side: int | None = None

    def __post_init__(self) -> None:
        if self.precision_mode not in ("FP32", "FP16", "BF16", "INT8"):
            raise ValueError(f"unsupported TensorRT precision_mode {self.precision_mode!r}")
        if self.rec_width_multiple < 0:
            raise ValueError("rec_width_multiple must be >= 0")
        if self.det_max_side is not None and self.det_max_side < DET_ALIGN:
            raise ValueError(f"det_max_side must be >= {DET_ALIGN}")


@dataclass(frozen=True)
class ConfigOptions:
    """Everything of a config that is a choice rather than a fact of the model."""

    queue: QueuePolicy | None = None  # None: KIND_DEFAULTS[kind].queue
    cuda: CudaOptions = field(default_factory=CudaOptions)
    tensorrt: TensorRTOptions | None = None  # None: no TensorRT (the default)
    instances: int | None = None  # None: KIND_DEFAULTS[kind].instances (per GPU, or on the CPU)

    def __post_init__(self) -> None:
        if self.instances is not None and self.instances < 1:
            raise ValueError("instances must be >= 1")


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


def _model_block(name: str, max_batch_size: int, inputs: list[TensorDecl], outputs: list[TensorDecl]) -> str:
    """Name, backend, batch size and the tensors: what every config of a model says first."""
    return (f'name: "{name}"\nbackend: "onnxruntime"\nmax_batch_size: {max_batch_size}\n'
            + _tensor_block("input", inputs) + _tensor_block("output", outputs))


def _tensor_block(label: str, tensors: list[TensorDecl]) -> str:
    items = []
    for t in tensors:
        dims = ", ".join(str(d) for d in t.dims)
        items.append(f'  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n    dims: [ {dims} ]\n  }}')
    return f"{label} [\n" + ",\n".join(items) + "\n]\n"


# A warm-up request per model so the first client does not pay for lazy initialisation: the
# image input at this height x width (laid out as the model takes it), other inputs zeros.
WARMUP_HW = {"det": (736, 736), "rec": (48, 320), "cls": (48, 192)}
WARMUP_BATCH = {"det": 1, "rec": 8, "cls": 8}


def image_axes(t: TensorDecl) -> tuple[int, int, int] | None:
    """Axes (channel, height, width) of an image input in the full shape (batch first): CHW
    (the published models) or HWC (models with the uint8 input head); None for other inputs."""
    if len(t.dims) != 3:
        return None
    if t.dims[0] == 3:
        return 1, 2, 3
    if t.dims[2] == 3:
        return 3, 1, 2
    return None


def _from_nchw(nchw: list[int], axes: tuple[int, int, int]) -> list[int]:
    """A PaddleX NCHW shape laid out for a model whose image axes are ``axes``."""
    out = [0, 0, 0, 0]
    out[0] = nchw[0]
    for src, ax in zip((1, 2, 3), axes):
        out[ax] = nchw[src]
    return out


def warmup_dims(kind: str, t: TensorDecl) -> tuple[int, ...]:
    axes = image_axes(t)
    if axes is not None:
        h, w = WARMUP_HW[kind]
        return tuple(_from_nchw([1, 3, h, w], axes)[1:])
    if any(d < 0 for d in t.dims):
        raise ValueError(f"input {t.name!r}: dynamic dims {t.dims} and no rule for a warm-up shape")
    return t.dims


def trt_shape_ranges(inference_yml: dict | None) -> dict[str, list[list[int]]]:
    """min/opt/max input shapes for TensorRT from a PaddleX inference.yml (Hpi backend_configs)."""
    cfgs = ((inference_yml or {}).get("Hpi") or {}).get("backend_configs") or {}
    for key in ("tensorrt", "paddle_infer"):
        shapes = (cfgs.get(key) or {}).get("dynamic_shapes") or (cfgs.get(key) or {}).get("trt_dynamic_shapes")
        if shapes:
            return {name: [list(map(int, s)) for s in ranges] for name, ranges in shapes.items()}
    return {}


def _shape(s) -> str:
    return "x".join(str(v) for v in s)


@dataclass(frozen=True)
class ShapeProfile:
    """One TensorRT optimization profile: per input, the min, opt and max shape (batch first)."""

    min: dict[str, tuple[int, ...]]
    opt: dict[str, tuple[int, ...]]
    max: dict[str, tuple[int, ...]]

    def text(self, which: str) -> str:
        """Triton's trt_profile_*_shapes value: ``name:AxBxC,name2:...``."""
        shapes = getattr(self, which)
        return ",".join(f"{name}:{_shape(s)}" for name, s in shapes.items())


def _round_up(v: int, m: int) -> int:
    return int(math.ceil(v / m)) * m


def _round_near(v: int, m: int) -> int:
    return max(m, int(round(v / m)) * m)


def trt_profile(kind: str, inputs: list[TensorDecl], inference_yml: dict | None, max_batch_size: int,
                preferred_batch_sizes: tuple[int, ...], rec_width_multiple: int = 0,
                det_max_side: int | None = None) -> ShapeProfile:
    """The TensorRT shape profile of a model.

    Spatial ranges of the image input come from inference.yml (PaddleX's ``Hpi.backend_configs``
    tensorrt ``dynamic_shapes``, NCHW), laid out as the model takes its image (CHW or HWC); the
    batch range is 1..``max_batch_size`` (Triton merges requests up to it; a batch beyond the
    profile would fail), optimised for the smallest preferred batch size (or the yml's, if
    larger). Detection sides are multiples of 32 (as the service resizes); recognition widths
    are rounded to the width bucket (``OCR_REC_WIDTH_MULTIPLE``), the max upward so that every
    width the service can send stays inside the profile. Fixed model dimensions are kept and
    must agree with the yml; an input without a yml range must be fixed but for the batch."""
    ranges = trt_shape_ranges(inference_yml)
    lo: dict[str, tuple[int, ...]] = {}
    op: dict[str, tuple[int, ...]] = {}
    hi: dict[str, tuple[int, ...]] = {}
    batch_opt = min(max(min(preferred_batch_sizes), 1), max_batch_size)
    for t in inputs:
        axes = image_axes(t)
        if t.name not in ranges:
            if any(d < 0 for d in t.dims):
                raise ValueError(f"input {t.name!r}: inference.yml gives no TensorRT shape range (Hpi.backend_configs)")
            lo[t.name], op[t.name], hi[t.name] = (1, *t.dims), (batch_opt, *t.dims), (max_batch_size, *t.dims)
            continue
        if axes is None or not all(len(r) == 4 for r in ranges[t.name]):
            raise ValueError(f"input {t.name!r}: inference.yml ranges {ranges[t.name]} do not fit dims {t.dims}")
        r_min, r_opt, r_max = (_from_nchw(r, axes) for r in ranges[t.name])
        opt_batch = min(max(r_opt[0], batch_opt), max_batch_size)
        mins, opts, maxs = [1], [opt_batch], [max_batch_size]
        for i, dim in enumerate(t.dims, start=1):
            a, b, c = r_min[i], r_opt[i], r_max[i]
            if dim > 0:
                if (a, b, c) != (dim, dim, dim):
                    raise ValueError(f"input {t.name!r}: dimension {i} is fixed at {dim} but inference.yml says {a}..{c}")
            else:
                align = 0
                if kind == "det" and i in axes[1:]:
                    align = DET_ALIGN
                elif kind == "rec" and i == axes[2]:
                    align = rec_width_multiple
                if kind == "det" and det_max_side is not None and i in axes[1:]:
                    c = det_max_side
                    a, b = min(a, c), min(b, c)
                if align:
                    a, c = _round_up(a, align), _round_up(c, align)
                    b = min(max(_round_near(b, align), a), c)
            if not 0 < a <= b <= c:
                raise ValueError(f"input {t.name!r}: dimension {i} range {a}/{b}/{c} is not min <= opt <= max")
            mins.append(a)
            opts.append(b)
            maxs.append(c)
        lo[t.name], op[t.name], hi[t.name] = tuple(mins), tuple(opts), tuple(maxs)
    return ShapeProfile(lo, op, hi)


def _queue_block(q: QueuePolicy) -> str:
    return (
        "  # Bounded queue: beyond max_queue_size a request is refused at once (503); one still queued\n"
        "  # when its timeout expires is refused without running (503). The service sends each call's\n"
        "  # remaining deadline as its timeout; a request may ask for less than the default, not more.\n"
        "  default_queue_policy {\n"
        f"    max_queue_size: {q.max_queue_size}\n"
        "    timeout_action: REJECT\n"
        f"    default_timeout_microseconds: {q.default_timeout_us}\n"
        f"    allow_timeout_override: {'true' if q.allow_timeout_override else 'false'}\n"
        "  }\n"
    )


def _accel_params(params: dict[str, str], indent: str) -> str:
    return "".join(f'{indent}parameters {{ key: "{k}" value: "{v}" }}\n' for k, v in params.items())


def _gpu_block(kind: str, inputs: list[TensorDecl], inference_yml: dict | None, d: KindDefaults,
               options: ConfigOptions) -> str:
    cuda = options.cuda.provider_options()
    legacy = options.cuda.triton_legacy_parameters()
    out = (
        "# GPU instances: onnxruntime's CUDA execution provider with the same options as the embedded\n"
        "# backend's OCR_ORT_CUDA_* settings (HEURISTIC cuDNN search: OCR input shapes change with every\n"
        "# page, and an EXHAUSTIVE search per new shape costs hundreds of ms). Written twice on purpose:\n"
        "# the `cuda` accelerator (Triton >= 24.07) and the older model-level keys, which the backend\n"
        "# reads last whenever a model has any `parameters`, so both must agree. CPU instances ignore both.\n"
    )
    out += "".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n' for k, v in legacy.items())
    accels = []
    trt = options.tensorrt
    if trt is not None:
        prof = trt_profile(kind, inputs, inference_yml, d.max_batch_size, d.preferred_batch_sizes,
                           trt.rec_width_multiple, trt.det_max_side)
        trt_params = {
            "precision_mode": trt.precision_mode,
            "max_workspace_size_bytes": str(trt.max_workspace_size_bytes),
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": trt.engine_cache_path,
            "trt_profile_min_shapes": prof.text("min"),
            "trt_profile_opt_shapes": prof.text("opt"),
            "trt_profile_max_shapes": prof.text("max"),
        }
        out += (
            "# TensorRT first (the CUDA provider runs what TensorRT cannot), one engine for the whole\n"
            "# shape profile: batch 1..max_batch_size, spatial ranges from inference.yml"
            + (f", recognition widths in buckets of {trt.rec_width_multiple}\n"
               f"# (run the service with OCR_REC_WIDTH_MULTIPLE={trt.rec_width_multiple})"
               if kind == "rec" and trt.rec_width_multiple else "")
            + ". The first load builds the\n# engine (minutes); the cache path should be a volume.\n"
        )
        accels.append('  {\n    name: "tensorrt"\n' + _accel_params(trt_params, "    ") + "  }")
    accels.append('  {\n    name: "cuda"\n' + _accel_params(cuda, "    ") + "  }")
    out += "optimization { execution_accelerators { gpu_execution_accelerator: [\n" + ",\n".join(accels) + "\n] } }\n"
    if trt is None:
        out += (
            "# TensorRT: off. `python -m export_scripts.triton_config --tensorrt` adds it with a shape\n"
            "# profile (min/opt/max per input) from inference.yml and max_batch_size.\n"
        )
    return out


def render(name: str, kind: str, inputs: list[TensorDecl], outputs: list[TensorDecl],
           inference_yml: dict | None = None, options: ConfigOptions | None = None) -> str:
    options = options or ConfigOptions()
    d = KIND_DEFAULTS[kind]
    queue = options.queue or d.queue
    preferred = ", ".join(str(b) for b in d.preferred_batch_sizes)
    image = next((t for t in inputs if image_axes(t) is not None), inputs[0])
    h, w = WARMUP_HW[kind]
    warm_inputs = "".join(
        "    inputs {\n"
        f'      key: "{t.name}"\n'
        f"      value {{\n        data_type: {t.data_type}\n"
        f"        dims: [ {', '.join(str(v) for v in warmup_dims(kind, t))} ]\n        zero_data: true\n      }}\n"
        "    }\n"
        for t in [image] + [t for t in inputs if t is not image]
    )
    return (
        f"# Triton config for {name} ({kind}). Written by export_scripts/triton_config.py from the\n"
        f"# model's own inputs and outputs; pre/post-processing settings live in inference.yml.\n"
        + _model_block(name, d.max_batch_size, inputs, outputs)
        + "dynamic_batching {\n"
        f"  preferred_batch_size: [ {preferred} ]\n"
        f"  max_queue_delay_microseconds: {d.max_queue_delay_us}\n"
        + _queue_block(queue)
        + "}\n"
        "# KIND_AUTO: `count` instances on each GPU when the server has GPUs (the production case), on\n"
        "# the CPU otherwise. Use KIND_GPU to refuse to load without a GPU, KIND_CPU to pin to the CPU.\n"
        + _instances_block(d, options.instances or d.instances)
        + "model_warmup [\n  {\n"
        f'    name: "zeros_{h}x{w}"\n'
        f"    batch_size: {WARMUP_BATCH[kind]}\n"
        + warm_inputs
        + "  }\n]\n"
        + _gpu_block(kind, inputs, inference_yml, d, options)
    )


# --- GPU nodes: configs/gpu.pbtxt (Triton's --model-config-name=gpu) ---------------------------


@dataclass(frozen=True)
class GpuBuckets:
    """The service's shape buckets (OCR_DET_CANVASES, OCR_DET_BATCH_SIZES, OCR_REC_WIDTH_BUCKETS,
    OCR_REC_BATCH_SIZES; the defaults are the settings' defaults): a GPU config's batch sizes,
    warm-up shapes and TensorRT profile follow them, so Triton plans exactly what it is sent."""

    det_canvases: tuple[tuple[int, int], ...]
    det_batch_sizes: tuple[int, ...]
    rec_widths: tuple[int, ...]
    rec_batch_sizes: tuple[int, ...]

    @classmethod
    def from_settings(cls, settings=None) -> GpuBuckets:
        """From a Settings object, or the settings' own defaults."""
        from preprocess_service.settings import Settings

        if settings is None:
            f = Settings.model_fields
            canv = f["det_canvases"].default_factory()  # type: ignore[misc,call-arg]
            det_b = f["det_batch_sizes"].default_factory()  # type: ignore[misc,call-arg]
            widths = f["rec_width_buckets"].default_factory()  # type: ignore[misc,call-arg]
            rec_b = f["rec_batch_sizes"].default_factory()  # type: ignore[misc,call-arg]
        else:
            canv, det_b = settings.det_canvases, settings.det_batch_sizes
            widths, rec_b = settings.rec_width_buckets, settings.rec_batch_sizes
        pairs = sorted({(int(h), int(w)) for h, w in (c.split("x") for c in canv)}, key=lambda p: (p[0] * p[1], p))
        return cls(tuple(pairs), tuple(sorted(set(det_b))), tuple(sorted(set(widths))), tuple(sorted(set(rec_b))))

    def batch_sizes(self, kind: str) -> tuple[int, ...]:
        return self.det_batch_sizes if kind == "det" else self.rec_batch_sizes

    def image_hw(self, kind: str, fixed_hw: tuple[int, int]) -> list[tuple[int, int]]:
        """The (H, W) of every image shape a model of ``kind`` is sent."""
        if kind == "det":
            return list(self.det_canvases)
        if kind == "rec":
            return [(fixed_hw[0], w) for w in self.rec_widths]
        return [fixed_hw]


def _warmup_entries(kind: str, inputs: list[TensorDecl], buckets: GpuBuckets) -> str:
    """One warm-up request per bucket shape: Triton runs them before the model is READY, so no
    client pays a GPU's first run of a shape (a cuDNN plan, a TensorRT profile)."""
    image = next((t for t in inputs if image_axes(t) is not None), inputs[0])
    axes = image_axes(image)
    assert axes is not None
    fixed = WARMUP_HW[kind]
    out = []
    for h, w in buckets.image_hw(kind, fixed):
        dims = _from_nchw([1, 3, h, w], axes)[1:]
        for n in buckets.batch_sizes(kind):
            entry = f'  {{\n    name: "{kind}_{n}x{h}x{w}"\n    batch_size: {n}\n'
            for t in [image] + [t for t in inputs if t is not image]:
                tdims = dims if t is image else t.dims
                entry += ("    inputs {\n" f'      key: "{t.name}"\n'
                          f"      value {{\n        data_type: {t.data_type}\n"
                          f"        dims: [ {', '.join(str(v) for v in tdims)} ]\n        zero_data: true\n"
                          "      }\n    }\n")
            out.append(entry + "  }")
    return "model_warmup [\n" + ",\n".join(out) + "\n]\n"


def render_gpu(name: str, kind: str, inputs: list[TensorDecl], outputs: list[TensorDecl],
               inference_yml: dict | None = None, options: ConfigOptions | None = None,
               buckets: GpuBuckets | None = None) -> str:
    """The config of a model on GPU nodes (``configs/gpu.pbtxt``): ``KIND_GPU``, so a CUDA failure
    is a load failure and never a model quietly running on a few CPUs; batch sizes, preferred
    batch sizes and warm-up shapes from the service's shape buckets; the CUDA provider's options
    (and, with ``tensorrt``, a profile spanning the buckets)."""
    options = options or ConfigOptions()
    buckets = buckets or GpuBuckets.from_settings()
    base = KIND_DEFAULTS[kind]
    sizes = buckets.batch_sizes(kind)
    d = replace(base, max_batch_size=max(sizes), preferred_batch_sizes=sizes, instances=1, intra_op_threads=0)
    queue = options.queue or d.queue
    count = options.instances or d.instances
    trt = options.tensorrt
    if trt is not None:  # the profile spans the buckets: the largest canvas side, the widest width
        side = max(max(c) for c in buckets.det_canvases)
        trt = replace(trt, rec_width_multiple=0, det_max_side=min(side, trt.det_max_side or side))
    return (
        f"# Triton config for {name} ({kind}) on GPU nodes: load it with --model-config-name=gpu.\n"
        f"# Written by export_scripts/triton_config.py from the model's own inputs and outputs and the\n"
        f"# service's shape buckets; pre/post-processing settings live in inference.yml.\n"
        + _model_block(name, d.max_batch_size, inputs, outputs)
        + "dynamic_batching {\n"
        "  # the service pads every batch to one of these sizes (OCR_*_BATCH_SIZES): Triton merges\n"
        "  # requests of one shape into them\n"
        f"  preferred_batch_size: [ {', '.join(str(b) for b in sizes)} ]\n"
        f"  max_queue_delay_microseconds: {d.max_queue_delay_us}\n"
        + _queue_block(queue)
        + "}\n"
        "# KIND_GPU: no GPU, no model (a load failure), never a silent CPU fallback. `count` is per GPU;\n"
        "# one instance per GPU until a GPU measurement says otherwise (bench/gpu_run.py).\n"
        f"instance_group [\n  {{\n    count: {count}\n    kind: KIND_GPU\n  }}\n]\n"
        + _warmup_entries(kind, inputs, buckets)
        + _gpu_block(kind, inputs, inference_yml, d, replace(options, tensorrt=trt))
    )


def _instances_block(d: KindDefaults, count: int) -> str:
    out = ""
    if d.intra_op_threads:
        out += ("# Runs side by side: each CPU instance runs onnxruntime on "
                f"{d.intra_op_threads} intra-op thread(s); on a CPU node, set\n"
                "# `count` from a measured run (python -m export_scripts.triton_config --instances N).\n"
                f'parameters {{ key: "intra_op_thread_count" value: {{ string_value: "{d.intra_op_threads}" }} }}\n')
    return out + f"instance_group [\n  {{\n    count: {count}\n    kind: KIND_AUTO\n  }}\n]\n"


def render_for_model(name: str, kind: str, model: str | Path | BinaryIO | bytes, inference_yml: dict | None = None,
                     options: ConfigOptions | None = None) -> str:
    inputs, outputs = read_io(model)
    return render(name, kind, inputs, outputs, inference_yml, options)


def render_folder(folder: Path, kind: str, options: ConfigOptions | None = None, name: str | None = None) -> str:
    """The config of a model folder of the repository (``1/model.onnx`` + ``inference.yml``)."""
    return render(name or folder.name, kind, *_folder_io(folder), options)


def render_gpu_folder(folder: Path, kind: str, options: ConfigOptions | None = None,
                      buckets: GpuBuckets | None = None) -> str:
    """``configs/gpu.pbtxt`` of a model folder of the repository."""
    return render_gpu(folder.name, kind, *_folder_io(folder), options, buckets)


def _folder_io(folder: Path) -> tuple[list[TensorDecl], list[TensorDecl], dict]:
    """Inputs, outputs and inference.yml of a model folder of the repository."""
    from preprocess_service.model_spec import model_file

    yml = yaml.safe_load((folder / "inference.yml").read_text(encoding="utf-8"))
    inputs, outputs = read_io(model_file(folder))
    return inputs, outputs, yml


# Folders quantised for CPUs get no GPU config: no GPU mode loads them (the chart maps their model
# sets to the float set on GPUs; the embedded backend refuses them with a GPU provider).
CPU_ONLY_SUFFIX = "_int8"


def write_repository(repository: Path, names: list[str], options: ConfigOptions | None = None,
                     check: bool = False, kinds: dict[str, str] | None = None) -> list[str]:
    """(Re)write ``config.pbtxt`` and, but for CPU-only folders, ``configs/gpu.pbtxt`` of the
    named folders; returns those that changed (or, with ``check``, that would change).
    ``kinds``: folder -> det/rec/cls (default: the catalogue, export_scripts/catalogue.py)."""
    if kinds is None:
        from export_scripts.catalogue import MODELS

        kinds = {n: m.kind for n, m in MODELS.items()}
    changed = []
    for name in names:
        folder = repository / name
        texts = {folder / "config.pbtxt": render_folder(folder, kinds[name], options)}
        if not name.endswith(CPU_ONLY_SUFFIX):
            gpu_opts = replace(options or ConfigOptions(), instances=None)
            texts[folder / "configs" / "gpu.pbtxt"] = render_gpu_folder(folder, kinds[name], gpu_opts)
        stale = [p for p, t in texts.items() if not p.exists() or p.read_text(encoding="utf-8") != t]
        if not stale:
            continue
        changed.append(name)
        if not check:
            for path in stale:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(texts[path], encoding="utf-8")
    return changed


def repository_kinds() -> dict[str, str]:
    """Every folder the project serves -> its kind: the published models, the INT8 and the FP16
    folders built from them."""
    from export_scripts import fp16, quantize
    from export_scripts.catalogue import MODELS

    kinds = {n: m.kind for n, m in MODELS.items()}
    kinds |= {n: t.kind for n, t in quantize.TARGETS.items()}
    kinds |= {n: t.kind for n, t in fp16.TARGETS.items()}
    return kinds


def main(argv: list[str] | None = None) -> int:
    kinds = repository_kinds()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    ap.add_argument("--models", nargs="+", default=sorted(kinds), choices=sorted(kinds), metavar="NAME")
    ap.add_argument("--tensorrt", action="store_true", help="add the TensorRT accelerator with a shape profile")
    ap.add_argument("--trt-precision", default="FP32", choices=["FP32", "FP16", "BF16"])
    ap.add_argument("--trt-cache-path", default=TensorRTOptions.engine_cache_path)
    ap.add_argument("--rec-width-multiple", type=int, default=DEFAULT_REC_WIDTH_MULTIPLE,
                    help="recognition width bucket of the TensorRT profile (the service's OCR_REC_WIDTH_MULTIPLE; 0: none)")
    ap.add_argument("--det-max-side", type=int, help="largest detection side of the TensorRT profile "
                    "(default: inference.yml's)")
    ap.add_argument("--max-queue-size", type=int, help="every model's max_queue_size (default: per model kind)")
    ap.add_argument("--queue-timeout-us", type=int, help="every model's default_timeout_microseconds (default: per kind)")
    ap.add_argument("--cudnn-conv-algo-search", choices=["EXHAUSTIVE", "HEURISTIC", "DEFAULT"],
                    default=CudaOptions.cudnn_conv_algo_search)
    ap.add_argument("--arena-extend-strategy", choices=["kNextPowerOfTwo", "kSameAsRequested"],
                    default=CudaOptions.arena_extend_strategy)
    ap.add_argument("--gpu-mem-limit-mib", type=int, default=CudaOptions.gpu_mem_limit_mib)
    ap.add_argument("--instances", type=int, help="every model's instance count (default: per model kind; on a "
                    "CPU node, up to its cores)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a config differs")
    args = ap.parse_args(argv)
    cuda = CudaOptions(cudnn_conv_algo_search=args.cudnn_conv_algo_search,
                       arena_extend_strategy=args.arena_extend_strategy, gpu_mem_limit_mib=args.gpu_mem_limit_mib)
    trt = TensorRTOptions(precision_mode=args.trt_precision, engine_cache_path=args.trt_cache_path,
                          rec_width_multiple=args.rec_width_multiple, det_max_side=args.det_max_side) if args.tensorrt else None
    changed: list[str] = []
    for name in args.models:  # queue overrides apply on top of each kind's defaults
        q = KIND_DEFAULTS[kinds[name]].queue
        if args.max_queue_size is not None:
            q = replace(q, max_queue_size=args.max_queue_size)
        if args.queue_timeout_us is not None:
            q = replace(q, default_timeout_us=args.queue_timeout_us)
        changed += write_repository(args.repository, [name], ConfigOptions(queue=q, cuda=cuda, tensorrt=trt,
                                                                                  instances=args.instances),
                                    check=args.check, kinds=kinds)
    verb = "differ" if args.check else "written"
    print(f"triton_config: {len(changed)} config(s) {verb}{': ' + ', '.join(changed) if changed else ''}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
