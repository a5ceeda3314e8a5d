"""documents.render_pdf from many threads at once: pdfium is not thread-safe (not even across
documents), so every pdfium call must be made under documents.PDFIUM_LOCK, one at a time."""

from __future__ import annotations

import ctypes
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from preprocess_service import documents

THREADS = 8
DOCS = 16
BIG = 10**9


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


@pytest.fixture()
def pdfium_calls(monkeypatch):
    """Every pdfium C function, wrapped: each call records whether PDFIUM_LOCK was held and how
    many pdfium calls were in flight at that moment (any thread). The real functions still run."""
    import pypdfium2.raw as raw

    state = {"calls": 0, "unlocked": 0, "in_flight": 0, "max_in_flight": 0}
    guard = threading.Lock()

    def wrap(name, fn):
        def call(*args):
            with guard:
                state["calls"] += 1
                state["unlocked"] += 0 if documents.PDFIUM_LOCK.locked() else 1
                state["in_flight"] += 1
                state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
            try:
                time.sleep(0.0005)  # widen the window an unserialised caller would overlap in
                return fn(*args)
            finally:
                with guard:
                    state["in_flight"] -= 1
        call.__name__ = name
        return call

    for name in dir(raw):
        fn = getattr(raw, name)
        if isinstance(fn, ctypes._CFuncPtr):
            monkeypatch.setattr(raw, name, wrap(name, fn))
    return state


def test_many_threads_render_correctly_and_never_overlap_in_pdfium(pdfium_calls):
    pdfs = {seed: _pdf(seed, 1 + seed % 3) for seed in range(DOCS)}
    start = threading.Barrier(THREADS)

    def work(seed):
        if seed < THREADS:
            start.wait(timeout=30)  # the first wave starts together
        return seed, documents.load_pages(pdfs[seed], "auto", max_pages=5, max_pixels=BIG)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, [s for _ in range(2) for s in pdfs]))  # each document twice

    assert len(results) == 2 * DOCS
    for seed, (kind, pages) in results:
        assert kind == "pdf" and len(pages) == 1 + seed % 3
        for p, bgr in enumerate(pages):
            _check_page(seed, p, bgr)
    assert pdfium_calls["calls"] > 2 * DOCS * 5  # open, count, page, size, render, closes...
    assert pdfium_calls["unlocked"] == 0, "pdfium was called without PDFIUM_LOCK held"
    assert pdfium_calls["max_in_flight"] == 1, "two pdfium calls ran at the same time"


def test_errors_release_the_lock_and_call_pdfium_only_under_it(pdfium_calls):
    from preprocess_service.errors import CorruptImage, ImageTooLarge, PayloadTooLarge

    def attempt(case):
        kind, data, kw = case
        try:
            documents.render_pdf(data, **kw)
        except (CorruptImage, ImageTooLarge, PayloadTooLarge) as exc:
            return type(exc)
        return None

    cases = [("corrupt", b"%PDF-1.4\n garbage", {"max_pages": 5, "max_pixels": BIG}),
             ("pages", _pdf(1, 3), {"max_pages": 2, "max_pixels": BIG}),
             ("pixels", _pdf(2, 2), {"max_pages": 5, "max_pixels": 1000})] * 8
    with ThreadPoolExecutor(THREADS) as pool:
        got = list(pool.map(attempt, cases))
    assert got == [CorruptImage, PayloadTooLarge, ImageTooLarge] * 8
    assert not documents.PDFIUM_LOCK.locked()
    assert pdfium_calls["calls"] > 0 and pdfium_calls["unlocked"] == 0 and pdfium_calls["max_in_flight"] == 1
    # and the lock is free again: a good document still renders
    kind, pages = documents.load_pages(_pdf(3, 1), "pdf", max_pages=5, max_pixels=BIG)
    _check_page(3, 0, pages[0])
