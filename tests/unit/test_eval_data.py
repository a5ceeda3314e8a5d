"""The evaluation set lives in the repository, complete, with its terms, and ships nowhere."""

from __future__ import annotations

import hashlib
import json
import tomllib

import setuptools

from evaluation import EVAL_DIR
from tests.conftest import ROOT


def _manifest() -> list[dict]:
    return json.loads((EVAL_DIR / "manifest.json").read_text(encoding="utf-8"))


def test_every_item_is_here_with_its_ground_truth_and_checksum():
    items = _manifest()
    assert len(items) == 31
    for e in items:
        data = (EVAL_DIR / e["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"], e["file"]
        assert (EVAL_DIR / e["gt"]).read_text(encoding="utf-8").strip(), e["gt"]
        for extra in e.get("extra_files", []):
            assert (EVAL_DIR / extra).exists(), extra


def test_research_use_items_carry_their_terms_beside_them():
    research = [e for e in _manifest() if "research" in e["license"].lower() or "COCO" in e["license"]]
    assert len(research) == 7
    for e in research:
        terms = EVAL_DIR / e["terms_file"]
        text = terms.read_text(encoding="utf-8")
        assert e["file"] in text and "evaluation" in text and "Origin:" in text


def test_kept_out_of_the_image_and_the_package():
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*" and not any(rule.startswith("!evaluation") for rule in rules)
    # what the package build takes: setuptools' own discovery with the project's configuration
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = setuptools.find_packages(where=str(ROOT), include=config["packages"]["find"]["include"])
    assert "preprocess_service" in packages
    assert not [p for p in packages if p.split(".")[0] in ("evaluation", "bench", "harness", "tests")]
    assert all(not pattern.startswith("data") for patterns in config["package-data"].values() for pattern in patterns)
