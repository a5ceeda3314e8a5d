"""The OpenVINO backend (OCR_BACKEND=openvino) on the served models, against onnxruntime: the same
detection maps (uint8, within one step), the same recognition argmax on real crops, the same text
from the whole pipeline, and the interface's contract (device named, deadline honoured, the event
loop never blocked). Real models and images, no mocks."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from evaluation.scoring import load_items
from preprocess_service.backends import create_backend, request_deadline
from preprocess_service.backends.openvino_backend import OpenVinoBackend, OpenVinoOptions
from preprocess_service.errors import DeadlineExceeded
from preprocess_service.imaging import decode_image
from preprocess_service.options import RequestOptions
from preprocess_service.pipeline import CTC_ARGMAX, CTC_MAX_PROB, PROB_U8, Pipeline
from preprocess_service.settings import Settings
from preprocess_service.stages import crop, detection, recognition
from tests.conftest import run

DET, REC, CLS = "ppocrv6_small_det", "ppocrv6_small_rec", "ppocr_textline_cls"
# a mix of shapes and scripts: photos, scans, a receipt, Chinese, English, rotated by EXIF, alpha
PIPELINE_IMAGES = ["tess_phototest.png", "tess_eurotext.png", "ic15_img_1.jpg", "ic15_img_8.jpg", "easyocr_chinese.jpg",
                   "wildreceipt_2.jpeg", "skimage_page.png", "tjs_simple_exif90.jpg", "tjs_cosmic_alpha.png",
                   "dtrb_demo_4.png"]
DET_IMAGES = ["tess_phototest.png", "ic15_img_1.jpg", "easyocr_chinese.jpg", "tess_segmodeimg.png"]
REC_IMAGES = ["tess_eurotext.png", "tess_phototest.png", "ic15_img_8.jpg", "easyocr_chinese.jpg", "wildreceipt_2.jpeg"]


def _pipeline(backend: str, repository) -> Pipeline:
    # parity on the float set: on the INT8 recognition model of the default set OpenVINO runs its own
    # int8 kernels, whose scores differ from onnxruntime's by more than float rounding
    settings = Settings(api_tokens="x", backend=backend, model_repository=repository,  # type: ignore[arg-type]
                        model_set="ppocrv6_small")
    return run(Pipeline.create(settings, create_backend(settings)))


@pytest.fixture(scope="module")
def pipelines(repository) -> dict[str, Pipeline]:
    return {"onnxruntime": _pipeline("onnxruntime", repository), "openvino": _pipeline("openvino", repository)}


@pytest.fixture(scope="module")
def images(eval_dir) -> dict[str, np.ndarray]:
    return {it.name: decode_image(it.image.read_bytes(), 10**8) for it in load_items(eval_dir)}


def test_the_backend_names_its_device_and_the_models_io(pipelines):
    ov, ort = pipelines["openvino"].backend, pipelines["onnxruntime"].backend
    assert isinstance(ov, OpenVinoBackend) and ov.name == "openvino"
    assert ov.describe() == {DET: "openvino:CPU", REC: "openvino:CPU", CLS: "openvino:CPU"}
    for model in (DET, REC, CLS):
        assert ov.io(model) == ort.io(model), model  # the same ONNX file, the same tensor names
    assert pipelines["openvino"]._has_uint8_head(DET) and pipelines["openvino"]._has_uint8_head(REC)
    assert run(ov.ready())


def test_detection_maps_match_onnxruntime(pipelines, images):
    """prob_u8 of the served detection model: equal or one step (1/255) apart, on real pages of
    different shapes (the dynamic input takes every one without re-compiling)."""
    pipe = pipelines["onnxruntime"]
    policy, _ = pipe.stage_params(pipe.options(RequestOptions()))
    shapes = set()
    for name in DET_IMAGES:
        tensor = detection.preprocess(images[name], pipe.det, policy, uint8=True).tensor
        shapes.add(tensor.shape)
        maps = {b: run(p.backend.run(DET, {"x": tensor}, [PROB_U8]))[PROB_U8] for b, p in pipelines.items()}
        a, b = maps["onnxruntime"].astype(int), maps["openvino"].astype(int)
        assert a.shape == b.shape and a.dtype == b.dtype
        assert np.abs(a - b).max() <= 1, name
        assert (a != b).mean() < 0.01, name  # and one step only here and there
    assert len(shapes) == len(DET_IMAGES)


def test_recognition_argmax_matches_onnxruntime_on_real_crops(pipelines, images):
    pipe = pipelines["onnxruntime"]
    policy, params = pipe.stage_params(pipe.options(RequestOptions()))
    crops = []
    for name in REC_IMAGES:
        det_in = detection.preprocess(images[name], pipe.det, policy, uint8=True)
        prob = run(pipe._detect(det_in.tensor))
        crops += crop.crop_all(images[name], pipe._boxes(prob, det_in, params))
    batches = recognition.plan_batches(crops, pipe.rec, 4, uint8=True)
    assert len(crops) >= 30 and len({b.tensor.shape[2] for b in batches}) >= 5  # widths vary
    for batch in batches:
        inputs = {"x": batch.tensor, "valid_width": batch.widths}
        a = run(pipe.backend.run(REC, inputs, [CTC_ARGMAX, CTC_MAX_PROB]))
        b = run(pipelines["openvino"].backend.run(REC, inputs, [CTC_ARGMAX, CTC_MAX_PROB]))
        np.testing.assert_array_equal(a[CTC_ARGMAX], b[CTC_ARGMAX])
        np.testing.assert_allclose(a[CTC_MAX_PROB], b[CTC_MAX_PROB], atol=2e-3)


def test_the_pipeline_reads_the_same_text_as_onnxruntime(pipelines, images):
    lines = 0
    for name in PIPELINE_IMAGES:
        a = run(pipelines["onnxruntime"].read(images[name], RequestOptions()))
        b = run(pipelines["openvino"].read(images[name], RequestOptions()))
        assert [ln.text for ln in b.lines] == [ln.text for ln in a.lines], name
        for x, y in zip(a.lines, b.lines):
            assert abs(x.confidence - y.confidence) < 0.01, (name, x.text)
            assert float(np.abs(x.box - y.box).max()) <= max(images[name].shape[:2]) / 960 + 1, (name, x.text)
        lines += len(a.lines)
    assert lines >= 40


def test_the_request_deadline_is_honoured(pipelines, images):
    """A spent deadline never runs; a run that waited for a busy stream past its deadline is not
    started either; and while a run is busy the event loop keeps turning."""
    backend = pipelines["openvino"].backend
    small = np.full((1, 64, 64, 3), 255, np.uint8)

    async def spent():
        request_deadline.set(time.monotonic() - 0.001)
        with pytest.raises(DeadlineExceeded):
            await backend.run(DET, {"x": small}, [PROB_U8])

    run(spent())

    big = np.ascontiguousarray(np.tile(images["tess_phototest.png"], (4, 3, 1))[None, :1920, :1920])

    async def queued():
        # big pages on every stream (thread) of the model, then a small one that must wait
        busy = [asyncio.ensure_future(backend.run(DET, {"x": big}, [PROB_U8]))
                for _ in range(backend._models[DET].requests)]
        await asyncio.sleep(0)
        request_deadline.set(time.monotonic() + 0.01)
        late = asyncio.ensure_future(backend.run(DET, {"x": small}, [PROB_U8]))
        ticks = 0
        while not all(f.done() for f in busy):
            await asyncio.sleep(0.005)
            ticks += 1
        with pytest.raises(DeadlineExceeded):
            await late
        return (await busy[0])[PROB_U8].shape, ticks

    shape, ticks = run(queued())
    assert shape == (1, 1, 1920, 1920)
    assert ticks >= 3  # the loop ran while OpenVINO worked


def test_settings_become_compile_properties(repository):
    settings = Settings(api_tokens="x", backend="openvino", ov_performance_hint="THROUGHPUT", ov_num_streams=2,
                        ov_inference_threads=2, ov_cache_dir=None, model_set="ppocrv6_small")
    opts = OpenVinoOptions.from_settings(settings)
    assert opts.properties() == {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": 2, "INFERENCE_NUM_THREADS": 2,
                                 "CPU_RUNTIME_CACHE_CAPACITY": 0, "ENABLE_CPU_PINNING": False,
                                 "INFERENCE_PRECISION_HINT": "f32"}
    assert opts.properties(DET)["PERFORMANCE_HINT"] == "LATENCY" and "NUM_STREAMS" not in opts.properties(DET)
    assert OpenVinoOptions.from_settings(Settings(api_tokens="x")).inference_threads == settings.worker_cores
    assert "INFERENCE_PRECISION_HINT" not in OpenVinoOptions(inference_precision="auto").properties()

    backend = OpenVinoBackend(repository, opts)

    async def load():
        return await backend.load([CLS, "no_such_model"], required=False)

    assert run(load()) == [CLS]
    compiled = backend._models[CLS].compiled
    assert int(compiled.get_property("NUM_STREAMS")) == 2
    assert int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) == 2
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert compiled.get_property("ENABLE_CPU_PINNING") is False
    assert backend._models[CLS].requests == 2
    run(backend.close())
