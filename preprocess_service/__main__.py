"""``python -m preprocess_service``: start the HTTP service with uvicorn.

With no token configured at all, ``--dev-token-file PATH`` creates a random token in PATH
(mode 600, git-ignored) and uses it, so a development server never runs open.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path

import uvicorn
from pydantic import ValidationError


def _say(message: str, level: str = "INFO") -> None:
    """A log line before logging is configured, in the same JSON shape."""
    print(json.dumps({"level": level, "logger": "preprocess_service", "message": message}), file=sys.stderr, flush=True)


def ensure_dev_token(path: Path) -> None:
    if os.environ.get("OCR_API_TOKENS") or os.environ.get("OCR_API_TOKENS_FILE"):
        return
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        _say(f"generated an API token in {path}")
    else:
        _say(f"using the API token in {path}")
    os.environ["OCR_API_TOKENS_FILE"] = str(path.resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="preprocess_service", description=__doc__)
    parser.add_argument("--dev-token-file", type=Path, help="create/use a token here when none is configured")
    args = parser.parse_args(argv)
    if args.dev_token_file:
        ensure_dev_token(args.dev_token_file)

    from .memory import fix_mmap_threshold, limit_arenas
    from .settings import get_settings

    try:
        settings = get_settings()
    except ValidationError as exc:  # say what is wrong, never the values (they may be secrets)
        problems = "; ".join(
            f"OCR_{'_'.join(str(p) for p in e['loc']).upper() or 'SETTINGS'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        _say(f"configuration error: {problems}", "ERROR")
        return 2
    from .auth import TokenStore

    try:  # the tokens are checked here too, so that a service without a usable one does not start
        TokenStore(settings.api_tokens, settings.api_tokens_file)
    except (RuntimeError, ValueError) as exc:  # the message names the rule or the file, never a token
        _say(f"configuration error: {exc}", "ERROR")
        return 2
    if settings.malloc_arena_max:  # before any thread starts
        limit_arenas(settings.malloc_arena_max)
    if settings.malloc_mmap_threshold_kib:
        fix_mmap_threshold(settings.malloc_mmap_threshold_kib * 1024)
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # set before any worker imports prometheus_client, so all of them share one directory
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ocr-metrics-")
    from .logs import log_config
    from .server import uvicorn_options

    # After a graceful shutdown uvicorn restores the previous SIGTERM handler and raises the
    # signal again: make that handler exit 0, so a SIGTERM'd server reports success.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "preprocess_service.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=log_config(settings.log_level),
        log_level=settings.log_level,
        access_log=False,  # one structured access line per request comes from RequestContext
        loop="uvloop",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
        **uvicorn_options(settings),  # h11 with a header cap and timeout, a connection ceiling
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
