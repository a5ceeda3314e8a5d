"""The service reports the execution provider each model really got, and refuses a silent
fallback from a GPU provider to the CPU. This machine has no GPU, so asking for CUDA is a real
fallback here (the onnxruntime CPU build has no CUDA provider)."""

from __future__ import annotations

import httpx
import pytest

from harness.localserver import LocalServer
from preprocess_service.settings import Settings, available_cores

GPU_FIRST = {"OCR_API_TOKENS": "provider-test-token", "OCR_ORT_PROVIDERS": "CUDAExecutionProvider,CPUExecutionProvider",
             "OCR_MODEL_SET": "ppocrv6_small"}


def test_a_gpu_provider_with_the_cpu_quantised_set_refuses_to_start(tmp_path, repository):
    """No GPU mode loads the INT8 models quantised for CPUs: the service says so and exits."""
    log = tmp_path / "service.log"
    env = {**GPU_FIRST, "OCR_MODEL_SET": "ppocrv6_small_int8", "OCR_ORT_ALLOW_CPU_FALLBACK": "true"}
    with pytest.raises(RuntimeError, match="exited"):
        LocalServer(env, log_path=log).start(timeout=120)
    assert "model set ppocrv6_small_int8 is quantised for CPUs" in log.read_text()


def test_gpu_asked_but_not_there_refuses_to_start_with_a_clear_message(tmp_path, repository):
    log = tmp_path / "service.log"
    with pytest.raises(RuntimeError, match="exited"):
        LocalServer(GPU_FIRST, log_path=log).start(timeout=120)
    text = log.read_text()
    assert "asked for CUDAExecutionProvider but onnxruntime gave CPUExecutionProvider" in text
    assert "OCR_ORT_ALLOW_CPU_FALLBACK" in text
    assert "provider-test-token" not in text


def test_allowed_fallback_is_reported_as_cpu_not_gpu(tmp_path, repository):
    env = {**GPU_FIRST, "OCR_ORT_ALLOW_CPU_FALLBACK": "true"}
    with LocalServer(env, log_path=tmp_path / "service.log") as srv:
        metrics = httpx.get(f"{srv.url}/metrics").text
        shapes = httpx.get(f"{srv.url}/readyz").json()["input_shapes"]
    assert shapes and len(shapes["ppocrv6_small_det"]) == 8  # CUDA asked: buckets on, each warmed at start
    info = [ln for ln in metrics.splitlines() if ln.startswith("ocr_model_info{")]
    assert info and all('execution_provider="CPUExecutionProvider"' in ln for ln in info)
    assert "CUDA" not in "".join(info)
    assert "asked for CUDAExecutionProvider but runs on CPUExecutionProvider" in (tmp_path / "service.log").read_text()


def test_thread_split_follows_the_usable_cores():
    s = Settings(api_tokens=["x"])
    cores = available_cores()
    assert s.inference_workers == min(cores, 4)
    assert s.inference_workers * s.intra_op_threads <= max(cores, s.inference_workers)
    assert Settings(api_tokens=["x"], ort_inference_workers=1).intra_op_threads == cores
    assert Settings(api_tokens=["x"], ort_intra_op_threads=3).intra_op_threads == 3
    assert s.det_intra_op_threads == cores  # one detection run per image uses every core
    assert Settings(api_tokens=["x"], ort_det_intra_op_threads=1).det_intra_op_threads == 1
    assert s.det_busy_intra_op_threads == s.intra_op_threads  # under load: its share, like the others
    assert Settings(api_tokens=["x"], ort_det_busy_intra_op_threads=3).det_busy_intra_op_threads == 3


def test_detection_alone_spreads_over_the_cores_and_shares_them_under_load(repository):
    """The real detection model: a run that starts alone takes the all-core session; one that
    starts while another run is in progress takes the session of the busy thread count, and
    both read the same map. With the busy count equal to the detection count there is one session."""
    import asyncio

    import numpy as np

    from preprocess_service.backends import create_backend

    s = Settings(api_tokens=["x"], ort_det_intra_op_threads=2, ort_det_busy_intra_op_threads=1,
                 ort_inference_workers=2, model_repository=repository)
    det = s.model_names["det"]
    backend = create_backend(s)
    seen: list[int] = []

    async def go():
        await backend.load([det])
        wide, narrow = backend._sessions[det], backend._busy_sessions[det]
        io = backend.io(det)
        page = {io.inputs[0]: np.random.default_rng(0).integers(0, 255, (1, 320, 320, 3), np.uint8)}
        real_session = backend._session

        def spy(model):
            got = real_session(model)
            seen.append(got.get_session_options().intra_op_num_threads)
            return got

        backend._session = spy
        alone = await backend.run(det, page)
        together = await asyncio.gather(backend.run(det, page), backend.run(det, page))
        assert wide is not narrow
        # a run whose caller gave up still counts until its thread is done with it, then not
        big = {io.inputs[0]: np.zeros((1, 1920, 1920, 3), np.uint8)}  # a run of a good part of a second
        cancelled = asyncio.ensure_future(backend.run(det, big))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert backend._in_progress == 1  # its thread still runs it
        for _ in range(500):
            if backend._in_progress == 0:
                break
            await asyncio.sleep(0.01)
        assert backend._in_progress == 0
        return alone, together

    alone, together = asyncio.run(go())
    assert seen[:3] == [2, 2, 1]  # alone: all cores; the second of two at once: its share
    for out in together:
        for name, arr in alone.items():
            np.testing.assert_allclose(out[name], arr, atol=1e-5)
    same = create_backend(Settings(api_tokens=["x"], ort_det_intra_op_threads=1, ort_det_busy_intra_op_threads=1,
                                   model_repository=repository))
    asyncio.run(same.load([det]))
    assert det in same._sessions and not same._busy_sessions


def test_cgroup_cpu_limit_caps_the_cores(monkeypatch, tmp_path):
    """A Kubernetes CPU limit of 1.5 cores on a machine with more CPUs: 2 usable cores, not all."""
    import preprocess_service.settings as settings_mod

    real_path = settings_mod.Path
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    monkeypatch.setattr(settings_mod.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(settings_mod, "Path", lambda p: cpu_max if p == "/sys/fs/cgroup/cpu.max" else real_path(p))
    assert settings_mod.available_cores() == 2
    cpu_max.write_text("max 100000\n")
    assert settings_mod.available_cores() == 16


def test_mmap_threshold_can_be_fixed_on_glibc():
    """OCR_MALLOC_MMAP_THRESHOLD_KIB: RSS stays flat at a speed cost (bench figures in the README)."""
    import platform

    from preprocess_service.memory import fix_mmap_threshold

    if platform.libc_ver()[0] != "glibc":
        pytest.fail("this machine's C library is expected to be glibc")
    assert fix_mmap_threshold(4 * 1024 * 1024) is True
    assert fix_mmap_threshold(128 * 1024) is True  # back to glibc's starting value
