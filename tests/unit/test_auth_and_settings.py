"""Tokens (constant-time check, file source, rotation) and settings."""

from __future__ import annotations

import os
import time

import pytest
from pydantic import SecretStr, ValidationError

from preprocess_service.auth import TokenStore, bearer_token
from preprocess_service.settings import Settings


def test_bearer_parsing():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


ONE, TWO, THREE = "token-one-0123456789", "token-two-0123456789", "token-three-0123456789"


def test_static_tokens():
    store = TokenStore([SecretStr(ONE), SecretStr(TWO)])
    assert store.verify(ONE) and store.verify(TWO)
    assert not store.verify(THREE) and not store.verify("") and not store.verify(None)
    assert not store.verify(ONE + " ")  # exact match only


def test_token_file_and_rotation(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"# comment\n{ONE}\n\n {TWO} \n")
    store = TokenStore(tokens_file=f)
    assert store.verify(ONE) and store.verify(TWO) and store.count == 2
    f.write_text(f"{THREE}\n")
    os.utime(f, (time.time() + 5, time.time() + 5))  # a new mtime even on coarse clocks
    assert store.verify(THREE)
    assert not store.verify(ONE)


def test_unreadable_token_file_fails_at_start(tmp_path):
    with pytest.raises(RuntimeError, match="cannot read the token file"):
        TokenStore(tokens_file=tmp_path / "missing")


def test_settings_need_a_token_source(monkeypatch):
    with pytest.raises(ValidationError, match="no API token configured"):
        Settings()


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OCR_API_TOKENS", "tok-a1, tok-b2,,tok-c3")
    monkeypatch.setenv("OCR_MODEL_SET", "ppocrv5_mobile")
    monkeypatch.setenv("OCR_REC_MODEL", "ppocrv6_small_rec")
    s = Settings()
    assert [t.get_secret_value() for t in s.api_tokens] == ["tok-a1", "tok-b2", "tok-c3"]
    assert s.model_names == {"det": "ppocrv5_mobile_det", "rec": "ppocrv6_small_rec", "cls": "ppocr_textline_cls"}
    assert s.orientation_default is True  # the v5 set runs its classifier by default
    assert "tok-a1" not in repr(s) and "tok-a1" not in str(s.model_dump())  # tokens are secrets: never printed


def test_settings_reject_bad_values(monkeypatch):
    monkeypatch.setenv("OCR_API_TOKENS", "x")
    monkeypatch.setenv("OCR_MODEL_SET", "nope")
    with pytest.raises(ValidationError):
        Settings()


def test_logged_urls_are_redacted():
    from preprocess_service.logredact import redact_url

    assert redact_url("/image_label?key=s3cr3t&x=1") == "/image_label?key=[REDACTED]&x=1"
    assert redact_url("/x?a=1&Token=abc") == "/x?a=1&Token=[REDACTED]"
    assert redact_url("/x?monkey=1") == "/x?monkey=1"


def test_the_burst_default_is_what_the_setting_says():
    """OCR_RATE_LIMIT_BURST=0 means a sixth of the per-minute rate (at least 1): the admission code,
    the setting's description and docs/configuration.md say the same."""
    from pathlib import Path

    from preprocess_service.admission import Admission
    from preprocess_service.settings import Settings

    for rate, burst in ((60, 10), (5, 1), (600, 100)):
        a = Admission.from_settings(Settings(api_tokens=["x" * 16], rate_limit_per_minute=rate))
        assert a._rates is not None and a._rates.burst == burst
    assert "a sixth of a minute's rate" in (Settings.model_fields["rate_limit_burst"].description or "")
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert "0 (= rate / 6)" in docs


def test_a_pod_limit_too_small_to_split_among_workers_is_refused():
    """OCR_MAX_QUEUE=1 with two workers gave each a queue of 0 (every wait refused): refused now,
    as is OCR_MAX_IN_FLIGHT below the worker count; equal or above splits with at least one each."""
    with pytest.raises(ValidationError, match="OCR_MAX_QUEUE=1 is split among OCR_WORKERS=2"):
        Settings(api_tokens=ONE, workers=2, max_queue=1)
    with pytest.raises(ValidationError, match="OCR_MAX_IN_FLIGHT=1"):
        Settings(api_tokens=ONE, workers=2, max_in_flight=1)
    s = Settings(api_tokens=ONE, workers=2, max_queue=2, max_in_flight=2)
    assert s.queue_limit == 1 and s.in_flight_limit == 1
    assert Settings(api_tokens=ONE, workers=1, max_queue=1).queue_limit == 1
