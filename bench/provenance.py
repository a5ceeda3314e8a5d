"""What every artifact records about how it was measured: the commit, the model set, the settings.

``docs/render.py --check`` (``make docs-check``) holds an artifact's recorded model set to the
default of ``preprocess_service.model_sets`` (the set the docs describe), unless the artifact
compares sets by design.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commit() -> str:
    """HEAD, with ``-dirty`` when tracked files other than the artifacts differ from it (the
    figures are then not HEAD's code; artifacts written by earlier measurements do not count)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", ":(exclude)docs/artifacts"],
                           cwd=ROOT).returncode != 0
    return (head or "unknown") + ("-dirty" if dirty else "")


def provenance(model_set: str | None = None, settings: dict[str, str] | None = None) -> dict:
    """{"commit", "model_set", "settings"} for an artifact; the model set defaults to the service's."""
    from preprocess_service.model_sets import DEFAULT_MODEL_SET

    return {"commit": commit(), "model_set": model_set or DEFAULT_MODEL_SET, "settings": dict(settings or {})}
