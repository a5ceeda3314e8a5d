"""The one small interface every inference backend implements.

Backends run tensor batches and nothing else: they know no images, boxes or text, so the
pre/post-processing shared by all backends cannot drift apart.
"""

from __future__ import annotations

import abc
import time
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from ..errors import DeadlineExceeded

# The request's deadline, as a time.monotonic() value (None: no deadline but the backend's own
# per-call timeout). Set by whoever starts a request's work, read by every backend's run(): a
# run whose deadline has passed is not started (503 deadline_exceeded), and Triton gets the time
# left as the request's queue timeout, so work nobody waits for any more is never run. Tasks
# copy it when they are created: set it before creating the request's task.
request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)
# Which page a model call belongs to (any object; set by the pipeline for each page it reads):
# a cross-request batcher merges calls of different pages only, so that one page's own batches
# keep running side by side.
call_origin: ContextVar[object | None] = ContextVar("call_origin", default=None)


def check_deadline(deadline: float | None, model: str) -> None:
    """Raise ``DeadlineExceeded`` when ``deadline`` (a ``request_deadline`` value) has passed:
    an in-process backend checks before queueing a run and again when a thread takes it."""
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded(f"the request's deadline passed before model {model} ran")


@dataclass(frozen=True)
class ModelIO:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class InferenceBackend(abc.ABC):
    name: str
    remote: bool = False  # models served by another process (Triton): the API starts without them

    @abc.abstractmethod
    async def load(self, models: list[str], required: bool = True) -> list[str]:
        """Make the named repository models available (open sessions / check the server).

        Required models are waited for (bounded) and their absence is an error; optional ones
        are taken only if available now. Returns the models that are loaded."""

    @abc.abstractmethod
    def io(self, model: str) -> ModelIO:
        """Input and output tensor names of a loaded model, as the model declares them."""

    @abc.abstractmethod
    async def run(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run one batch and return the requested outputs (default: all). Never blocks the event loop.

        Honours ``request_deadline``: past it, raises ``DeadlineExceeded`` without running."""

    @abc.abstractmethod
    async def ready(self) -> bool:
        """True when every loaded model can serve requests now."""

    @abc.abstractmethod
    def describe(self) -> dict[str, str]:
        """The execution provider (or server) each loaded model really runs on."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions, connections and threads."""
