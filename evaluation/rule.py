"""The accuracy rule, the one place it is written (no imports: the docs renderer reads it too).

A faster variant (INT8 models, another setting) may replace the reference it is measured
against only if the character-weighted CER rises by at most MAX_OVERALL_CER_RISE and the mean
per-image CER by at most MAX_MEAN_CER_RISE. The INT8 adoption (export_scripts.quantize, which adds
that every rendered label still reads as exactly), the docs' lever table, `make eval` and the
accuracy gate of the tests all apply it.
"""

MAX_OVERALL_CER_RISE = 0.002
MAX_MEAN_CER_RISE = 0.005
