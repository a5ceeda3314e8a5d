"""Accuracy evaluation: the scoring rules and the evaluation set that lives in ``evaluation/data``."""

from pathlib import Path

#: The evaluation images, their ground truth, SOURCES.md (origin, licence, terms) and manifest.json.
EVAL_DIR = Path(__file__).resolve().parent / "data"
