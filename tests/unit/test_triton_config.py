"""Generated Triton configs and the GPU options, checked on paper (no GPU needed).

Every config is parsed with Triton's own schema (``model_config.proto`` as compiled in the
tritonclient wheel), so a misspelt field or a wrong type fails here rather than at load time.
The GPU choices (cuDNN search, arena, memory limit, copy stream) are one object,
``CudaOptions``: the tests hold the embedded backend's provider options, the Triton configs and
the settings' defaults to the same values. The TensorRT profile is checked shape by shape
against max_batch_size, inference.yml and the widths the service really sends.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from pathlib import Path

import pytest
import tritonclient
from google.protobuf import text_format

from export_scripts import triton_config as tc
from export_scripts.fetch_models import MODELS
from preprocess_service.api.errors import status_of
from preprocess_service.backends import create_backend
from preprocess_service.backends import onnxruntime_backend as ortb
from preprocess_service.backends.batching import BucketedBackend
from preprocess_service.backends.onnxruntime_backend import CudaOptions, OnnxRuntimeBackend
from preprocess_service.model_spec import RecSpec, load_spec
from preprocess_service.settings import Settings
from preprocess_service.stages import recognition


def _model_config_pb2():
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PB = _model_config_pb2()


def parse(text: str):
    """A config as Triton reads it (strict: unknown fields and wrong types raise)."""
    return text_format.Parse(text, PB.ModelConfig())


def _accelerators(cfg) -> dict[str, dict[str, str]]:
    return {a.name: dict(a.parameters) for a in cfg.optimization.execution_accelerators.gpu_execution_accelerator}


def _shape_list(text: str) -> dict[str, tuple[int, ...]]:
    """``x:1x3x48x320,valid_width:1x1`` -> {"x": (1, 3, 48, 320), "valid_width": (1, 1)}."""
    out = {}
    for item in text.split(","):
        name, dims = item.rsplit(":", 1)
        out[name] = tuple(int(v) for v in dims.split("x"))
    return out


def _render(repository: Path, name: str, options: tc.ConfigOptions | None = None) -> str:
    return tc.render_folder(repository / name, MODELS[name].kind, options)


# --- 1. bounded queues that carry the request's deadline ---------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_committed_config_has_a_bounded_rejecting_queue(repository, name):
    cfg = parse((repository / name / "config.pbtxt").read_text())
    kind = MODELS[name].kind
    d = tc.KIND_DEFAULTS[kind]
    db = cfg.dynamic_batching
    # the batching fields kept
    assert list(db.preferred_batch_size) == list(d.preferred_batch_sizes)
    assert all(b <= cfg.max_batch_size for b in db.preferred_batch_size)
    assert db.max_queue_delay_microseconds == d.max_queue_delay_us
    q = db.default_queue_policy
    assert q.timeout_action == PB.ModelQueuePolicy.REJECT
    assert q.max_queue_size == d.queue.max_queue_size > 0  # 0 would be unbounded
    assert q.allow_timeout_override is True  # the service's per-request deadline applies
    # Triton lets a request shorten its timeout, never lengthen it: the default must cover the
    # service's longest per-call deadline, or Triton would cut calls the service still waits for
    assert q.default_timeout_microseconds >= Settings(api_tokens="x").triton_timeout_s * 1e6


def test_queue_policy_per_kind_and_as_parameter(repository):
    assert tc.KIND_DEFAULTS["det"].queue.max_queue_size < tc.KIND_DEFAULTS["rec"].queue.max_queue_size
    opts = tc.ConfigOptions(queue=tc.QueuePolicy(max_queue_size=1, default_timeout_us=250_000))
    q = parse(_render(repository, "ppocrv6_small_det", opts)).dynamic_batching.default_queue_policy
    assert (q.max_queue_size, q.default_timeout_microseconds, q.allow_timeout_override) == (1, 250_000, True)
    with pytest.raises(ValueError, match="unbounded"):
        tc.QueuePolicy(max_queue_size=0, default_timeout_us=1)
    with pytest.raises(ValueError, match="no timeout"):
        tc.QueuePolicy(max_queue_size=1, default_timeout_us=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_instances_side_by_side_on_one_thread_each(repository, name):
    """Every model: three instances of one onnxruntime thread each on a CPU (Triton's
    intra_op_thread_count), `count` per GPU on a GPU; an operator's count overrides it."""
    cfg = parse((repository / name / "config.pbtxt").read_text())
    assert [(g.count, g.kind) for g in cfg.instance_group] == [(3, PB.ModelInstanceGroup.KIND_AUTO)]
    assert cfg.parameters["intra_op_thread_count"].string_value == "1"
    assert [g.count for g in parse(_render(repository, name, tc.ConfigOptions(instances=6))).instance_group] == [6]
    with pytest.raises(ValueError, match="instances"):
        tc.ConfigOptions(instances=0)


