"""PDF pages rendered in worker processes (preprocess_service.pdf_render): correct pages from
many threads at once, pdfium never in the calling process, and a runaway page stopped in time
and in memory with its worker replaced, while other PDFs go on."""

from __future__ import annotations

import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from preprocess_service import documents
from preprocess_service.backends.base import request_deadline
from preprocess_service.errors import (
    CorruptImage,
    DeadlineExceeded,
    DocumentTooComplex,
    ImageTooLarge,
    PayloadTooLarge,
    ShuttingDown,
)
from preprocess_service.pdf_render import PdfWorkers
from tests.e2e.hostile_support import nested_forms_pdf

THREADS = 8
DOCS = 16
BIG = 10**9
SLOW = nested_forms_pdf(depth=3, fanout=14)  # about 3.5 s of rendering on one core, in 60 MiB
HUNGRY = nested_forms_pdf(depth=4)  # its page alone loads into about 140 MB


def _page(seed: int, page: int) -> Image.Image:
    """A 120x90 page of 4 solid colour blocks, different for each (document, page)."""
    rng = np.random.default_rng(seed * 100 + page)
    colours = rng.integers(0, 256, size=(2, 2, 3), dtype=np.uint8)
    return Image.fromarray(np.kron(colours, np.ones((45, 60, 1), dtype=np.uint8)))


def _pdf(seed: int, n_pages: int) -> bytes:
    pages = [_page(seed, p) for p in range(n_pages)]
    buf = io.BytesIO()
    pages[0].save(buf, format="PDF", save_all=True, append_images=pages[1:], resolution=72)
    return buf.getvalue()


def _check_page(seed: int, page: int, bgr: np.ndarray) -> None:
    """The rendering (144 dpi of a 72 dpi image: twice the size) shows the page's own colours."""
    assert bgr.shape == (180, 240, 3) and bgr.dtype == np.uint8 and bgr.flags.c_contiguous
    want = np.asarray(_page(seed, page)).astype(int)
    got = bgr[::2, ::2, ::-1].astype(int)  # back to 120x90, RGB
    assert np.abs(got - want).mean() < 6, (seed, page)


