"""BucketedBackend: batch sizes padded to the allowed ones, and the cross-request batcher, in front of
the real onnxruntime backend with the real recognition model (in-process, no server)."""

from __future__ import annotations

import asyncio
import contextvars
import time

import numpy as np
import pytest

from bench.shapes import ShapeRecorder
from preprocess_service.backends.base import call_origin, request_deadline
from preprocess_service.backends.batching import BucketedBackend, batch_bucket, pad_rows
from preprocess_service.backends.onnxruntime_backend import OnnxRuntimeBackend
from preprocess_service.errors import DeadlineExceeded

REC = "ppocrv6_small_rec"
OUT = ["ctc_argmax", "ctc_max_prob"]


def _rows(n: int, width: int = 320, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (n, 48, width, 3), dtype=np.uint8)
    return {"x": x, "valid_width": np.full((n, 1), width, dtype=np.int64)}


async def _stack(repository, sizes=(1, 2, 4, 16), delay_us=0):
    inner = OnnxRuntimeBackend(repository, ["CPUExecutionProvider"], intra_op_threads=1, workers=2)
    recorder = ShapeRecorder(inner)
    backend = BucketedBackend(recorder, {REC: sizes}, delay_us)
    await backend.load([REC])
    return inner, recorder, backend


def _in(ctx_origin, coro_fn, *args):
    """Run ``coro_fn(*args)`` as a task with its own call_origin (as the pipeline sets per page)."""
    ctx = contextvars.copy_context()
    ctx.run(call_origin.set, ctx_origin)
    return asyncio.get_running_loop().create_task(coro_fn(*args), context=ctx)


def test_batch_bucket_and_pad_rows():
    assert [batch_bucket(n, (1, 2, 4, 16)) for n in (1, 2, 3, 5, 16, 17)] == [1, 2, 4, 16, 16, 17]
    padded = pad_rows(_rows(3), 3, 4)
    assert padded["x"].shape == (4, 48, 320, 3) and not padded["x"][3].any() and padded["valid_width"][3, 0] == 0


def test_rows_are_padded_to_a_batch_size_and_the_padding_dropped(repository):
    async def go():
        inner, recorder, backend = await _stack(repository)
        direct = await inner.run(REC, _rows(3), OUT)
        got = await backend.run(REC, _rows(3), OUT)
        big = await backend.run(REC, _rows(20, seed=1), OUT)  # more than the largest size: in pieces
        await backend.close()
        return direct, got, big, recorder.shapes[REC]

    direct, got, big, seen = asyncio.run(go())
    assert got["ctc_argmax"].shape == direct["ctc_argmax"].shape == (3, 40)
    assert np.array_equal(got["ctc_argmax"], direct["ctc_argmax"])
    np.testing.assert_allclose(got["ctc_max_prob"], direct["ctc_max_prob"], atol=1e-5)
    assert big["ctc_argmax"].shape[0] == 20
    assert {s[0] for s in seen} <= {1, 2, 4, 16}, seen  # the model saw only allowed batch sizes


def test_calls_of_different_pages_are_merged_into_one_run(repository):
    async def go():
        inner, recorder, backend = await _stack(repository, delay_us=200_000)
        alone = [await inner.run(REC, _rows(2, seed=s), OUT) for s in (1, 2)]
        recorder.shapes.clear()
        a = _in(object(), backend.run, REC, _rows(2, seed=1), OUT)
        b = _in(object(), backend.run, REC, _rows(2, seed=2), OUT)
        res = await asyncio.gather(a, b)
        merged = backend.merged_runs
        await backend.close()
        return alone, res, merged, recorder.shapes[REC]

    alone, res, merged, seen = asyncio.run(go())
    assert merged == 1 and seen == {(4, 48, 320, 3)}, (merged, seen)
    for mine, solo in zip(res, alone):
        assert np.array_equal(mine["ctc_argmax"], solo["ctc_argmax"])


def test_one_pages_own_calls_are_never_merged_and_do_not_wait(repository):
    async def go():
        _, recorder, backend = await _stack(repository, delay_us=2_000_000)  # 2 s: a wait would show
        page = object()
        t0 = time.monotonic()
        await asyncio.gather(_in(page, backend.run, REC, _rows(2, seed=1), OUT),
                             _in(page, backend.run, REC, _rows(2, seed=2), OUT))
        elapsed = time.monotonic() - t0
        merged = backend.merged_runs
        await backend.close()
        return merged, elapsed, recorder.shapes[REC]

    merged, elapsed, seen = asyncio.run(go())
    assert merged == 0 and seen == {(2, 48, 320, 3)}
    # the second call of the page flushed the queue: the 2 s delay was not waited (margin: 1.5 s)
    assert elapsed < 1.5, elapsed


def test_a_call_whose_deadline_passes_while_it_waits_is_refused_and_the_others_run(repository):
    async def go():
        _, recorder, backend = await _stack(repository, delay_us=300_000)

        async def with_deadline(deadline, seed):
            request_deadline.set(deadline)
            return await backend.run(REC, _rows(1, seed=seed), OUT)

        late = _in(object(), with_deadline, time.monotonic() + 0.05, 1)
        fine = _in(object(), with_deadline, time.monotonic() + 60, 2)
        res = await asyncio.gather(late, fine, return_exceptions=True)
        await backend.close()
        return res, recorder.shapes.get(REC, set())

    (late, fine), seen = asyncio.run(go())
    assert isinstance(late, DeadlineExceeded)
    assert fine["ctc_argmax"].shape[0] == 1 and seen == {(1, 48, 320, 3)}  # ran alone, unpadded


def test_a_cancelled_caller_leaves_the_batch_to_the_others(repository):
    async def go():
        _, recorder, backend = await _stack(repository, delay_us=200_000)
        gone = _in(object(), backend.run, REC, _rows(1, seed=1), OUT)
        stays = _in(object(), backend.run, REC, _rows(1, seed=2), OUT)
        await asyncio.sleep(0.01)
        gone.cancel()
        res = await stays
        await backend.close()
        return gone.cancelled(), res, recorder.shapes[REC]

    cancelled, res, seen = asyncio.run(go())
    assert cancelled and res["ctc_argmax"].shape[0] == 1 and seen == {(1, 48, 320, 3)}


@pytest.mark.parametrize("delay", [0, 2000])
def test_the_pipeline_reads_the_same_through_the_batcher(repository, eval_dir, delay):
    """Four pages at once through buckets (and the batcher): the same text as one by one."""
    from bench.dataset import load
    from bench.shapes import read_all
    from preprocess_service.settings import Settings

    items = [it for it in load(eval_dir, labels=True) if it.name in
             ("tess_phototest.png", "label_m.png", "pp_en_word_1.png", "ic15_img_1.jpg")]
    s = Settings(api_tokens="unit-test-token-0123456789", shape_buckets="on",  # type: ignore[arg-type]
                 batch_delay_us=delay)
    one = read_all(s, items, concurrency=1)
    four = read_all(s, items, concurrency=4)
    assert one.texts == four.texts
    for role, seen in four.shapes.items():
        allowed = {1, 2} if role == "det" else {1, 2, 4, 16}
        assert {s[0] for s in seen} <= allowed, (role, seen)