def test_committed_configs_are_generated_not_hand_written(repository, capsys):
    assert tc.main(["--repository", str(repository), "--check"]) == 0
    assert "0 config(s) differ" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_warmup_feeds_every_input_in_the_models_layout(repository, name):
    """Triton refuses to load a model whose warm-up request misses an input or has a wrong shape."""
    cfg = parse((repository / name / "config.pbtxt").read_text())
    (warm,) = cfg.model_warmup
    assert warm.batch_size <= cfg.max_batch_size
    declared = {t.name: t for t in cfg.input}
    assert set(warm.inputs) == set(declared)
    for key, value in warm.inputs.items():
        dims = list(declared[key].dims)
        assert value.data_type == declared[key].data_type
        assert len(value.dims) == len(dims)
        assert all(d == -1 or d == w for d, w in zip(dims, value.dims)), (key, dims, list(value.dims))


# --- 2. GPU options: the same choices embedded and in Triton ------------------------------

TRITON_ALGO = {"0": "EXHAUSTIVE", "1": "HEURISTIC", "2": "DEFAULT"}  # onnxruntime_backend's legacy codes
TRITON_ARENA = {"0": "kNextPowerOfTwo", "1": "kSameAsRequested"}


def test_settings_defaults_are_the_options_defaults():
    s = Settings(api_tokens="x")
    assert CudaOptions.from_settings(s) == CudaOptions()
    assert s.ort_cuda_cudnn_conv_algo_search == "HEURISTIC"
    assert s.ort_cuda_arena_extend_strategy == "kSameAsRequested"
    assert s.ort_cuda_gpu_mem_limit_mib == 0
    assert s.ort_cuda_do_copy_in_default_stream is True


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("OCR_ORT_CUDA_CUDNN_CONV_ALGO_SEARCH", "EXHAUSTIVE")
    monkeypatch.setenv("OCR_ORT_CUDA_ARENA_EXTEND_STRATEGY", "kNextPowerOfTwo")
    monkeypatch.setenv("OCR_ORT_CUDA_GPU_MEM_LIMIT_MIB", "3072")
    monkeypatch.setenv("OCR_ORT_CUDA_DO_COPY_IN_DEFAULT_STREAM", "false")
    opts = CudaOptions.from_settings(Settings(api_tokens="x"))
    assert opts.provider_options() == {
        "cudnn_conv_algo_search": "EXHAUSTIVE", "arena_extend_strategy": "kNextPowerOfTwo",
        "do_copy_in_default_stream": "0", "gpu_mem_limit": str(3072 * 2**20),
    }
    monkeypatch.setenv("OCR_ORT_CUDA_CUDNN_CONV_ALGO_SEARCH", "FASTEST")
    with pytest.raises(ValueError):
        Settings(api_tokens="x")


