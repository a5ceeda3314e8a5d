"""PaddlePaddle -> ONNX export: small Paddle models built here, exported, checked against Paddle.

The models are built and saved inside the test with PaddlePaddle (paddle.jit.save writes
inference.json + inference.pdiparams, as PaddleOCR 3 does), each with a PaddleX-style
inference.yml: a convolutional net with a detection-like [N,1,H,W] sigmoid output and one with
a CTC-like [N,T,C] softmax output. Then the real exporter (paddle2onnx), the real parity check
(Paddle inference vs onnxruntime), and the service's own model loader and pipeline.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

CHARS = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]  # + blank + space = 12 classes


def _det_net(paddle):
    class Det(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.c1 = paddle.nn.Conv2D(3, 8, 3, padding=1)
            self.c2 = paddle.nn.Conv2D(8, 1, 3, padding=1)

        def forward(self, x):
            return paddle.nn.functional.sigmoid(self.c2(paddle.nn.functional.relu(self.c1(x))))

    return Det()


def _rec_net(paddle, classes: int):
    class Rec(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.c1 = paddle.nn.Conv2D(3, 16, 3, stride=2, padding=1)
            self.c2 = paddle.nn.Conv2D(16, 32, 3, stride=2, padding=1)
            self.fc = paddle.nn.Linear(32, classes)

        def forward(self, x):
            y = paddle.nn.functional.relu(self.c2(paddle.nn.functional.relu(self.c1(x))))
            y = y.mean(axis=2).transpose([0, 2, 1])  # N, T=W/4, 32
            return paddle.nn.functional.softmax(self.fc(y), axis=-1)

    return Rec()


@pytest.fixture(scope="module")
def paddle_models(tmp_path_factory):
    import paddle  # the `export` extra, installed by `make test`
    from paddle.static import InputSpec

    root = tmp_path_factory.mktemp("paddle")
    paddle.seed(1234)
    det, rec = _det_net(paddle), _rec_net(paddle, len(CHARS) + 2)
    for net, name, spec in ((det, "tiny_det", [None, 3, None, None]), (rec, "tiny_rec", [None, 3, 48, None])):
        net.eval()
        paddle.jit.save(net, str(root / name / "inference"), input_spec=[InputSpec(spec, "float32", "x")])
    (root / "tiny_det" / "inference.yml").write_text(yaml.safe_dump({
        "Global": {"model_name": "tiny_det"},
        "PreProcess": {"transform_ops": [{"DetResizeForTest": None}, {"NormalizeImage": {
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": "1./255.", "order": "hwc"}}]},
        "PostProcess": {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.5, "unclip_ratio": 1.5, "max_candidates": 100},
    }))
    (root / "tiny_rec" / "inference.yml").write_text(yaml.safe_dump({
        "Global": {"model_name": "tiny_rec"},
        "PreProcess": {"transform_ops": [{"RecResizeImg": {"image_shape": [3, 48, 320]}}]},
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": CHARS},
    }))
    return root


@pytest.fixture(scope="module")
def exported(paddle_models, tmp_path_factory):
    from export_scripts.paddle_to_onnx import export_one

    repo = tmp_path_factory.mktemp("repo")
    reports = [export_one(n, paddle_models / n, repo, opset=14, tolerance=1e-4) for n in ("tiny_det", "tiny_rec")]
    return repo, reports


def test_parity_report_under_tolerance(exported, capsys):
    from export_scripts.paddle_to_onnx import print_report

    _, reports = exported
    for r in reports:
        assert r.passed and 0.0 <= r.max_abs_diff <= 1e-4, r
        assert len(r.shapes) >= 2
    print_report(reports)
    out = capsys.readouterr().out
    assert "tiny_det" in out and "tiny_rec" in out and "max abs diff" in out


def test_layout_dynamic_dims_and_config(exported):
    import onnxruntime as ort

    repo, _ = exported
    for name in ("tiny_det", "tiny_rec"):
        folder = repo / name
        assert (folder / "1" / "model.onnx").exists() and (folder / "inference.yml").exists()
        cfg = (folder / "config.pbtxt").read_text()
        assert f'name: "{name}"' in cfg and 'backend: "onnxruntime"' in cfg
    det_session = ort.InferenceSession(str(repo / "tiny_det" / "1" / "model.onnx"))
    det = det_session.get_inputs()[0]
    rec = ort.InferenceSession(str(repo / "tiny_rec" / "1" / "model.onnx"))
    # the uint8 input head (input_head.py): NHWC uint8, all spatial dims dynamic
    assert det.type == "tensor(uint8)" and det.shape[3] == 3
    assert not any(isinstance(d, int) for d in det.shape[:3])
    assert [o.name for o in det_session.get_outputs()][1:] == ["prob_u8"]
    shape = rec.get_inputs()[0].shape
    assert shape[1] == 48 and shape[3] == 3 and not isinstance(shape[2], int)
    assert [i.name for i in rec.get_inputs()] == ["x", "valid_width"]
    assert [o.name for o in rec.get_outputs()][1:] == ["ctc_argmax", "ctc_max_prob"]
    assert "dims: [ -1, -1, 3 ]" in (repo / "tiny_det" / "config.pbtxt").read_text()


def test_the_service_loads_and_runs_the_exported_models(exported):
    from preprocess_service.backends import create_backend
    from preprocess_service.model_spec import DetSpec, RecSpec, load_spec
    from preprocess_service.options import RequestOptions
    from preprocess_service.pipeline import Pipeline
    from preprocess_service.settings import Settings
    from tests.conftest import run

    repo, _ = exported
    assert isinstance(load_spec(repo, "tiny_det"), DetSpec)
    rec = load_spec(repo, "tiny_rec")
    assert isinstance(rec, RecSpec) and rec.charset == tuple(CHARS) + (" ",)
    settings = Settings(api_tokens="unused", model_repository=repo, det_model="tiny_det", rec_model="tiny_rec",
                        cls_model="none")
    pipe = run(Pipeline.create(settings, create_backend(settings)))
    run(pipe.warmup())  # includes the dictionary-vs-model class count check
    img = np.full((96, 160, 3), 255, np.uint8)
    img[30:60, 20:140] = 0
    result = run(pipe.read(img, RequestOptions(rec_score_thresh=0.0)))
    assert all(set(ln.text) <= set(CHARS) | {" "} for ln in result.lines)  # untrained nets: any text, valid chars


def test_parity_failure_is_reported(paddle_models, tmp_path):
    from export_scripts.paddle_to_onnx import ExportError, export_one

    with pytest.raises(ExportError, match="over the tolerance"):
        export_one("tiny_rec", paddle_models / "tiny_rec", tmp_path, opset=14, tolerance=0.0 - 1.0)


def test_missing_files_are_clear_errors(tmp_path):
    from export_scripts.paddle_to_onnx import ExportError, export_one

    (tmp_path / "m").mkdir()
    with pytest.raises(ExportError, match="inference.yml is missing"):
        export_one("m", tmp_path / "m", tmp_path / "repo", 14, 1e-4)


def test_fp16_export_is_checked_on_real_images(paddle_models, tmp_path, eval_dir):
    from export_scripts.paddle_to_onnx import export_one

    images = [eval_dir / n for n in ("tjs_simple.png", "pp_word_10.png", "tess_hello_google.png")]
    report = export_one("tiny_det", paddle_models / "tiny_det", tmp_path, 14, 1e-4, fp16=True, images=images)
    half = tmp_path / "tiny_det_fp16" / "1" / "model.onnx"
    import onnx

    graph = onnx.load(str(half)).graph
    tensors = list(graph.initializer) + [a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.t.dims]
    conv_weights = [t for t in tensors if len(t.dims) == 4]
    assert conv_weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in conv_weights)
    assert report.fp16["images"] == 3
    assert report.fp16["max_abs_diff"] < 1e-2
    assert report.fp16["binarized_pixels_changed"] < 0.01
