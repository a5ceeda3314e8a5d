"""PDF pages rendered where a runaway page can be stopped: a small pool of worker processes.

pdfium is not thread-safe and cannot be interrupted, and a crafted page can make it run for
minutes or allocate gigabytes. Every pdfium call is therefore made in a worker process
(``pdf_worker``), never in the service's own:

- **Time.** A task has a deadline, the page timeout (``OCR_PDF_PAGE_TIMEOUT_S``) or the request's
  own, whichever comes first. Past it the worker is killed: the request gets its 422 (or 503
  ``deadline_exceeded``) and the next PDF a fresh worker.
- **Memory.** A task may allocate what it was charged (``budget.PDF_WORKER_BYTES_PER_PIXEL`` per
  page pixel, plus ``PDF_WORKER_FIXED_BYTES``) over what the worker holds when it starts
  (RLIMIT_DATA, set in the worker); a page that wants more fails there, the worker is replaced.
  A worker that keeps more than ``RECYCLE_OVER_BYTES`` after a task is replaced too.
- **Concurrency.** At most ``OCR_PDF_WORKERS`` PDFs are opened or rendered at once per service
  process; one stalled PDF holds one worker, not every PDF request.

The calls block (they run in the service's worker threads, like decoding); the page arrives as
a BGR array read straight from the worker's pipe into its final buffer.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from .backends.base import request_deadline
from .budget import MIB, PDF_WORKER_BYTES_PER_PIXEL, PDF_WORKER_FIXED_BYTES
from .errors import CorruptImage, DeadlineExceeded, DocumentTooComplex, OCRError, ShuttingDown
from .pdf_worker import HEADER, PAYLOAD, write_message

log = logging.getLogger("ocr.pdf")

RECYCLE_OVER_BYTES = 64 * MIB  # a worker that holds this much more than when it started is replaced
_KEYS = itertools.count(1)


def new_key() -> int:
    """A document's key: which worker has it open."""
    return next(_KEYS)


def _open_task(data: bytes) -> dict:
    """Open a PDF: it may allocate the fixed allowance and four times its own size."""
    return {"op": "open", "allow": PDF_WORKER_FIXED_BYTES + 4 * len(data)}


class _Overrun(Exception):
    """The worker did not answer in time, died, or ran out of its memory allowance."""


class _Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "preprocess_service.pdf_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True,
        )
        self.key: int | None = None  # the document it has open
        self.start_rss: int | None = None

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def send(self, header: dict, payload: bytes = b"") -> None:
        assert self.proc.stdin is not None
        try:
            write_message(self.proc.stdin, header, payload)  # type: ignore[arg-type]
        except (BrokenPipeError, OSError):
            raise _Overrun("the PDF worker exited") from None

    def receive(self, until: float) -> tuple[dict, int]:
        """The answer's header, and the length of the payload that follows it."""
        (size,) = HEADER.unpack(self.read(HEADER.size, until))
        header = json.loads(self.read(size, until))
        (length,) = PAYLOAD.unpack(self.read(PAYLOAD.size, until))
        return header, length

    def read(self, n: int, until: float) -> bytes:
        buf = bytearray(n)
        self.read_into(memoryview(buf), until)
        return bytes(buf)

    def read_into(self, view: memoryview, until: float) -> None:
        """Fill ``view`` from the worker's stdout, waiting at most until ``until`` (monotonic)."""
        stream = self.proc.stdout
        assert stream is not None
        pos = 0
        while pos < len(view):
            left = until - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([stream], [], [], left)
            if not ready:
                raise TimeoutError
            got = stream.readinto(view[pos:])  # type: ignore[attr-defined]
            if not got:
                raise _Overrun("the PDF worker exited")
            pos += got

    def stop(self, kill: bool = False) -> None:
        try:
            if kill:
                self.proc.kill()
            elif self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


@dataclass(frozen=True)
class Opened:
    key: int
    sizes_pt: tuple[tuple[float, float], ...]  # each page's size in points