@pytest.mark.parametrize("cuda", [CudaOptions(), CudaOptions("EXHAUSTIVE", "kNextPowerOfTwo", 2048, False)])
@pytest.mark.parametrize("name", ["ppocrv6_small_det", "ppocrv6_small_rec"])
def test_triton_config_carries_the_same_cuda_options(repository, name, cuda):
    """The `cuda` accelerator gets onnxruntime's own option names and values (Triton's backend
    hands them to onnxruntime unchanged), and the legacy model-level keys, which that backend
    reads last whenever a model has parameters, decode to the very same values."""
    cfg = parse(_render(repository, name, tc.ConfigOptions(cuda=cuda)))
    accel = _accelerators(cfg)
    assert list(accel) == ["cuda"]  # no TensorRT unless asked
    assert accel["cuda"] == cuda.provider_options()
    legacy = {k: v.string_value for k, v in cfg.parameters.items()}
    assert TRITON_ALGO[legacy["cudnn_conv_algo_search"]] == cuda.cudnn_conv_algo_search
    assert TRITON_ARENA[legacy["arena_extend_strategy"]] == cuda.arena_extend_strategy
    assert legacy["do_copy_in_default_stream"] == ("1" if cuda.do_copy_in_default_stream else "0")
    if cuda.gpu_mem_limit_mib:
        assert legacy["gpu_mem_limit"] == accel["cuda"]["gpu_mem_limit"] == str(cuda.gpu_mem_limit_mib * 2**20)
    else:  # no limit: absent, so that Triton and onnxruntime use SIZE_MAX
        assert "gpu_mem_limit" not in legacy and "gpu_mem_limit" not in accel["cuda"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_committed_configs_use_the_settings_defaults(repository, name):
    cfg = parse((repository / name / "config.pbtxt").read_text())
    assert _accelerators(cfg) == {"cuda": CudaOptions.from_settings(Settings(api_tokens="x")).provider_options()}
    assert cfg.parameters["cudnn_conv_algo_search"].string_value == "1"  # HEURISTIC


GPU_FIRST = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_embedded_backend_gives_onnxruntime_the_cuda_options(repository):
    s = Settings(api_tokens="x", ort_providers="CUDAExecutionProvider,CPUExecutionProvider",
                 ort_cuda_gpu_mem_limit_mib=1024, model_set="ppocrv6_small")
    bucketed = create_backend(s)  # CUDA first: shape buckets on, in front of the backend
    assert isinstance(bucketed, BucketedBackend)
    backend = bucketed.inner
    assert isinstance(backend, OnnxRuntimeBackend)
    on_gpu = backend.session_providers({"CUDAExecutionProvider", "CPUExecutionProvider"})
    assert on_gpu == [
        ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC", "arena_extend_strategy": "kSameAsRequested",
                                   "do_copy_in_default_stream": "1", "gpu_mem_limit": str(1024 * 2**20)}),
        "CPUExecutionProvider",
    ]
    assert backend.session_providers({"CPUExecutionProvider"}) == ["CPUExecutionProvider"]
    cpu = create_backend(Settings(api_tokens="x"))
    assert isinstance(cpu, OnnxRuntimeBackend)
    assert cpu.session_providers({"CUDAExecutionProvider", "CPUExecutionProvider"}) == ["CPUExecutionProvider"]


class _RecordingSession:
    """Stands in for onnxruntime.InferenceSession to see what the backend passes; it reports the
    CPU, as onnxruntime-gpu does on a machine without CUDA libraries (a silent fallback)."""

    calls: list[dict] = []

    def __init__(self, path, options, providers):
        _RecordingSession.calls.append({"path": path, "providers": providers})

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def get_inputs(self):
        return []

    def get_outputs(self):
        return []


def test_what_onnxruntime_receives_and_the_silent_fallback(repository, monkeypatch, caplog):
    monkeypatch.setattr(ortb.ort, "get_available_providers", lambda: GPU_FIRST)
    monkeypatch.setattr(ortb.ort, "InferenceSession", _RecordingSession)
    _RecordingSession.calls.clear()
    strict = OnnxRuntimeBackend(repository, providers=GPU_FIRST, intra_op_threads=1)
    with pytest.raises(RuntimeError, match="OCR_ORT_ALLOW_CPU_FALLBACK"):
        strict._open("ppocrv6_tiny_det")
    (call,) = _RecordingSession.calls
    assert call["providers"] == [("CUDAExecutionProvider", CudaOptions().provider_options()), "CPUExecutionProvider"]
    assert call["providers"][0][1]["cudnn_conv_algo_search"] == "HEURISTIC"
    lenient = OnnxRuntimeBackend(repository, providers=GPU_FIRST, intra_op_threads=1, allow_cpu_fallback=True)
    lenient._open("ppocrv6_tiny_det")
    assert lenient.describe() == {"ppocrv6_tiny_det": "CPUExecutionProvider"}
    assert "asked for CUDAExecutionProvider but runs on CPUExecutionProvider" in caplog.text


def test_this_cpu_only_machine_refuses_or_falls_back_as_configured(repository):
    """The real onnxruntime of this machine (no CUDA provider): refused unless allowed."""
    import asyncio

    strict = OnnxRuntimeBackend(repository, providers=GPU_FIRST, intra_op_threads=1)
    with pytest.raises(RuntimeError, match="asked for CUDAExecutionProvider but onnxruntime gave CPUExecutionProvider"):
        asyncio.run(strict.load(["ppocrv6_tiny_det"]))
    lenient = OnnxRuntimeBackend(repository, providers=GPU_FIRST, intra_op_threads=1, allow_cpu_fallback=True)
    assert asyncio.run(lenient.load(["ppocrv6_tiny_det"])) == ["ppocrv6_tiny_det"]
    assert lenient.describe() == {"ppocrv6_tiny_det": "CPUExecutionProvider"}


