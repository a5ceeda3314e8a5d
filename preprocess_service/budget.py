"""The pod's memory budget: admission by cost in bytes, not by a count of requests.

The budget is what a pod may spend on requests: ``OCR_MEMORY_LIMIT_MIB`` (the container's
limit; the chart sets it from the same value as ``resources.limits.memory``) times
``OCR_MEMORY_BUDGET_FRACTION`` (0.75), less the process's own resident set once the models are
loaded and warmed up. Every request reserves its estimated peak before it may use memory:

- its body, before a byte of it is read (``api.ingress``): ``BODY_FACTOR`` x its length, since
  the raw body, the parsed JSON string and the decoded bytes live at once;
- its pages, before any is decoded or rendered (``OCRService.process``): the largest page's
  decoded pixels, detection input and model workspace (pages are processed one at a time).

A reservation larger than the whole budget is refused at once (413: it can never fit); one that
does not fit now waits, bounded, for others to finish (then 503 with Retry-After).

The per-pixel costs were measured on this project's models with onnxruntime's CPU arena off
(``python -m bench.memory_costs``): detection workspace about 170-300 bytes per input pixel
plus a fixed part, decoding 7-11 bytes per source pixel, 22 with transparency (RGBA, a white
canvas, RGB and BGR copies).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass

from . import metrics
from .errors import ImageTooLarge, MemoryBudgetBusy
from .settings import Settings

MIB = 2**20
BODY_FACTOR = 3  # raw body + JSON string + decoded bytes
# Each constant is at least what `python -m bench.memory_costs` measured (docs/artifacts/
# memory-costs.json; tests/unit/test_budget_costs.py holds them to it).
DECODE_BYTES_PER_PIXEL = 12  # measured 11: the file's pixels, RGB, BGR
DECODE_ALPHA_BYTES_PER_PIXEL = 14  # measured 12: RGBA, its array, BGR composited a band at a time
DECODE_DEEP_BYTES_PER_PIXEL = 24  # measured 17 (16-bit) to 21 (float): the wide array, float32 copy, 8-bit, BGR
# A PDF page is rendered in a worker process (pdf_render): the worker may allocate
# PDF_WORKER_BYTES_PER_PIXEL per page pixel (its 3-byte bitmap and pdfium's own buffers) over
# PDF_WORKER_FIXED_BYTES, and the page arrives in the service as one 3-byte BGR array. A page is
# charged both per pixel; the fixed part is covered by the page cost's max(detection, recognition)
# term (no model runs on the page while it renders, and REC_FIXED_BYTES >= PDF_WORKER_FIXED_BYTES).
# Measured: 6 bytes per pixel at 36 MP (3 in each process), and about 48 MiB fixed in the worker.
PDF_WORKER_BYTES_PER_PIXEL = 5
PDF_WORKER_FIXED_BYTES = 64 * MIB
PDF_RENDER_BYTES_PER_PIXEL = 3 + PDF_WORKER_BYTES_PER_PIXEL
DET_BYTES_PER_PIXEL = 180  # the uint8 NHWC input + the DB network's activations: measured 152 at 8 MP (float32), 84 (INT8)
DET_FIXED_BYTES = 160 * MIB  # with the per-pixel part, covers every measured size (173 MiB at 0.7 MP)
REC_FIXED_BYTES = 64 * MIB  # a recognition batch and its activations
VISUALIZE_BYTES_PER_PIXEL = 6  # the drawn copy and its JPEG
MIN_WORKSPACE_BYTES = 128 * MIB


@dataclass(frozen=True)
class PageCost:
    """Peak bytes of one page: decoding (or rendering) plus detection, or recognition."""

    source_pixels: int
    det_pixels: int
    decode_bytes_per_pixel: int = DECODE_BYTES_PER_PIXEL
    visualize: bool = False

    @property
    def bytes(self) -> int:
        per_px = self.decode_bytes_per_pixel
        held = self.source_pixels * (per_px + (VISUALIZE_BYTES_PER_PIXEL if self.visualize else 0))
        return held + max(DET_FIXED_BYTES + self.det_pixels * DET_BYTES_PER_PIXEL, REC_FIXED_BYTES)


def workspace_bytes(settings: Settings, rss_now: int) -> int:
    """What requests may reserve in this process: its share of the pod's limit x fraction, less
    what it already holds (models loaded and warmed up). Too little to serve is a start-up error."""
    share = int(settings.memory_limit_bytes * settings.memory_budget_fraction / settings.workers)
    workspace = share - rss_now
    if workspace < MIN_WORKSPACE_BYTES:
        raise RuntimeError(
            f"memory budget too small: {share // MIB} MiB per process ({settings.memory_limit_bytes // MIB} MiB "
            f"x {settings.memory_budget_fraction:g} / {settings.workers} workers) leaves {workspace // MIB} MiB after "
            f"the {rss_now // MIB} MiB the models use; raise OCR_MEMORY_LIMIT_MIB (the pod's memory limit)")
    return workspace


class MemoryBudget:
    """Bytes reserved by requests in flight, within a capacity; FIFO waiters, bounded waits."""

    def __init__(self, capacity_bytes: int):
        self._capacity = 0
        self._in_use = 0
        self.capacity = capacity_bytes
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def capacity(self) -> int:
        return self._capacity

    @capacity.setter
    def capacity(self, nbytes: int) -> None:
        self._capacity = max(0, int(nbytes))
        metrics.MEMORY_BUDGET.labels("capacity").set(self._capacity)

    @property
    def in_use(self) -> int:
        return self._in_use

    @in_use.setter
    def in_use(self, nbytes: int) -> None:
        self._in_use = nbytes
        metrics.MEMORY_BUDGET.labels("reserved").set(nbytes)

    def _fits(self, nbytes: int) -> bool:
        return self.in_use + nbytes <= self.capacity

    def check_possible(self, nbytes: int, what: str) -> None:
        if nbytes > self.capacity:
            raise ImageTooLarge(
                f"{what} needs about {math.ceil(nbytes / MIB)} MiB, more than this server's memory budget of "
                f"{self.capacity // MIB} MiB; send a smaller image or a lower det_limit_side_len")

    def try_reserve(self, nbytes: int) -> bool:
        """Reserve now or not at all (never waits; waiters keep their turn)."""
        if not self._waiters and self._fits(nbytes):
            self.in_use += nbytes
            return True
        return False

    async def reserve(self, nbytes: int, timeout_s: float, what: str = "the request") -> None:
        """Reserve ``nbytes``, waiting at most ``timeout_s`` for room (then 503)."""
        self.check_possible(nbytes, what)
        if self.try_reserve(nbytes):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (nbytes, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            if fut.done() and not fut.cancelled():  # granted just as the wait ended: keep it
                return
            raise MemoryBudgetBusy("the server's memory budget is in use; retry shortly",
                                   retry_after_s=max(1, math.ceil(timeout_s / 2))) from None
        except asyncio.CancelledError:  # the caller went away: give back what was granted
            if fut.done() and not fut.cancelled():
                self.release(nbytes)
            else:
                fut.cancel()
            raise
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
                self._wake()

    def release(self, nbytes: int) -> None:
        self.in_use = max(0, self.in_use - nbytes)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            nbytes, fut = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
                continue
            if not self._fits(nbytes):
                return
            self._waiters.popleft()
            self.in_use += nbytes
            fut.set_result(None)


class BodyHold:
    """A request body's reservation. The gate releases it when the request is answered, unless the
    request's job was abandoned still running (its deadline, a shutdown cut-off): that job holds the
    body until it ends, so the reservation goes with the job (``defer_until``)."""

    def __init__(self, budget: MemoryBudget, nbytes: int):
        self._budget, self._nbytes = budget, nbytes
        self._deferred = False
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._budget.release(self._nbytes)

    def answered(self) -> None:
        """The request was answered: release now, unless an abandoned job still holds the body."""
        if not self._deferred:
            self.release()

    def defer_until(self, task) -> None:
        self._deferred = True
        task.add_done_callback(lambda _: self.release())


# the body reservation of the request being handled (set by the ingress gate, read by admission)
body_hold: ContextVar[BodyHold | None] = ContextVar("body_hold", default=None)
