"""The image's supply chain, read from the Dockerfile: the base is pinned by digest, and every
stage is built from it (or from a stage before it), so no build takes what a tag points to today."""

from __future__ import annotations

import re

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_base_image_is_pinned_by_digest():
    m = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert m, "the Dockerfile has no default BASE_IMAGE"
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", m.group(1)), m.group(1)


def test_every_stage_comes_from_the_pinned_base_or_an_earlier_stage():
    stages: set[str] = set()
    for line in re.findall(r"^FROM\s+(.+)$", DOCKERFILE, re.M):
        parts = line.split()
        source = parts[0]
        variants = {re.sub(r"\$\{VARIANT:-cpu\}", v, source) for v in ("cpu", "gpu")}
        assert source == "${BASE_IMAGE}" or variants <= stages, f"FROM {source}: neither the pinned base nor an earlier stage"
        if len(parts) == 3 and parts[1].upper() == "AS":
            stages.add(parts[2])


def test_make_base_digest_rewrites_the_pinned_line():
    makefile = (ROOT / "Makefile").read_text()
    rule = makefile[makefile.index("\nbase-digest:"):]
    rule = rule[:rule.index("\n\n")]
    assert "skopeo inspect --raw" in rule and "sha256sum" in rule and "s|^ARG BASE_IMAGE=" in rule