def test_embedded_backend_does_not_run_past_the_deadline(repository):
    """A run whose request deadline has passed raises 503 deadline_exceeded without running."""
    import asyncio
    import time

    import numpy as np

    from preprocess_service.backends.base import request_deadline
    from preprocess_service.errors import DeadlineExceeded

    backend = OnnxRuntimeBackend(repository, providers=["CPUExecutionProvider"], intra_op_threads=1)

    async def go():
        await backend.load(["ppocr_textline_cls"])
        io = backend.io("ppocr_textline_cls")
        x = {io.inputs[0]: np.zeros((1, 48, 192, 3), np.uint8)}
        if len(io.inputs) > 1:
            x[io.inputs[1]] = np.full((1, 1), 192, np.int64)
        request_deadline.set(time.monotonic() + 30)
        assert (await backend.run("ppocr_textline_cls", x))[io.outputs[0]].shape == (1, 2)
        request_deadline.set(time.monotonic() - 0.001)
        with pytest.raises(DeadlineExceeded) as err:
            await backend.run("ppocr_textline_cls", x)
        assert status_of(err.value) == 503 and err.value.retry_after_s

    asyncio.run(go())


# --- 3. TensorRT: a real shape profile, off by default -----------------------------------

def _image_axes(dims: list[int]) -> tuple[int, int, int] | None:
    """(channel, height, width) axes of an image input in the batched shape, read off the config."""
    if len(dims) == 3 and dims[0] == 3:
        return 1, 2, 3
    if len(dims) == 3 and dims[2] == 3:
        return 3, 1, 2
    return None


def check_profile(cfg, kind: str, width_multiple: int, yml: dict,
                  det_max_side: int | None = None) -> dict[str, dict[str, tuple[int, ...]]]:
    """Every shape of the TensorRT profile consistent with the config; returns the profile."""
    trt = _accelerators(cfg)["tensorrt"]
    prof = {w: _shape_list(trt[f"trt_profile_{w}_shapes"]) for w in ("min", "opt", "max")}
    inputs = {t.name: list(t.dims) for t in cfg.input}
    assert set(prof["min"]) == set(prof["opt"]) == set(prof["max"]) == set(inputs)  # every input profiled
    ranges = tc.trt_shape_ranges(yml)
    for name, dims in inputs.items():
        lo, op, hi = prof["min"][name], prof["opt"][name], prof["max"][name]
        assert len(lo) == len(op) == len(hi) == len(dims) + 1
        assert all(0 < a <= b <= c for a, b, c in zip(lo, op, hi)), (name, lo, op, hi)
        # batch: 1..max_batch_size, as Triton's dynamic batcher may merge up to it
        assert lo[0] == 1 and hi[0] == cfg.max_batch_size and op[0] in cfg.dynamic_batching.preferred_batch_size
        for i, d in enumerate(dims, start=1):
            if d != -1:
                assert lo[i] == op[i] == hi[i] == d, (name, i)  # fixed dims stay fixed
        axes = _image_axes(dims)
        if axes is None:
            assert name not in ranges
            continue
        y_min, _, y_max = ranges[name]  # PaddleX NCHW
        _, h_ax, w_ax = axes
        w_align = {"det": 32, "rec": width_multiple or 1}.get(kind, 1)
        aligns = {h_ax: 32 if kind == "det" else 1, w_ax: w_align}
        for ax, y_lo, y_hi in ((h_ax, y_min[2], y_max[2]), (w_ax, y_min[3], y_max[3])):
            align = aligns[ax]
            assert lo[ax] % align == op[ax] % align == hi[ax] % align == 0, (name, ax, align)
            if kind == "det" and det_max_side is not None:
                y_hi = det_max_side
            # the yml's range, widened to whole buckets and no further
            assert y_lo <= lo[ax] < y_lo + align and y_hi <= hi[ax] < y_hi + align, (name, ax, lo, hi)
    return prof


