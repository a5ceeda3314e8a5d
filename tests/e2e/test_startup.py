"""The service's entry point refuses a configuration it cannot serve: exit status 2, one line
saying why, never a value or a token. Each case starts the real process (``python -m
preprocess_service``)."""

from __future__ import annotations

import os

import pytest


def test_configuration_errors_exit_2_without_echoing_values():
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    env.update({"OCR_API_TOKENS": "tok-do-not-print-9f8e", "OCR_PORT": "not-a-port-7c1d"})
    r = subprocess.run([sys.executable, "-m", "preprocess_service"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "OCR_PORT" in r.stderr
    assert "tok-do-not-print-9f8e" not in r.stderr + r.stdout and "not-a-port-7c1d" not in r.stderr


@pytest.mark.parametrize(("env", "content", "message"), [
    ({}, b"", "holds none"),
    ({}, b"short-token\n", "shorter than 16"),
    ({"OCR_API_TOKENS": "tiny"}, None, "shorter than 16"),
])
def test_the_process_refuses_to_start_without_a_usable_token(tmp_path, env, content, message):
    """The same refusal from the real entry point: exit status 2, one line saying why, no token."""
    import os
    import subprocess
    import sys

    run_env = {k: v for k, v in os.environ.items() if not k.startswith("OCR_")}
    run_env.update(env)
    if content is not None:
        f = tmp_path / "tokens"
        f.write_bytes(content)
        run_env["OCR_API_TOKENS_FILE"] = str(f)
    r = subprocess.run([sys.executable, "-m", "preprocess_service"], env=run_env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "short-token" not in r.stderr + r.stdout and "tiny" not in r.stderr + r.stdout
