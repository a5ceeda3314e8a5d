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