@pytest.mark.parametrize("multiple", [320, 32, 0])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_tensorrt_profile_is_consistent(repository, name, multiple):
    import yaml

    kind = MODELS[name].kind
    yml = yaml.safe_load((repository / name / "inference.yml").read_text(encoding="utf-8"))
    opts = tc.ConfigOptions(tensorrt=tc.TensorRTOptions(rec_width_multiple=multiple))
    cfg = parse(_render(repository, name, opts))
    accel = _accelerators(cfg)
    assert list(accel) == ["tensorrt", "cuda"]  # TensorRT first, CUDA for what it cannot run
    assert accel["tensorrt"]["precision_mode"] == "FP32"
    assert accel["tensorrt"]["trt_engine_cache_enable"] == "1"
    assert accel["cuda"] == CudaOptions().provider_options()
    check_profile(cfg, kind, multiple, yml)


@pytest.mark.parametrize("multiple", [320, 96, 32])
def test_every_width_the_service_sends_is_inside_the_profile(repository, multiple):
    """The service's own batch_width (stages/recognition.py), over crops from a sliver to a very
    long line, at OCR_REC_WIDTH_MULTIPLE=multiple: inside [min, max] of the profile."""
    spec = load_spec(repository, "ppocrv6_small_rec")
    assert isinstance(spec, RecSpec)
    cfg = parse(_render(repository, "ppocrv6_small_rec",
                        tc.ConfigOptions(tensorrt=tc.TensorRTOptions(rec_width_multiple=multiple))))
    prof = {w: _shape_list(_accelerators(cfg)["tensorrt"][f"trt_profile_{w}_shapes"]) for w in ("min", "max")}
    axes = _image_axes(list(next(t for t in cfg.input if t.name == "x").dims))
    assert axes is not None
    lo, hi = prof["min"]["x"][axes[2]], prof["max"]["x"][axes[2]]
    assert hi % multiple == 0 and lo % multiple == 0
    for ratio in [0.1, 1, 3.3, 6.67, 7, 10, 25.5, 66.6, 67, 100, 500]:
        width = recognition.batch_width([ratio], spec, multiple)
        assert lo <= width <= hi, (ratio, width, lo, hi)


def test_tensorrt_is_off_by_default_and_switched_on_by_the_flag(repository, tmp_path, capsys):
    for name in MODELS:
        assert "tensorrt" not in _accelerators(parse((repository / name / "config.pbtxt").read_text()))
    copy = tmp_path / "repo"
    for name in ("ppocrv6_small_det", "ppocrv6_small_rec"):
        (copy / name / "1").mkdir(parents=True)
        (copy / name / "1" / "model.onnx").symlink_to(repository / name / "1" / "model.onnx")
        shutil.copy(repository / name / "inference.yml", copy / name)
        shutil.copy(repository / name / "config.pbtxt", copy / name)
        shutil.copytree(repository / name / "configs", copy / name / "configs")
    args = ["--repository", str(copy), "--models", "ppocrv6_small_det", "ppocrv6_small_rec"]
    assert tc.main(args + ["--check"]) == 0  # the committed configs, unchanged
    assert tc.main(args + ["--tensorrt", "--check"]) == 1  # would change: nothing written
    assert "tensorrt" not in _accelerators(parse((copy / "ppocrv6_small_rec" / "config.pbtxt").read_text()))
    assert tc.main(args + ["--tensorrt", "--det-max-side", "1600"]) == 0
    capsys.readouterr()
    rec = parse((copy / "ppocrv6_small_rec" / "config.pbtxt").read_text())
    det = parse((copy / "ppocrv6_small_det" / "config.pbtxt").read_text())
    rec_prof = check_profile(rec, "rec", 320, _yml(copy, "ppocrv6_small_rec"))
    det_prof = check_profile(det, "det", 0, _yml(copy, "ppocrv6_small_det"), det_max_side=1600)
    rec_axes = _image_axes(list(rec.input[0].dims))
    assert rec_axes is not None and rec_prof["max"]["x"][rec_axes[2]] == 3200
    det_axes = _image_axes(list(det.input[0].dims))
    assert det_axes is not None and det_prof["max"]["x"][det_axes[1]] == det_prof["max"]["x"][det_axes[2]] == 1600
    assert tc.main(args + ["--tensorrt", "--det-max-side", "1600", "--check"]) == 0


def _yml(repo: Path, name: str) -> dict:
    import yaml

    return yaml.safe_load((repo / name / "inference.yml").read_text(encoding="utf-8"))


