"""Triton system shared memory for a co-located Triton: a pool of regions the tensors travel in.

When Triton runs beside the service (a sidecar in the same pod sharing ``/dev/shm``, or the same
host), a model call need not carry its tensors over HTTP: the service writes the inputs into a
POSIX shared-memory region, names the region and the offsets in the request, and Triton writes
the outputs into the same region. Only the small JSON request and answer cross the connection.

The pool holds ``regions`` regions of ``region_bytes`` each, created and registered with Triton
once (``register``), and lent to one model call at a time (``acquire`` / ``release``), so calls
running at once never share a region. A call whose tensors do not fit a region, or that finds
every region lent, goes over the network instead (``TritonBackend``). ``close`` unregisters the
regions and unlinks them. Triton forgets registrations when it restarts: the backend re-registers
(``register`` again) when Triton answers that a region is unknown, and retries the call once.

Region names (Triton's) and keys (``/dev/shm`` file names) carry the process id and a random
token, so several processes (workers, pods on one host) can share one Triton. The regions are
created with mode 0600: Triton must run as the same user (the chart runs both containers as the
pod's user).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from dataclasses import dataclass, field

import numpy as np
import tritonclient.utils.shared_memory as shm

log = logging.getLogger(__name__)

MIB = 2**20
ALIGN = 64  # each tensor starts on a cache line
# Region size when none is set: the largest detection call at the detection limit (uint8 NHWC
# input, 3 bytes per pixel, and at worst a float32 map, 4 bytes per pixel), plus 1 MiB for the
# rest (recognition batches and their outputs are far smaller).
DET_BYTES_PER_PIXEL = 3 + 4


def auto_region_bytes(det_limit_side_len: int) -> int:
    """Bytes of a region that holds a detection call at the detection limit (whole MiB)."""
    need = DET_BYTES_PER_PIXEL * det_limit_side_len**2 + MIB
    return max(4, math.ceil(need / MIB)) * MIB


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Layout:
    """Where each tensor of one call lies in a region: name -> (offset, bytes)."""

    inputs: dict[str, tuple[int, int]]
    outputs: dict[str, tuple[int, int]]


def plan(region_bytes: int, inputs: dict[str, int], outputs: dict[str, tuple[int | None, int]]) -> Layout | None:
    """Lay out one call in a region, or None when it does not fit.

    ``inputs``: name -> bytes. ``outputs``: name -> (expected bytes, or None when not known yet;
    the element size). Inputs are packed first; the rest of the region is shared among the
    outputs in proportion to their expected size (or, when unknown, to their element size times
    the input bytes), so an output larger than expected still fits when the region allows it.
    Returns None when an input is empty, or when the inputs and the expected outputs exceed it."""
    offset = 0
    in_layout: dict[str, tuple[int, int]] = {}
    for name, nbytes in inputs.items():
        if nbytes <= 0:
            return None
        in_layout[name] = (offset, nbytes)
        offset = _align(offset + nbytes)
    total_in = offset
    rest = region_bytes - total_in
    if rest < ALIGN * max(1, len(outputs)):
        return None
    weights = {n: float(exp if exp is not None else item * total_in) for n, (exp, item) in outputs.items()}
    total_w = sum(weights.values()) or 1.0
    out_layout: dict[str, tuple[int, int]] = {}
    for name, (expected, _) in outputs.items():
        share = int(rest * weights[name] / total_w) // ALIGN * ALIGN
        if share < ALIGN or (expected is not None and expected > share):
            return None
        out_layout[name] = (offset, share)
        offset += share
    return Layout(in_layout, out_layout)


@dataclass(eq=False)  # a region is itself: pools compare by identity
class Region:
    name: str  # the name Triton knows it by
    key: str  # the shared-memory object (/dev/shm/<key>)
    size: int
    handle: shm.SharedMemoryRegion = field(repr=False)

    def write(self, layout: Layout, arrays: dict[str, np.ndarray]) -> None:
        for name, (offset, _) in layout.inputs.items():
            shm.set_shared_memory_region(self.handle, [arrays[name]], offset=offset)

    def read(self, offset: int, dtype: np.dtype, shape: list[int]) -> np.ndarray:
        """A copy of a tensor (the region is lent to the next call as soon as this one ends)."""
        view = shm.get_contents_as_numpy(self.handle, dtype, shape, offset)
        out = np.array(view, copy=True)
        del view
        return out


class RegionPool:
    """``regions`` shared-memory regions of ``region_bytes``, each lent to one call at a time."""

    def __init__(self, regions: int, region_bytes: int):
        if regions < 1 or region_bytes < ALIGN * 4:
            raise ValueError("a shared-memory pool needs at least one region of at least 256 bytes")
        self.region_bytes = region_bytes
        self._count = regions
        token = secrets.token_hex(4)
        self._prefix = f"ocr-{os.getpid()}-{token}"
        self._regions: list[Region] = []
        self._free: list[Region] = []

    @property
    def created(self) -> bool:
        return bool(self._regions)

    @property
    def regions(self) -> list[Region]:
        return list(self._regions)

    @property
    def prefix(self) -> str:
        return self._prefix

    def create(self) -> None:
        """Create the shared-memory objects (once)."""
        if self._regions:
            return
        try:
            for i in range(self._count):
                name = f"{self._prefix}-{i}"
                key = f"/{name}"
                handle = shm.create_shared_memory_region(name, key, self.region_bytes, create_only=True)
                self._regions.append(Region(name, key, self.region_bytes, handle))
        except Exception:
            self.destroy()
            raise
        self._free = list(self._regions)
        log.info("Triton shared memory: %d regions of %d MiB (%s-*)", len(self._regions),
                 self.region_bytes // MIB, self._prefix)

    def acquire(self) -> Region | None:
        """A free region, or None when every region is lent (the call then uses the network)."""
        return self._free.pop() if self._free else None

    def release(self, region: Region) -> None:
        if region in self._regions and region not in self._free:  # not after destroy(), never twice
            self._free.append(region)

    def destroy(self) -> None:
        """Unmap and unlink every region (after Triton has been told to forget them)."""
        for region in self._regions:
            try:
                shm.destroy_shared_memory_region(region.handle)
            except Exception as exc:  # already gone: nothing left to free
                log.warning("could not remove shared memory %s: %s", region.key, exc)
        self._regions = []
        self._free = []
