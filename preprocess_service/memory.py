"""Process memory policy: keep RSS following the work instead of ratcheting up.

glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB), after
which image-sized buffers (decoded images, tensors, probability maps) come from the heap arenas,
where fragmentation keeps them resident after they are freed. Fixing the threshold sends every
block over the threshold (``OCR_MALLOC_MMAP_THRESHOLD_KIB``) to mmap, returned to the system on free. Measured with
``python -m bench.run --systems --soak 5000`` (the README has the figures).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3


def fix_mmap_threshold(threshold_bytes: int) -> bool:
    """Set glibc's M_MMAP_THRESHOLD (which also turns its dynamic adjustment off). False where
    the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold_bytes) == 1