def test_profile_refuses_ranges_that_do_not_fit_the_model():
    chw = [tc.TensorDecl("x", "TYPE_FP32", (3, 48, -1))]
    yml = {"Hpi": {"backend_configs": {"tensorrt": {"dynamic_shapes": {"x": [[1, 3, 32, 160], [1, 3, 48, 320],
                                                                             [8, 3, 48, 3200]]}}}}}
    with pytest.raises(ValueError, match="fixed at 48"):
        tc.trt_profile("rec", chw, yml, 32, (8,), 320)
    with pytest.raises(ValueError, match="no TensorRT shape range"):
        tc.trt_profile("rec", chw, {}, 32, (8,), 320)
    ok = tc.trt_profile("rec", chw, _fix(yml), 32, (8, 16), 320)
    assert (ok.min["x"], ok.opt["x"], ok.max["x"]) == ((1, 3, 48, 320), (8, 3, 48, 320), (32, 3, 48, 3200))
    assert ok.text("min") == "x:1x3x48x320"
    with pytest.raises(ValueError):
        tc.TensorRTOptions(precision_mode="FP8")


def _fix(yml: dict) -> dict:
    shapes = yml["Hpi"]["backend_configs"]["tensorrt"]["dynamic_shapes"]["x"]
    return {"Hpi": {"backend_configs": {"tensorrt": {"dynamic_shapes": {"x": [[s[0], 3, 48, s[3]] for s in shapes]}}}}}


# --- GPU nodes: configs/gpu.pbtxt ------------------------------------------------------------

GPU_FOLDERS = sorted(n for n in tc.repository_kinds() if not n.endswith(tc.CPU_ONLY_SUFFIX))


def test_every_folder_but_the_cpu_only_ones_has_a_gpu_config(repository):
    kinds = tc.repository_kinds()
    for name in kinds:
        present = (repository / name / "configs" / "gpu.pbtxt").exists()
        assert present == (name in GPU_FOLDERS), name
    assert "ppocrv6_small_det_int8" in kinds and "ppocrv6_small_rec_fp16" in GPU_FOLDERS


@pytest.mark.parametrize("name", GPU_FOLDERS)
def test_gpu_config_is_kind_gpu_with_the_services_batch_sizes_and_every_shape_warmed(repository, name):
    """KIND_GPU (no silent CPU fallback), batch sizes = the service's bucket batch sizes, and one
    warm-up request per input shape the service can send (Pipeline.input_shapes with buckets on)."""
    from preprocess_service.pipeline import Pipeline

    kind = tc.repository_kinds()[name]
    cfg = parse((repository / name / "configs" / "gpu.pbtxt").read_text())
    assert cfg.name == name
    assert [g.kind for g in cfg.instance_group] == [PB.ModelInstanceGroup.KIND_GPU]
    role = {"det": {"det_model": name}, "rec": {"rec_model": name},
            "cls": {"cls_model": name, "use_textline_orientation": True}}[kind]
    settings = Settings(api_tokens="unit-test-token-0123456789", shape_buckets="on",  # type: ignore[arg-type]
                        model_set="ppocrv6_small", **role)
    sizes = settings.det_batch_sizes if kind == "det" else settings.rec_batch_sizes
    assert list(cfg.dynamic_batching.preferred_batch_size) == sizes and cfg.max_batch_size == max(sizes)
    warmed = sorted([w.batch_size, *w.inputs[cfg.input[0].name].dims] for w in cfg.model_warmup)
    pipe = asyncio.run(Pipeline.create(settings, create_backend(settings)))
    assert warmed == sorted(pipe.input_shapes()[name])
    assert _accelerators(cfg)["cuda"]["cudnn_conv_algo_search"] == "HEURISTIC"


def test_gpu_config_tensorrt_profile_spans_the_buckets(repository):
    opts = tc.ConfigOptions(tensorrt=tc.TensorRTOptions())
    folder = repository / "ppocrv6_small_det"
    cfg = parse(tc.render_gpu_folder(folder, "det", opts))
    trt = _accelerators(cfg)["tensorrt"]
    assert _shape_list(trt["trt_profile_max_shapes"])["x"] == (2, 960, 960, 3)
    rec = parse(tc.render_gpu_folder(repository / "ppocrv6_small_rec", "rec", opts))
    hi = _shape_list(_accelerators(rec)["tensorrt"]["trt_profile_max_shapes"])["x"]
    assert hi[0] == 16 and hi[2] >= 3200
