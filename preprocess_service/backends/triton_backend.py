"""Triton backend: the same tensor batches, run by a Triton Inference Server over HTTP/v2.

``tritonclient.http.aio`` with binary tensor data. Every call has a deadline: the request's
(``base.request_deadline``) when set, capped by the per-call ``timeout_s``. The time left goes to
Triton as the request's ``timeout`` (microseconds; the configs allow the override), so a call
still queued in Triton when its deadline passes is refused there without running, and a full
queue is refused at once. Inference is a pure function of its inputs, so a call that could not
reach the server is retried (bounded, within the deadline); a call that timed out is not (its
deadline is spent). Unavailability, a full queue or a spent deadline become a 503 with
Retry-After for the client, never a hang.

With ``shm`` (a co-located Triton: ``OCR_TRITON_SHM``) the tensors travel through Triton's system
shared memory instead of the HTTP body (``triton_shm``): each call borrows a region of a pool
registered once, the same request goes out with the region's name and offsets, and the outputs
are read back from the region. A call that does not fit a region, or finds none free, goes over
the network; when Triton has forgotten the regions (it restarted) they are registered again and
the call is retried once. Either path gives the same arrays.

Which Triton a call goes to (one address, or each ready pod behind a headless Service, least
busy first) is ``triton_endpoints``'s business; a call that could not connect is retried on
another address when there is one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
import numpy as np
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype

from ..errors import BackendError, BackendUnavailable, DeadlineExceeded, Overloaded
from .base import InferenceBackend, ModelIO, request_deadline
from .triton_endpoints import Endpoint, Endpoints, Resolver
from .triton_shm import Layout, Region, RegionPool, auto_region_bytes, plan

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
# Triton's words when a request names a region it does not know (it restarted and forgot the
# registrations), and when an output does not fit the space the request gave it in a region.
SHM_REGION_UNKNOWN = "find shared memory region"
SHM_OUTPUT_TOO_SMALL = "shared memory size specified with the request for output"
SHM_ALREADY_REGISTERED = "already in manager"
# After Triton refused to register the regions (it cannot open them: not co-located, another
# /dev/shm, another user), calls use the network for this long before registering is tried again.
SHM_RETRY_AFTER_S = 60.0
SHM_REGISTER_TIMEOUT_S = 5.0  # registering the whole pool (one small request per region, at once)
# A call that ended without Triton's answer (its deadline, a cancelled request, a cut connection)
# may still be queued or running in Triton, which would then write its outputs into the region
# later: the region rests this long (times the per-call timeout, plus a margin) before it is lent
# again. Triton refuses a queued request once its timeout (at most the per-call timeout) has
# passed, and a running one ends within a model run.
SHM_QUARANTINE_FACTOR = 2.0
SHM_QUARANTINE_MARGIN_S = 10.0


@dataclass(frozen=True)
class ShmOptions:
    """System shared memory with a co-located Triton (OCR_TRITON_SHM_*)."""

    regions: int = 8
    region_bytes: int = 8 * 2**20

    @classmethod
    def from_settings(cls, settings) -> ShmOptions | None:
        if not settings.triton_shm:
            return None
        mib = settings.triton_shm_region_mib
        return cls(regions=settings.triton_shm_regions,
                   region_bytes=mib * 2**20 if mib else auto_region_bytes(settings.det_limit_side_len))


class _UseNetwork(Exception):
    """This call goes over the network after all (an output did not fit its space in the region)."""


class TritonBackend(InferenceBackend):
    name = "triton"
    remote = True

    def __init__(self, url: str, timeout_s: float = 30.0, retries: int = 1, startup_timeout_s: float = 300.0,
                 shm: ShmOptions | None = None, balance: str = "off", resolve_every_s: float = 5.0,
                 resolver: Resolver | None = None):
        self._endpoints = Endpoints(url, balance, resolve_every_s, conn_timeout=timeout_s, resolver=resolver)
        if shm and not self._endpoints.single:
            raise ValueError("Triton shared memory needs the one Triton in the pod (one address, no balancing)")
        self._url = self._endpoints.label
        self._timeout = timeout_s
        self._retries = retries
        self._startup_timeout = startup_timeout_s
        self._io: dict[str, ModelIO] = {}
        self._placement: dict[str, str] = {}
        self._out_dtypes: dict[str, dict[str, str]] = {}
        # shared memory: the pool, whether Triton knows it now (and since which registration),
        # when to try registering again after a refusal, and each output's bytes per input byte
        self._pool = RegionPool(shm.regions, shm.region_bytes) if shm else None
        self._registered = False
        self._generation = 0
        self._register_lock = asyncio.Lock()
        self._shm_refused_until = 0.0
        self._out_ratio: dict[tuple[str, str], float] = {}
        self.shm_stats = {"shm": 0, "network": 0, "busy": 0, "too_big": 0, "reregistered": 0, "quarantined": 0}

    async def _endpoint(self) -> Endpoint:
        """The address for calls that any Triton answers alike (metadata, health): the least busy.
        Its client is created inside the running loop (aiohttp needs one)."""
        endpoint = await self._endpoints.pick()
        if endpoint is None:
            raise ConnectionError(f"no address of Triton at {self._url} resolved")
        return endpoint

    async def _get_client(self) -> aioclient.InferenceServerClient:
        return (await self._endpoint()).client

    @property
    def endpoints(self) -> Endpoints:
        return self._endpoints

    async def _describe_model(self, model: str, client: aioclient.InferenceServerClient) -> None:
        meta = await client.get_model_metadata(model)
        cfg = await client.get_model_config(model)
        self._io[model] = ModelIO(
            inputs=tuple(t["name"] for t in meta["inputs"]),
            outputs=tuple(t["name"] for t in meta["outputs"]),
        )
        self._out_dtypes[model] = {t["name"]: t["datatype"] for t in meta["outputs"]}
        kinds = sorted({g.get("kind", "KIND_AUTO") for g in cfg.get("instance_group", [])}) or ["KIND_AUTO"]
        backend = cfg.get("backend") or cfg.get("platform") or "?"
        self._placement[model] = f"triton:{backend}:{'+'.join(kinds)}"

    async def _serve(self, endpoint: Endpoint, models: list[str]) -> str | None:
        """Describe each model of ``models`` this address serves now (it is then in ``_io``); the
        reason one is not served, or None. An address that cannot be reached is skipped for a while."""
        try:
            for model in models:
                if not await endpoint.client.is_model_ready(model):
                    return f"model {model} not ready"
                await self._describe_model(model, endpoint.client)
        except _CONNECTION_ERRORS as exc:
            self._endpoints.mark_down(endpoint)
            return f"{type(exc).__name__}: {exc}"
        except (TimeoutError, InferenceServerException) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    async def load(self, models: list[str], required: bool = True) -> list[str]:
        """Wait (bounded) until Triton serves every model, then read their tensor names.
        Optional models are taken only if Triton serves them now."""
        if not required:
            wanted = [m for m in models if m not in self._io]
            if wanted:
                try:
                    endpoint = await self._endpoint()
                except _CONNECTION_ERRORS:
                    return [m for m in models if m in self._io]
                for model in wanted:  # each on its own: one not served does not stop the others
                    await self._serve(endpoint, [model])
            return [m for m in models if m in self._io]
        deadline = time.monotonic() + self._startup_timeout
        pending = [m for m in models if m not in self._io]
        last_error = "not contacted"
        while pending:
            try:
                last_error = await self._serve(await self._endpoint(), pending) or last_error
            except _CONNECTION_ERRORS as exc:  # no address resolved
                last_error = f"{type(exc).__name__}: {exc}"
            pending = [m for m in pending if m not in self._io]
            if pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Triton at {self._url} did not serve {pending} in time ({last_error})")
                log.info("waiting for Triton at %s: %s", self._url, last_error)
                await asyncio.sleep(1.0)
        if self._pool is not None and not self._registered:
            await self._register(self._generation)
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
        arrays = {name: np.ascontiguousarray(arr) for name, arr in inputs.items()}
        if self._pool is not None:
            region = await self._region()
            if region is not None:
                try:
                    got = await self._run_shm(model, arrays, outputs, region)  # gives the region back
                    if got is not None:
                        self.shm_stats["shm"] += 1
                        return got
                except _UseNetwork:
                    pass
        infer_inputs = []
        for name, arr in arrays.items():
            t = httpclient.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
            t.set_data_from_numpy(arr, binary_data=True)
            infer_inputs.append(t)
        requested = [httpclient.InferRequestedOutput(n, binary_data=True) for n in outputs]
        try:
            result = await self._infer(model, infer_inputs, requested)
        except InferenceServerException as exc:
            raise _refusal(model, exc) from None
        out = {n: result.as_numpy(n) for n in outputs}
        if self._pool is not None:
            self.shm_stats["network"] += 1
            self._learn(model, arrays, out)
        return out

    async def _infer(self, model: str, infer_inputs: list, requested: list) -> httpclient.InferResult:
        """One call within its deadline, retried after connection failures. Triton's error
        answers come back as InferenceServerException, for the caller to read."""
        attempt = 0
        while True:
            budget = self._budget(model)
            endpoint: Endpoint | None = await self._endpoints.pick()
            if endpoint is None:
                raise BackendUnavailable("no address of the inference server resolved")
            self._endpoints.begin(endpoint)
            try:
                return await asyncio.wait_for(
                    endpoint.client.infer(model, infer_inputs, outputs=requested, timeout=max(1, int(budget * 1e6))),
                    budget + VERDICT_GRACE_S,
                )
            except TimeoutError:
                if request_deadline.get() is not None and budget < self._timeout:
                    raise DeadlineExceeded(f"model {model} did not answer before the request's deadline") from None
                raise BackendUnavailable(f"the inference server did not answer within {self._timeout:g}s") from None
            except _CONNECTION_ERRORS as exc:
                self._endpoints.mark_down(endpoint)  # the next attempt goes to another address, if any
                if attempt < self._retries:
                    attempt += 1
                    await asyncio.sleep(0.1 * attempt)
                    continue
                log.warning("Triton at %s unreachable for %s: %s", endpoint.address, model, type(exc).__name__)
                raise BackendUnavailable("the inference server is unreachable") from None
            finally:
                await self._endpoints.end(endpoint)

    # --- system shared memory ------------------------------------------------------------------

    async def _region(self) -> Region | None:
        """A region for this call, or None (the call then goes over the network): none is free,
        or Triton does not know the pool and cannot be made to."""
        assert self._pool is not None
        if not self._registered:
            if time.monotonic() < self._shm_refused_until or not await self._register(self._generation):
                return None
        region = self._pool.acquire()
        if region is None:
            self.shm_stats["busy"] += 1
        return region

    async def _register(self, seen: int) -> bool:
        """Create the pool (once) and register every region with Triton, unless another call
        already did so since registration ``seen``. False when Triton cannot be reached or
        refuses (then the network is used, and registering is tried again later)."""
        assert self._pool is not None
        async with self._register_lock:
            if self._registered and self._generation != seen:
                return True
            self._registered = False
            try:
                self._pool.create()
                client = await self._get_client()

                async def register(region: Region) -> None:
                    try:
                        await client.register_system_shared_memory(region.name, region.key, region.size)
                    except InferenceServerException as exc:
                        if SHM_ALREADY_REGISTERED not in (exc.message() or ""):
                            raise

                await asyncio.wait_for(asyncio.gather(*(register(r) for r in self._pool.regions)), SHM_REGISTER_TIMEOUT_S)
            except InferenceServerException as exc:
                self._shm_refused_until = time.monotonic() + SHM_RETRY_AFTER_S
                log.error("Triton at %s refused the shared-memory regions (%s); tensors go over the network "
                          "(is Triton on this host, sharing /dev/shm, as the same user?)", self._url, exc.message())
                return False
            except (TimeoutError, *_CONNECTION_ERRORS) as exc:
                log.info("shared memory not registered: Triton at %s unreachable (%s)", self._url, type(exc).__name__)
                return False
            except Exception as exc:  # the pool could not be created (/dev/shm full or missing)
                self._shm_refused_until = time.monotonic() + SHM_RETRY_AFTER_S
                log.error("could not create the shared-memory regions (%s); tensors go over the network", exc)
                return False
            self._registered = True
            self._generation += 1
            return True

    def _layout(self, model: str, arrays: dict[str, np.ndarray], outputs: list[str]) -> Layout | None:
        assert self._pool is not None
        in_bytes = sum(a.nbytes for a in arrays.values())
        wanted: dict[str, tuple[int | None, int]] = {}
        for name in outputs:
            ratio = self._out_ratio.get((model, name))
            item = np.dtype(triton_to_np_dtype(self._out_dtypes.get(model, {}).get(name, "FP32"))).itemsize
            wanted[name] = (None if ratio is None else int(ratio * in_bytes) + 1, item)
        return plan(self._pool.region_bytes, {n: a.nbytes for n, a in arrays.items()}, wanted)

    def _learn(self, model: str, arrays: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
        """Remember each output's size per input byte: the next call's layout expects it."""
        in_bytes = sum(a.nbytes for a in arrays.values()) or 1
        for name, arr in out.items():
            key = (model, name)
            self._out_ratio[key] = max(self._out_ratio.get(key, 0.0), arr.nbytes / in_bytes)

    @staticmethod
    def _shm_tensors(region: Region, layout, arrays: dict[str, np.ndarray], outputs: list[str]) -> tuple[list, list]:
        """The call's inputs and requested outputs, each naming its place in ``region``."""
        infer_inputs = []
        for name, arr in arrays.items():
            offset, nbytes = layout.inputs[name]
            t = httpclient.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
            t.set_shared_memory(region.name, nbytes, offset)
            infer_inputs.append(t)
        requested = []
        for name in outputs:
            offset, nbytes = layout.outputs[name]
            o = httpclient.InferRequestedOutput(name)
            o.set_shared_memory(region.name, nbytes, offset)
            requested.append(o)
        return infer_inputs, requested

    async def _run_shm(self, model: str, arrays: dict[str, np.ndarray], outputs: list[str],
                       region: Region) -> dict[str, np.ndarray] | None:
        """The call through ``region``; None when it does not fit (the caller uses the network).

        Gives the region back to the pool: at once when Triton answered (or was never asked),
        after a quarantine when the call ended without an answer (Triton may still write to it)."""
        assert self._pool is not None
        settled = True  # Triton holds no unanswered request naming this region
        try:
            if any(a.dtype == np.object_ for a in arrays.values()):
                return None
            layout = self._layout(model, arrays, outputs)
            if layout is None:
                self.shm_stats["too_big"] += 1
                return None
            region.write(layout, arrays)
            infer_inputs, requested = self._shm_tensors(region, layout, arrays, outputs)
            generation = self._generation
            for attempt in (0, 1):
                settled = False
                try:
                    result = await self._infer(model, infer_inputs, requested)
                except InferenceServerException as exc:
                    settled = True  # an answer: Triton is done with the request
                    text = exc.message() or ""
                    if SHM_REGION_UNKNOWN in text and attempt == 0:
                        # Triton restarted and forgot the regions: register them again, retry once
                        log.warning("Triton at %s forgot the shared-memory regions; registering them again", self._url)
                        if not await self._register(generation):
                            raise _UseNetwork from None
                        self.shm_stats["reregistered"] += 1
                        continue
                    if SHM_OUTPUT_TOO_SMALL in text:
                        self.shm_stats["too_big"] += 1
                        raise _UseNetwork from None
                    raise _refusal(model, exc) from None
                settled = True
                break
            out = {}
            for name in outputs:
                desc = result.get_output(name)
                if desc is None:
                    raise BackendError(f"the inference server did not return {name} of model {model}")
                out[name] = region.read(layout.outputs[name][0], triton_to_np_dtype(desc["datatype"]), desc["shape"])
            self._learn(model, arrays, out)
            return out
        finally:
            if settled:
                self._pool.release(region)
            else:
                self.shm_stats["quarantined"] += 1
                rest = self._timeout * SHM_QUARANTINE_FACTOR + SHM_QUARANTINE_MARGIN_S
                log.info("shared-memory region %s rests %gs: its call ended without Triton's answer", region.name, rest)
                asyncio.get_running_loop().call_later(rest, self._pool.release, region)

    async def ready(self) -> bool:
        """Some Triton address serves every model (with balancing, calls go to those that do:
        an address that does not is a terminating or starting pod, soon out of the answer)."""
        if not self._io:
            return False
        try:
            endpoints = await self._endpoints.all()
        except Exception:
            return False
        for endpoint in endpoints:
            try:
                client = endpoint.client
                if not await asyncio.wait_for(client.is_server_live(), 2.0):
                    continue
                for model in self._io:
                    if not await asyncio.wait_for(client.is_model_ready(model), 2.0):
                        break
                else:
                    return True
            except Exception:
                continue
        return False

    def describe(self) -> dict[str, str]:
        return dict(self._placement)

    async def close(self) -> None:
        if self._pool is not None and self._pool.created:
            log.info("Triton shared memory: %(shm)d calls through it, %(network)d over HTTP (%(busy)d found no "
                     "free region, %(too_big)d did not fit one), registered again %(reregistered)d times, "
                     "%(quarantined)d regions rested after a call without an answer", self.shm_stats)
            if self._registered:
                try:
                    client = await self._get_client()
                    await asyncio.wait_for(asyncio.gather(
                        *(client.unregister_system_shared_memory(r.name) for r in self._pool.regions)), 3.0)
                except Exception as exc:  # Triton gone or hung: a restarted one knows nothing of them
                    log.info("could not unregister the shared-memory regions from Triton: %s", type(exc).__name__)
                self._registered = False
            self._pool.destroy()
        await self._endpoints.close()


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
