"""The FP16 GPU set (export_scripts/fp16.py): pinned bytes, the same heads as every served model, and
its accuracy against the float set it was converted from, on onnxruntime's CPU provider."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from bench.dataset import load
from bench.shapes import MAX_CER_DELTA, MAX_MEAN_CER_DELTA, read_all
from export_scripts import fp16
from export_scripts.fetch_models import sha256_file
from preprocess_service.model_sets import MODEL_SETS
from preprocess_service.settings import Settings


def test_the_fp16_folders_are_built_and_pinned(repository):
    for name, target in fp16.TARGETS.items():
        assert fp16.is_complete(target, repository), f"{name}: run `make models`"
        assert sha256_file(repository / name / "1" / "model.onnx") == target.served_sha256
    ms = MODEL_SETS["ppocrv6_small_fp16"]
    assert (ms.det, ms.rec) == ("ppocrv6_small_det_fp16", "ppocrv6_small_rec_fp16") and not ms.cpu_only


def test_fp16_keeps_the_served_interface_and_holds_half_weights(repository):
    """uint8 in (and valid_width), float32/uint8 out, exactly as the float model: the service
    sends and reads the same tensors; the weights inside are float16."""
    import onnx

    for name, target in fp16.TARGETS.items():
        half = ort.InferenceSession(str(repository / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        full = ort.InferenceSession(str(repository / target.source / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        sig = [(t.name, t.type) for t in half.get_inputs()], [(t.name, t.type) for t in half.get_outputs()]
        assert sig == ([(t.name, t.type) for t in full.get_inputs()], [(t.name, t.type) for t in full.get_outputs()])
        model = onnx.load(str(repository / name / "1" / "model.onnx"))
        types = {i.data_type for i in model.graph.initializer if len(i.dims) >= 2}
        assert types == {onnx.TensorProto.FLOAT16}, (name, types)


def test_fp16_detection_map_is_close_to_float(repository):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (1, 320, 480, 3), dtype=np.uint8)
    half = ort.InferenceSession(str(repository / "ppocrv6_small_det_fp16" / "1" / "model.onnx"))
    full = ort.InferenceSession(str(repository / "ppocrv6_small_det" / "1" / "model.onnx"))
    a = half.run(["prob_u8"], {"x": x})[0].astype(int)
    b = full.run(["prob_u8"], {"x": x})[0].astype(int)
    assert np.abs(a - b).max() <= 8 and np.mean(np.abs(a - b)) < 0.5


def test_fp16_reads_within_the_accuracy_rule_of_the_float_set(eval_dir):
    """The rule of docs/performance.md, against the float set it came from: CER +0.002, mean
    per-image CER +0.005, and every rendered label the float set reads, read the same."""
    items = load(eval_dir)
    base = read_all(Settings(api_tokens="unit-test-token-0123456789", model_set="ppocrv6_small"), items)  # type: ignore[arg-type]
    half = read_all(Settings(api_tokens="unit-test-token-0123456789", model_set="ppocrv6_small_fp16"), items)  # type: ignore[arg-type]
    assert half.cer <= base.cer + MAX_CER_DELTA, (half.cer, base.cer)
    assert half.mean_image_cer <= base.mean_image_cer + MAX_MEAN_CER_DELTA, (half.mean_image_cer, base.mean_image_cer)
    labels = [k for k in base.texts if k.startswith("label_")]
    assert labels and all(half.texts[k] == base.texts[k] for k in labels)
