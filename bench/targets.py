"""The benchmark's targets, written once: `make bench` reports against them (bench/run.py) and the
docs say whether the committed run met them (docs/render.py). No imports: the docs renderer reads
this file with the system's Python."""

SPEEDUP_C4 = 1.5  # ours / the fastest peer at equal or better CER, images/s at concurrency 4
LATENCY_C1 = 1.15  # ours / the floor at concurrency 1 (median and total time), at most
SPEEDUP_FLOOR = 1.5  # ours / the float32 floor, images/s at concurrency 4
TRITON_RATIO = 0.9  # ours-triton / ours, images/s at concurrency 4, at least
RSS_GROWTH_PCT = 5.0  # over the soak, after warm-up, below
