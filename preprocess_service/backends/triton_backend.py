"""Triton backend: the same tensor batches, run by a Triton Inference Server over HTTP/v2.

``tritonclient.http.aio`` with binary tensor data. Every call has a deadline: the request's
(``base.request_deadline``) when set, capped by the per-call ``timeout_s``. The time left goes to
Triton as the request's ``timeout`` (microseconds; the configs allow the override), so a call
still queued in Triton when its deadline passes is refused there without running, and a full
queue is refused at once. Inference is a pure function of its inputs, so a call that could not
reach the server is retried (bounded, within the deadline); a call that timed out is not (its
deadline is spent). Unavailability, a full queue or a spent deadline become a 503 with
Retry-After for the client, never a hang.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import numpy as np
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from ..errors import BackendError, BackendUnavailable, DeadlineExceeded, Overloaded
from .base import InferenceBackend, ModelIO, request_deadline

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, ConnectionError, OSError)

# Triton's own words (core: dynamic batch scheduler, queue policy) for the two refusals of a
# bounded queue; both come back as HTTP 503 / UNAVAILABLE.
QUEUE_FULL = "Exceeds maximum queue size"
QUEUE_TIMEOUT = "Request timeout expired"
# The client waits this much longer than the timeout it gives Triton, so that Triton's own
# verdict on a queued request (refused, never run) arrives rather than a cut connection: while
# its instances are busy, Triton's dynamic batcher looks at expired requests every 500 ms
# (measured on the local Triton: refusals came 0.5 to 1.0 s after 50 to 500 ms timeouts). The
# client of the service is not kept waiting: admission answers it at the request's deadline.
VERDICT_GRACE_S = 1.0


class TritonBackend(InferenceBackend):
    name = "triton"
    remote = True

    def __init__(self, url: str, timeout_s: float = 30.0, retries: int = 1, startup_timeout_s: float = 300.0):
        self._url = url.removeprefix("http://")
        self._timeout = timeout_s
        self._retries = retries
        self._startup_timeout = startup_timeout_s
        self._client: aioclient.InferenceServerClient | None = None
        self._io: dict[str, ModelIO] = {}
        self._placement: dict[str, str] = {}

    def _get_client(self) -> aioclient.InferenceServerClient:
        if self._client is None:  # created inside the running loop (aiohttp needs one)
            self._client = aioclient.InferenceServerClient(self._url, conn_timeout=self._timeout)
        return self._client

    async def _describe_model(self, model: str) -> None:
        client = self._get_client()
        meta = await client.get_model_metadata(model)
        cfg = await client.get_model_config(model)
        self._io[model] = ModelIO(
            inputs=tuple(t["name"] for t in meta["inputs"]),
            outputs=tuple(t["name"] for t in meta["outputs"]),
        )
        kinds = sorted({g.get("kind", "KIND_AUTO") for g in cfg.get("instance_group", [])}) or ["KIND_AUTO"]
        backend = cfg.get("backend") or cfg.get("platform") or "?"
        self._placement[model] = f"triton:{backend}:{'+'.join(kinds)}"

    async def load(self, models: list[str], required: bool = True) -> list[str]:
        """Wait (bounded) until Triton serves every model, then read their tensor names.
        Optional models are taken only if Triton serves them now."""
        if not required:
            loaded = []
            for model in models:
                try:
                    if model in self._io or await self._get_client().is_model_ready(model):
                        if model not in self._io:
                            await self._describe_model(model)
                        loaded.append(model)
                except (TimeoutError, InferenceServerException, *_CONNECTION_ERRORS):
                    pass
            return loaded
        deadline = time.monotonic() + self._startup_timeout
        pending = [m for m in models if m not in self._io]
        last_error = "not contacted"
        while pending:
            try:
                client = self._get_client()
                for model in list(pending):
                    if await client.is_model_ready(model):
                        await self._describe_model(model)
                        pending.remove(model)
                    else:
                        last_error = f"model {model} not ready"
            except (TimeoutError, InferenceServerException, *_CONNECTION_ERRORS) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Triton at {self._url} did not serve {pending} in time ({last_error})")
                log.info("waiting for Triton at %s: %s", self._url, last_error)
                await asyncio.sleep(1.0)
        return list(models)

    def io(self, model: str) -> ModelIO:
        return self._io[model]

    def _budget(self, model: str) -> float:
        """Seconds this call may take: the request's remaining deadline, at most timeout_s."""
        deadline = request_deadline.get()
        if deadline is None:
            return self._timeout
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded(f"the request's deadline passed before model {model} ran")
        return min(self._timeout, remaining)

    async def run(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        outputs = list(outputs or self._io[model].outputs)
        infer_inputs = []
        for name, arr in inputs.items():
            arr = np.ascontiguousarray(arr)
            t = httpclient.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
            t.set_data_from_numpy(arr, binary_data=True)
            infer_inputs.append(t)
        requested = [httpclient.InferRequestedOutput(n, binary_data=True) for n in outputs]
        attempt = 0
        while True:
            budget = self._budget(model)
            try:
                result = await asyncio.wait_for(
                    self._get_client().infer(model, infer_inputs, outputs=requested,
                                             timeout=max(1, int(budget * 1e6))),
                    budget + VERDICT_GRACE_S,
                )
                return {n: result.as_numpy(n) for n in outputs}
            except TimeoutError:
                if request_deadline.get() is not None and budget < self._timeout:
                    raise DeadlineExceeded(f"model {model} did not answer before the request's deadline") from None
                raise BackendUnavailable(f"the inference server did not answer within {self._timeout:g}s") from None
            except _CONNECTION_ERRORS as exc:
                if attempt < self._retries:
                    attempt += 1
                    await asyncio.sleep(0.1 * attempt)
                    continue
                log.warning("Triton at %s unreachable for %s: %s", self._url, model, type(exc).__name__)
                raise BackendUnavailable("the inference server is unreachable") from None
            except InferenceServerException as exc:
                raise _refusal(model, exc) from None

    async def ready(self) -> bool:
        try:
            client = self._get_client()
            if not await asyncio.wait_for(client.is_server_live(), 2.0):
                return False
            for model in self._io:
                if not await asyncio.wait_for(client.is_model_ready(model), 2.0):
                    return False
            return bool(self._io)
        except Exception:
            return False

    def describe(self) -> dict[str, str]:
        return dict(self._placement)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _refusal(model: str, exc: InferenceServerException) -> Exception:
    """The client-facing error for an error answer of Triton."""
    status = str(exc.status() or "")
    text = exc.message() or ""
    if QUEUE_FULL in text:
        return Overloaded(f"the inference server's queue for model {model} is full; retry shortly")
    if QUEUE_TIMEOUT in text:
        return DeadlineExceeded(f"model {model} waited in the inference server's queue past its timeout "
                                "(the request's deadline, or the model's queue limit)")
    if status in ("400", "404", "503") and ("not ready" in text or "unknown model" in text or "unavailable" in text.lower()):
        return BackendUnavailable(f"model {model} is not ready on the inference server")
    log.error("Triton error for %s: %s %s", model, status, text)
    return BackendError(f"the inference server failed on model {model}")