class PdfWorkers:
    """At most ``size`` worker processes, started when first needed and kept for the next PDF."""

    def __init__(self, size: int = 2, page_timeout_s: float = 15.0):
        self.size = size
        self.page_timeout_s = page_timeout_s
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._running = 0  # workers handed out
        self._cond = threading.Condition()
        self._closed = False
        self.replaced = 0  # workers killed or replaced after an overrun (for tests and logs)

    # --- the two tasks -----------------------------------------------------------------------------

    def open(self, data: bytes) -> Opened:
        """Open a PDF and size its pages (in points), in a worker that keeps it open for rendering."""
        key = new_key()
        answer, _ = self._task(key, data, _open_task(data), what="opening the PDF")
        return Opened(key, tuple((float(w), float(h)) for w, h in answer["sizes"]))

    def render(self, key: int, data: bytes, index: int, scale: float, size: tuple[int, int]) -> np.ndarray:
        """Page ``index`` as a BGR array of ``size`` (width, height, as probed)."""
        allow = PDF_WORKER_FIXED_BYTES + PDF_WORKER_BYTES_PER_PIXEL * size[0] * size[1]
        task = {"op": "render", "index": index, "scale": scale, "allow": allow}
        return self._task(key, data, task, what=f"rendering page {index + 1} of the PDF")[1]

    def forget(self, key: int) -> None:
        """The document is done: an idle worker that has it open lets it go (its bytes with it)."""
        with self._cond:
            held = [w for w in self._idle if w.key == key]
            if not held:
                return
            worker = held[0]
            self._idle.remove(worker)
            self._running += 1
        healthy = False
        try:
            worker.send({"op": "close"})
            worker.receive(time.monotonic() + 5)
            worker.key, healthy = None, True
        except (_Overrun, TimeoutError, OSError):
            pass
        finally:
            self._release(worker, healthy)

    def close(self) -> None:
        """Stops every worker: idle ones at once, busy ones killed (their requests get a 503)."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = self._all - set(idle)
            self._cond.notify_all()
        for w in idle:
            w.stop()
        for w in busy:
            w.proc.kill()

    # --- the pool ----------------------------------------------------------------------------------

    def _task(self, key: int, data: bytes, task: dict, *, what: str):
        deadline = request_deadline.get()
        limit = time.monotonic() + self.page_timeout_s
        until = limit if deadline is None else min(limit, deadline)
        worker = self._acquire(key, deadline)
        healthy = False
        try:
            if task["op"] == "open" or worker.key != key:  # the document goes to this worker first
                worker.key = None
                opened = self._call(worker, _open_task(data), data, until)
                worker.key = key
            answer, result = opened if task["op"] == "open" else self._call(worker, task, b"", until)
            healthy = True
            return answer, result
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(f"the request's deadline passed while {what}") from None
            raise DocumentTooComplex(f"{what} took longer than the {self.page_timeout_s:g} s a page may take") from None
        except _Overrun:
            if self._closed:
                raise ShuttingDown("the server is shutting down; retry on another replica", retry_after_s=1) from None
            raise DocumentTooComplex(f"{what} stopped: it needed more memory than a page of its size may use") from None
        except OCRError:
            healthy = True  # the worker answered: a corrupt document, not a broken worker
            raise
        finally:
            self._release(worker, healthy)

    def _call(self, worker: _Worker, task: dict, payload: bytes, until: float) -> tuple[dict, np.ndarray | None]:
        if worker.start_rss is None:
            worker.start_rss = worker.rss()
        worker.send(task, payload)
        answer, length = worker.receive(until)
        if "error" in answer:
            kind = answer["error"]
            if kind == "memory":
                raise _Overrun("out of memory")
            if length:
                worker.read(length, until)
            if kind == "open":
                raise CorruptImage("the PDF cannot be opened (corrupt, truncated or encrypted)")
            n = int(answer.get("index", 0)) + 1
            if kind == "page":
                raise CorruptImage(f"page {n} of the PDF is missing or broken")
            raise CorruptImage(f"page {n} of the PDF cannot be rendered")
        if task["op"] != "render":
            if length:
                worker.read(length, until)
            return answer, None
        w, h = int(answer["width"]), int(answer["height"])
        if length != w * h * 3:
            raise _Overrun("the PDF worker sent a page of the wrong size")
        image = np.empty((h, w, 3), dtype=np.uint8)
        worker.read_into(memoryview(image.reshape(-1).data), until)
        return answer, image

    def _acquire(self, key: int, deadline: float | None) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise ShuttingDown("the server is shutting down; retry on another replica", retry_after_s=1)
                if self._idle:
                    same = [w for w in self._idle if w.key == key]
                    worker = same[0] if same else self._idle[0]
                    self._idle.remove(worker)
                    self._running += 1
                    return worker
                if self._running < self.size:
                    self._running += 1
                    break
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    raise DeadlineExceeded("the request's deadline passed while it waited for a PDF worker")
                self._cond.wait(wait)
        try:
            worker = _Worker()
            with self._cond:
                self._all.add(worker)
            return worker
        except OSError:
            with self._cond:
                self._running -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if healthy and worker.start_rss is not None and worker.rss() > worker.start_rss + RECYCLE_OVER_BYTES:
            healthy = False
        if not healthy:
            self.replaced += 1
            worker.stop(kill=True)
            log.info("PDF worker %d replaced", worker.proc.pid)
        with self._cond:
            self._running -= 1
            if not healthy or self._closed:
                self._all.discard(worker)
            if healthy and not self._closed:
                self._idle.append(worker)
            elif healthy:
                worker.stop()
            self._cond.notify()
