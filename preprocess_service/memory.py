"""Process memory policy: keep RSS following the work instead of ratcheting up.

glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB), after
which image-sized buffers (decoded images, tensors, probability maps) come from the heap arenas,
where fragmentation keeps them resident after they are freed. Fixing the threshold
(``OCR_MALLOC_MMAP_THRESHOLD_KIB``) sends every larger block to mmap, returned to the system on
free: flat RSS at a speed cost. Measured with the soak of ``bench/run.py``
(``OCR_MALLOC_MMAP_THRESHOLD_KIB=4096 python -m bench.run --systems --soak 1000``; README figures).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def trim() -> bool:
    """Hand the heap's free memory back to the system (glibc ``malloc_trim(0)``), after a large
    request: decoded pages and tensors freed to the arenas otherwise stay resident. False where
    the C library is not glibc."""
    libc = _libc()
    fn = getattr(libc, "malloc_trim", None) if libc is not None else None
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    fn(0)
    return True


def rss_bytes() -> int:
    """This process's resident set now (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def limit_arenas(count: int) -> bool:
    """At most ``count`` glibc malloc arenas. glibc gives each thread that allocates concurrently
    an arena of its own (up to 8 per core); every arena keeps the high-water mark of what its
    threads held, so with the service's worker threads the process's resident set becomes the
    sum of several pages' transient peaks instead of one. False where the C library is not glibc."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_ARENA_MAX, count) == 1


def fix_mmap_threshold(threshold_bytes: int) -> bool:
    """Set glibc's M_MMAP_THRESHOLD (which also turns its dynamic adjustment off). False where
    the C library is not glibc."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold_bytes) == 1
