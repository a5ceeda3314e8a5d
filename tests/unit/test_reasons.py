"""The reasons of ocr_rejected_total are said once (preprocess_service/errors.py) and everything
else agrees with them: every refusal type, the metric's help, both alert rules, the runbook and
the metrics page."""

from __future__ import annotations

import re

import yaml

from preprocess_service import errors, metrics
from tests.conftest import ROOT

RULES = yaml.safe_load((ROOT / "helm" / "ocr-service" / "files" / "alert-rules.yml").read_text())


def _rule(name: str) -> str:
    return next(r["expr"] for g in RULES["groups"] for r in g["rules"] if r.get("alert") == name)


def _reasons_in(expr: str) -> set[str]:
    return set(re.search(r'reason=~"([^"]+)"', expr).group(1).split("|"))


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_refusal_reason_is_of_one_kind():
    reasons = {c.reason for c in _subclasses(errors.OCRError) if c.reason}
    capacity, client = set(errors.CAPACITY_REASONS), set(errors.CLIENT_REASONS)
    assert not capacity & client
    assert reasons == capacity | client


def test_the_alerts_split_the_reasons_as_the_code_does():
    assert _reasons_in(_rule("OCRRequestsRejected")) == set(errors.CAPACITY_REASONS) - set(errors.ROLLOUT_REASONS)
    assert _reasons_in(_rule("OCRClientRequestsRejected")) == set(errors.CLIENT_REASONS)


def test_the_metric_help_and_the_docs_name_every_reason_in_its_kind():
    help_text = metrics.REJECTED._documentation
    for reason in (*errors.CAPACITY_REASONS, *errors.CLIENT_REASONS):
        assert reason in help_text, reason
    observability = (ROOT / "docs" / "observability.md").read_text()
    row = next(line for line in observability.splitlines() if line.startswith("| `ocr_rejected_total`"))
    capacity_part, client_part = row.split("(the service's capacity or state)")
    assert [r for r in re.findall(r"`(\w+)`", capacity_part) if r not in ("ocr_rejected_total", "reason")] == list(errors.CAPACITY_REASONS)
    assert re.findall(r"`(\w+)`", client_part) == list(errors.CLIENT_REASONS)
    runbook = (ROOT / "docs" / "operations.md").read_text()
    section = runbook.split("## OCRRequestsRejected", 1)[1].split("\n## ", 1)[0]
    meaning = section.split("**Check.**", 1)[0]
    covered = set(re.findall(r"`(\w+)`", meaning.split("Clients get")[0])) - {"ocr_rejected_total", "reason", "Retry-After"}
    assert covered == set(errors.CAPACITY_REASONS) - set(errors.ROLLOUT_REASONS), covered
    client_section = runbook.split("## OCRClientRequestsRejected", 1)[1].split("\n## ", 1)[0]
    assert set(errors.CLIENT_REASONS) <= set(re.findall(r"`(\w+)`", client_section))
