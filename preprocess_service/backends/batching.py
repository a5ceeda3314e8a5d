"""Batch sizes a GPU can plan for, and batches across requests, in front of any backend.

``BucketedBackend`` wraps an ``InferenceBackend`` and owns the first (batch) dimension of every
call to the models it is given batch sizes for:

- every call's rows are padded up to the smallest allowed batch size (padding rows are zeros;
  their outputs are dropped), so each model sees a few fixed batch dimensions; the other
  dimensions are fixed by the pipeline's shape buckets (detection canvases, recognition widths);
- with ``max_delay_us`` > 0 (the cross-request batcher, for the in-process backends), a call
  waits up to that long for other calls of the same model and shape, from any request, and they
  run as one batch of at most the largest batch size. Each caller's deadline
  (``request_deadline``) is kept: a call whose deadline passes while it waits is answered
  ``DeadlineExceeded`` and left out; the merged run carries the latest deadline of its members.
  Calls of one page (``call_origin``) are never merged with each other: a page's own batches
  keep running side by side, so a request alone pays the delay and nothing more.

It knows tensors only (no images, no roles): the pipeline says which models and which sizes.
Triton batches across requests itself; in front of it only the padding is used.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import DeadlineExceeded
from .base import InferenceBackend, ModelIO, call_origin, request_deadline


def batch_bucket(rows: int, sizes: tuple[int, ...]) -> int:
    """The smallest allowed batch size >= rows (``sizes`` sorted); rows itself beyond the largest."""
    for size in sizes:
        if size >= rows:
            return size
    return rows


def pad_rows(inputs: dict[str, np.ndarray], rows: int, target: int) -> dict[str, np.ndarray]:
    """Every input padded with zero rows from ``rows`` up to ``target``."""
    if target == rows:
        return inputs
    out = {}
    for name, arr in inputs.items():
        pad = np.zeros((target - rows,) + arr.shape[1:], dtype=arr.dtype)
        out[name] = np.concatenate([arr, pad])
    return out


@dataclass
class _Call:
    inputs: dict[str, np.ndarray]
    rows: int
    deadline: float | None
    origin: object | None
    future: asyncio.Future = field(repr=False)

    @property
    def key(self) -> int:
        """Calls with one key are never merged: one page's (or, without an origin, itself)."""
        return id(self.origin) if self.origin is not None else id(self)


@dataclass
class _Queue:
    calls: list[_Call] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.calls)


class BucketedBackend(InferenceBackend):
    def __init__(self, inner: InferenceBackend, batch_sizes: dict[str, tuple[int, ...]], max_delay_us: int = 0):
        self.inner = inner
        self.name = inner.name
        self.remote = inner.remote
        self._sizes = {m: tuple(sorted(set(s))) for m, s in batch_sizes.items()}
        self._delay = max_delay_us / 1e6
        self._queues: dict[tuple, _Queue] = {}
        self._runs: set[asyncio.Task] = set()
        self.merged_runs = 0  # runs that carried calls of more than one caller (tests, benchmarks)

    # --- the interface, passed through ---
    async def load(self, models: list[str], required: bool = True) -> list[str]:
        return await self.inner.load(models, required)

    def io(self, model: str) -> ModelIO:
        return self.inner.io(model)

    async def ready(self) -> bool:
        return await self.inner.ready()

    def describe(self) -> dict[str, str]:
        return self.inner.describe()

    async def close(self) -> None:
        for task in list(self._runs):
            task.cancel()
        await self.inner.close()

    def batch_sizes(self, model: str) -> tuple[int, ...]:
        return self._sizes.get(model, ())

    # --- runs ---
    async def run(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        sizes = self._sizes.get(model)
        if not sizes:
            return await self.inner.run(model, inputs, outputs)
        outputs = list(outputs or self.inner.io(model).outputs)
        rows = next(iter(inputs.values())).shape[0]
        if rows > sizes[-1]:  # more rows than the largest size: in pieces of the largest
            parts = [await self.run(model, {k: v[s:s + sizes[-1]] for k, v in inputs.items()}, outputs)
                     for s in range(0, rows, sizes[-1])]
            return {k: np.concatenate([p[k] for p in parts]) for k in outputs}
        if self._delay <= 0:
            res = await self.inner.run(model, pad_rows(inputs, rows, batch_bucket(rows, sizes)), outputs)
            return {k: v[:rows] for k, v in res.items()}
        return await self._enqueue(model, inputs, rows, outputs)

    async def _enqueue(self, model: str, inputs: dict[str, np.ndarray], rows: int,
                       outputs: list[str]) -> dict[str, np.ndarray]:
        key = (model, tuple(outputs), tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in inputs.items())))
        loop = asyncio.get_running_loop()
        call = _Call(inputs, rows, request_deadline.get(), call_origin.get(), loop.create_future())
        queue = self._queues.setdefault(key, _Queue())
        queue.calls.append(call)
        # full, or a second call of one page (that page's batches are not to wait for each other)
        if queue.rows >= self._sizes[model][-1] or len({c.key for c in queue.calls}) < len(queue.calls):
            self._flush(key)
        elif queue.timer is None:
            queue.timer = loop.call_later(self._delay, self._flush, key)
        return await call.future

    def _flush(self, key: tuple) -> None:
        """Take the queued calls of one shape (up to the largest batch size) and start their run."""
        queue = self._queues.get(key)
        if queue is None:
            return
        if queue.timer is not None:
            queue.timer.cancel()
            queue.timer = None
        model, outputs = key[0], list(key[1])
        limit = self._sizes[model][-1]
        now = time.monotonic()
        taken: list[_Call] = []
        rows = 0
        rest: list[_Call] = []
        origins: set[int] = set()
        for call in queue.calls:
            if call.future.done():  # its caller gave up
                continue
            if call.deadline is not None and now >= call.deadline:
                call.future.set_exception(DeadlineExceeded(f"the request's deadline passed before model {model} ran"))
                continue
            if rows + call.rows <= limit and call.key not in origins:
                taken.append(call)
                rows += call.rows
                origins.add(call.key)
            else:
                rest.append(call)
        queue.calls = rest
        if rest:  # the next batch starts at once: it already waited its turn
            asyncio.get_running_loop().call_soon(self._flush, key)
        else:
            self._queues.pop(key, None)
        if taken:
            task = asyncio.get_running_loop().create_task(self._run_merged(model, outputs, taken, rows))
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)

    async def _run_merged(self, model: str, outputs: list[str], calls: list[_Call], rows: int) -> None:
        deadlines = [c.deadline for c in calls]
        request_deadline.set(None if None in deadlines else max(d for d in deadlines if d is not None))
        names = list(calls[0].inputs)
        merged = {n: np.concatenate([c.inputs[n] for c in calls]) if len(calls) > 1 else calls[0].inputs[n]
                  for n in names}
        if len(calls) > 1:
            self.merged_runs += 1
        try:
            res = await self.inner.run(model, pad_rows(merged, rows, batch_bucket(rows, self._sizes[model])), outputs)
        except BaseException as exc:  # every caller gets the failure (a cancelled run: cancelled callers)
            for c in calls:
                if not c.future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        c.future.cancel()
                    else:
                        c.future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        start = 0
        for c in calls:
            if not c.future.done():
                c.future.set_result({k: v[start:start + c.rows] for k, v in res.items()})
            start += c.rows
