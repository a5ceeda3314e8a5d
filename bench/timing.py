"""Timing helpers shared by the benchmark's drivers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_threads(worker: Callable[[], None], n: int) -> float:
    """Run `worker` on n threads at once; the wall time until all have finished."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0
