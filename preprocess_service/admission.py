"""Backpressure: a bounded number of OCR jobs in flight, a bounded wait, a per-request deadline,
an optional per-token rate limit. Beyond the bounds the answer is immediate (503 or 429 with
Retry-After), never an unbounded queue.

A job that outlives its deadline gets its 503 at the deadline, but keeps its slot until its work
has really stopped (model runs cannot be interrupted), so the in-flight bound is always true.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from . import metrics
from .backends.base import request_deadline
from .budget import MemoryBudget, body_hold
from .errors import DeadlineExceeded, Overloaded, RateLimited, ShuttingDown
from .settings import Settings

T = TypeVar("T")


class TokenBuckets:
    """Per-token token buckets (rate per minute, burst), bounded in memory (LRU of identities)."""

    def __init__(self, per_minute: int, burst: int, max_keys: int = 10_000):
        self.rate = per_minute / 60.0
        self.burst = max(1, burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """0.0 if allowed, else the seconds until a request would be."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class Admission:
    def __init__(self, max_in_flight: int, max_queue: int, queue_timeout_s: float, deadline_s: float,
                 rate_per_minute: int = 0, rate_burst: int = 0):
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.deadline_s = deadline_s
        self._slots = asyncio.Semaphore(max_in_flight)
        self._waiting = 0
        self.in_flight = 0
        self.draining = False
        self._cut_off = asyncio.Event()  # set when a draining server can wait no longer
        self._rates = TokenBuckets(rate_per_minute, rate_burst or max(1, rate_per_minute // 6)) if rate_per_minute else None
        # bytes: sized once the models are loaded (OCRService.create); until then nothing is admitted
        self.budget = MemoryBudget(0)

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission:
        return cls(
            max_in_flight=settings.in_flight_limit,
            max_queue=settings.queue_limit,
            queue_timeout_s=settings.queue_timeout_s,
            deadline_s=settings.request_timeout_s,
            rate_per_minute=settings.rate_limit_per_worker,
            rate_burst=math.ceil(settings.rate_limit_burst / settings.workers) if settings.rate_limit_burst else 0,
        )

    def _retry_after(self) -> int:
        return max(1, math.ceil(self.queue_timeout_s / 2))

    def check_rate(self, identity: str | None) -> None:
        """The token's rate limit: RateLimited (429, Retry-After) when its bucket is empty. Called by
        the ingress gate from the headers, before a byte of the body is read or reserved."""
        if self._rates is not None and identity is not None:
            wait = self._rates.take(identity)
            if wait > 0:
                raise RateLimited("too many requests for this token", retry_after_s=max(1, math.ceil(wait)))

    async def admit(self, job: Callable[[], Awaitable[T]]) -> T:
        """Run ``job`` once a slot is free, within the queue bound and the deadline (the token's
        rate limit was checked at the gate: ``check_rate``)."""
        if self.draining:
            raise ShuttingDown("the server is shutting down; retry on another replica", retry_after_s=1)
        start = time.monotonic()
        if self._slots.locked():
            if self._waiting >= self.max_queue:
                raise Overloaded("the server is at capacity; retry shortly", retry_after_s=self._retry_after())
            self._waiting += 1
            metrics.JOBS_WAITING.inc()
            try:
                await self._wait_for_slot(min(self.queue_timeout_s, self.deadline_s))
            finally:
                self._waiting -= 1
                metrics.JOBS_WAITING.dec()
        else:
            await self._slots.acquire()
        self.in_flight += 1
        metrics.JOBS_IN_FLIGHT.inc()
        # the job's model calls see its deadline (a task copies the context when it is created):
        # Triton gets the time left as each call's timeout, and nothing runs past it
        token = request_deadline.set(start + self.deadline_s)
        try:
            task = asyncio.ensure_future(job())
        finally:
            request_deadline.reset(token)

        def release(_):
            self.in_flight -= 1
            metrics.JOBS_IN_FLIGHT.dec()
            self._slots.release()

        task.add_done_callback(release)
        remaining = self.deadline_s - (time.monotonic() - start)
        cut_off = asyncio.ensure_future(self._cut_off.wait())
        try:
            await asyncio.wait({task, cut_off}, timeout=max(remaining, 0.001), return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut_off.cancel()
        if task.done():
            return task.result()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # consume the late result
        hold = body_hold.get()
        if hold is not None:  # the abandoned job still holds the request's body: so does the budget
            hold.defer_until(task)
        if self._cut_off.is_set():
            raise ShuttingDown("the server shut down before this request finished; retry on another replica",
                               retry_after_s=1)
        raise DeadlineExceeded(f"the request did not finish within its {self.deadline_s:g} s deadline")

    async def _wait_for_slot(self, timeout_s: float) -> None:
        """A slot within ``timeout_s``; Overloaded when none comes, ShuttingDown when a draining
        server cuts its work off first (a queued request gets the same JSON 503 as a running one,
        not the server's own answer when it cancels what is left)."""
        acquire = asyncio.ensure_future(self._slots.acquire())
        cut_off = asyncio.ensure_future(self._cut_off.wait())
        try:
            await asyncio.wait({acquire, cut_off}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut_off.cancel()
            if not acquire.done():
                acquire.cancel()
            got: bool
            try:
                got = bool(await acquire)
            except asyncio.CancelledError:
                got = False
        if got and self._cut_off.is_set():
            self._slots.release()
            got = False
        if not got:
            if self._cut_off.is_set():
                raise ShuttingDown("the server shut down before this request got a slot; retry on another replica",
                                   retry_after_s=1)
            raise Overloaded("the server is at capacity; retry shortly", retry_after_s=self._retry_after())

    def start_draining(self, cut_off_after_s: float) -> None:
        """Refuse new jobs now; answer the jobs still running with 503 ``shutting_down`` after
        ``cut_off_after_s`` (just before the server's graceful shutdown would cancel them)."""
        self.draining = True
        asyncio.get_running_loop().call_later(max(0.0, cut_off_after_s), self._cut_off.set)

    async def cut_off(self) -> None:
        """Returns when a draining server can wait no longer (requests still alive get their 503)."""
        await self._cut_off.wait()

    @property
    def waiting(self) -> int:
        return self._waiting
