"""The static INT8 models of `make int8` (export_scripts/quantize.py): calibrated on a rendered set
that shares nothing with the evaluation set, rebuilt byte for byte from the committed ranges,
served like the float models, and held to the adoption rule's CER gate against fp32."""

from __future__ import annotations

import json

import pytest

from evaluation import calibration
from evaluation.scoring import load_items
from export_scripts import quantize, triton_config
from export_scripts.fetch_models import sha256_file
from export_scripts.quantize import TARGETS, adoption
from preprocess_service.model_spec import load_spec
from tests.conftest import ROOT

DET, REC = "ppocrv6_small_det_int8", "ppocrv6_small_rec_int8"
WHEELS = ROOT / ".cache" / "wheels"


@pytest.fixture(scope="module")
def int8_repository(repository):
    """model_repository with the int8 folders (`make test` runs `make int8` first; built here
    from the committed ranges when missing)."""
    quantize.generate(repository, sorted(TARGETS), WHEELS)
    return repository


def test_calibration_set_is_not_the_evaluation_set_nor_the_labels(eval_dir):
    from bench.dataset import LABELS

    rendered = {t.strip() for t in calibration.lines_text()}
    assert len(rendered) > 300
    evaluation = {g.strip() for it in load_items(eval_dir) for g in it.gt_lines}
    labels = {line for _size, lines in LABELS.values() for line in lines}
    assert not rendered & evaluation
    assert not rendered & labels
    assert not set(calibration._WORDS) & set(" ".join(labels).split())  # not even a label word


def test_calibration_set_renders_as_when_the_ranges_were_measured():
    """The set is deterministic, and renders here exactly as it did for the committed ranges
    (so `python -m export_scripts.quantize --calibrate` measures it afresh from the same pixels)."""
    digest = calibration.digest()
    assert digest == calibration.digest()
    for target in TARGETS.values():
        doc = json.loads(quantize.ranges_path(target).read_text(encoding="utf-8"))
        assert doc["calibration_set_sha256"] == digest, target.name


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_int8_folders_verify_against_their_pinned_sha256(int8_repository, name):
    target = TARGETS[name]
    folder = int8_repository / name
    assert target.served_sha256, "pin the sha256 printed by `python -m export_scripts.quantize`"
    assert sha256_file(folder / "1" / "model.onnx") == target.served_sha256
    assert (folder / "inference.yml").read_bytes() == (int8_repository / target.source / "inference.yml").read_bytes()
    import yaml

    yml = yaml.safe_load((folder / "inference.yml").read_text(encoding="utf-8"))
    assert (folder / "config.pbtxt").read_text() == triton_config.render_for_model(name, target.kind, folder / "1" / "model.onnx", yml)
    assert quantize.is_complete(target, int8_repository)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_rebuilt_from_the_committed_ranges_byte_for_byte(tmp_path, repository, name):
    """The quantisation is deterministic: the published model + the committed ranges give the
    pinned bytes again (in a fresh repository)."""
    import shutil

    target = TARGETS[name]
    (tmp_path / target.source).mkdir()
    shutil.copy(repository / target.source / "inference.yml", tmp_path / target.source / "inference.yml")
    assert quantize.generate(tmp_path, [name], WHEELS) == {name: target.served_sha256}
    assert quantize.generate(tmp_path, [name], WHEELS) == {}  # present and verified: nothing to do
    model = tmp_path / name / "1" / "model.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    assert not quantize.is_complete(target, tmp_path)  # a tampered file is not taken as built
    ranges = json.loads(quantize.ranges_path(target).read_text(encoding="utf-8"))
    assert ranges["method"]["method"] == target.recipe.method


def test_the_int8_models_are_served_like_the_others(int8_repository):
    """Same heads (uint8 input, prob_u8, greedy CTC) and quantised inside: QDQ nodes, int8 weights."""
    import collections

    import onnx

    for name in (DET, REC):
        model = onnx.load(str(int8_repository / name / "1" / "model.onnx"))
        ops = collections.Counter(n.op_type for n in model.graph.node)
        assert ops["QuantizeLinear"] > 50 and ops["DequantizeLinear"] > 100, ops
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    pipe = quantize.make_pipeline(int8_repository, det_model=DET, rec_model=REC)  # warmed up
    assert pipe.model_names == {"det": DET, "rec": REC, "cls": "ppocr_textline_cls"}
    assert pipe._has_uint8_head(DET) and pipe._has_uint8_head(REC)
    assert load_spec(int8_repository, DET).thresh == load_spec(int8_repository, "ppocrv6_small_det").thresh


def test_the_adoption_rule():
    ok = adoption(0.0124, 0.0711, 0.0124 + quantize.MAX_OVERALL_CER_RISE, 0.0711 + quantize.MAX_MEAN_CER_RISE, True)
    assert ok.adoptable and not ok.reasons
    assert adoption(0.0124, 0.0711, 0.0100, 0.0600, True).adoptable  # better is fine
    worse = adoption(0.0124, 0.0711, 0.0145, 0.0711, True)
    assert not worse.adoptable and "overall CER" in worse.reasons[0]
    assert not adoption(0.0124, 0.0711, 0.0124, 0.0762, True).adoptable
    labels = adoption(0.0124, 0.0711, 0.0124, 0.0711, False)
    assert not labels.adoptable and "label" in labels.reasons[0]


@pytest.mark.slow
def test_cer_gate_on_the_evaluation_set(int8_repository, eval_dir):
    """The int8 pipeline (detection and recognition) against fp32 on evaluation/data, by
    evaluation/scoring.py, and the rendered labels. Whatever the figures, the gate's verdict must
    be the one docs/artifacts/int8.json records: adoptable variants stay within the thresholds,
    and a variant recorded as not adoptable is reported so by the gate."""
    recorded = json.loads(quantize.ARTIFACT.read_text(encoding="utf-8"))["variants"]
    fp32 = quantize.accuracy(quantize.make_pipeline(int8_repository, model_set="ppocrv6_small"), eval_dir)
    both = quantize.accuracy(quantize.make_pipeline(int8_repository, det_model=DET, rec_model=REC), eval_dir)
    verdict = adoption(fp32.overall_cer, fp32.mean_image_cer, both.overall_cer, both.mean_image_cer,
                       quantize.labels_ok(fp32, both))
    print(f"fp32 {fp32.overall_cer:.4f}/{fp32.mean_image_cer:.4f}, int8 {both.overall_cer:.4f}/"
          f"{both.mean_image_cer:.4f}: {verdict}")
    assert verdict.adoptable == recorded["det + rec int8"]["adoptable"], verdict
    if verdict.adoptable:
        assert both.overall_cer <= fp32.overall_cer + quantize.MAX_OVERALL_CER_RISE
        assert both.mean_image_cer <= fp32.mean_image_cer + quantize.MAX_MEAN_CER_RISE
    else:
        assert verdict.reasons