def _pdfium_mapped(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return "pdfium" in f.read()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _background(fn, *args, **kw) -> threading.Thread:
    """``fn`` started in a thread; its outcome (a result or an exception) is not this test's concern."""
    def run():
        try:
            fn(*args, **kw)
        except Exception:  # noqa: BLE001
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.fixture()
def pool():
    p = PdfWorkers(size=2, page_timeout_s=30)
    try:
        yield p
    finally:
        p.close()


def test_many_threads_render_correctly_and_pdfium_stays_out_of_this_process(pool):
    pdfs = {seed: _pdf(seed, 1 + seed % 3) for seed in range(DOCS)}
    start = threading.Barrier(THREADS)

    def work(seed):
        if seed < THREADS:
            start.wait(timeout=30)  # the first wave starts together
        return seed, documents.load_pages(pdfs[seed], "auto", max_pages=5, max_pixels=BIG, pdf=pool)

    with ThreadPoolExecutor(THREADS) as threads:
        results = list(threads.map(work, [s for _ in range(2) for s in pdfs]))  # each document twice

    assert len(results) == 2 * DOCS
    for seed, (kind, pages) in results:
        assert kind == "pdf" and len(pages) == 1 + seed % 3
        for p, bgr in enumerate(pages):
            _check_page(seed, p, bgr)
    assert pool.replaced == 0
    assert len(pool._idle) <= pool.size  # never more workers than the pool's size
    assert not _pdfium_mapped(os.getpid()), "pdfium was loaded into the calling process"
    assert all(_pdfium_mapped(w.proc.pid) for w in pool._idle)


def test_corrupt_and_over_limit_pdfs_are_4xx_and_leave_the_workers_serving(pool):
    def attempt(case):
        data, kw = case
        try:
            documents.render_pdf(data, **kw, pdf=pool)
        except (CorruptImage, ImageTooLarge, PayloadTooLarge) as exc:
            return type(exc)
        return None

    cases = [(b"%PDF-1.4\n garbage", {"max_pages": 5, "max_pixels": BIG}),
             (_pdf(1, 3), {"max_pages": 2, "max_pixels": BIG}),
             (_pdf(2, 2), {"max_pages": 5, "max_pixels": 1000})] * 8
    with ThreadPoolExecutor(THREADS) as threads:
        got = list(threads.map(attempt, cases))
    assert got == [CorruptImage, PayloadTooLarge, ImageTooLarge] * 8
    assert pool.replaced == 0  # a corrupt document is the document's fault, not the worker's
    _check_page(3, 0, documents.render_pdf(_pdf(3, 1), 5, BIG, pdf=pool)[0])


def test_a_page_over_the_time_limit_is_stopped_and_its_worker_replaced():
    pool = PdfWorkers(size=1, page_timeout_s=1.0)
    try:
        doc = documents.probe(SLOW, "pdf", 5, BIG, pdf=pool)
        worker_pid = pool._idle[0].proc.pid
        t0 = time.monotonic()
        with pytest.raises(DocumentTooComplex, match="longer than the 1 s"):
            documents.page_image(doc, 0, BIG, pdf=pool)
        took = time.monotonic() - t0
        assert took < 1.0 + 2.0, took  # the timeout, plus a margin for killing and reaping
        assert pool.replaced == 1 and not _alive(worker_pid)
        _check_page(4, 0, documents.render_pdf(_pdf(4, 1), 5, BIG, pdf=pool)[0])  # a fresh worker
    finally:
        pool.close()


def test_a_page_over_its_memory_allowance_is_stopped_and_its_worker_replaced(pool):
    doc = documents.probe(HUNGRY, "pdf", 5, BIG, pdf=pool)  # sizes come from the page tree: cheap
    assert doc.sizes == ((400, 400),)
    with pytest.raises(DocumentTooComplex, match="more memory"):
        documents.page_image(doc, 0, BIG, pdf=pool)
    assert pool.replaced == 1
    _check_page(5, 0, documents.render_pdf(_pdf(5, 1), 5, BIG, pdf=pool)[0])


def test_a_stalled_pdf_holds_one_worker_and_other_pdfs_go_on():
    pool = PdfWorkers(size=2, page_timeout_s=30)
    try:
        doc = documents.probe(SLOW, "pdf", 5, BIG, pdf=pool)
        stalled = _background(documents.page_image, doc, 0, BIG, pdf=pool)
        results: list[float] = []
        time.sleep(0.3)  # the slow page is in its worker
        for seed in range(4):
            t0 = time.monotonic()
            _check_page(seed, 0, documents.render_pdf(_pdf(seed, 1), 5, BIG, pdf=pool)[0])
            results.append(time.monotonic() - t0)
        assert stalled.is_alive(), "the slow page finished before the others were tried"
        assert max(results) < 2.0, results  # not queued behind the slow page (it takes several seconds)
    finally:
        pool.close()  # kills the slow page's worker too
    stalled.join(10)
    assert not stalled.is_alive()


def test_the_request_deadline_stops_a_render_and_a_wait_for_a_worker():
    pool = PdfWorkers(size=1, page_timeout_s=30)
    try:
        doc = documents.probe(SLOW, "pdf", 5, BIG, pdf=pool)
        token = request_deadline.set(time.monotonic() + 0.8)
        try:
            t0 = time.monotonic()
            with pytest.raises(DeadlineExceeded):
                documents.page_image(doc, 0, BIG, pdf=pool)
            assert time.monotonic() - t0 < 0.8 + 2.0
        finally:
            request_deadline.reset(token)
        assert pool.replaced == 1

        # the only worker busy with a slow page: a second request waits for it until its deadline
        busy = _background(documents.page_image, doc, 0, BIG, pdf=pool)
        time.sleep(0.3)
        token = request_deadline.set(time.monotonic() + 0.5)
        try:
            with pytest.raises(DeadlineExceeded, match="waited for a PDF worker"):
                documents.render_pdf(_pdf(6, 1), 5, BIG, pdf=pool)
        finally:
            request_deadline.reset(token)
    finally:
        pool.close()
    busy.join(10)
    assert not busy.is_alive()


def test_close_stops_every_worker_and_a_render_it_cuts_short_is_a_503():
    pool = PdfWorkers(size=2)
    documents.render_pdf(_pdf(1, 2), 5, BIG, pdf=pool)
    doc = documents.probe(SLOW, "pdf", 5, BIG, pdf=pool)
    outcome: list[BaseException] = []

    def slow():
        try:
            documents.page_image(doc, 0, BIG, pdf=pool)
        except BaseException as exc:  # noqa: BLE001 - what the render ends with is the finding
            outcome.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    pids = [w.proc.pid for w in pool._all]
    assert pids and all(_alive(p) for p in pids)
    pool.close()
    t.join(10)
    assert not any(_alive(p) for p in pids)
    assert len(outcome) == 1 and isinstance(outcome[0], ShuttingDown), outcome
    with pytest.raises(ShuttingDown):
        documents.render_pdf(_pdf(1, 1), 5, BIG, pdf=pool)
