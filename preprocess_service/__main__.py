"""``python -m preprocess_service``: start the HTTP service with uvicorn.

With no token configured at all, ``--dev-token-file PATH`` creates a random token in PATH
(mode 600, git-ignored) and uses it, so a development server never runs open.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

import uvicorn


def ensure_dev_token(path: Path) -> None:
    if os.environ.get("OCR_API_TOKENS") or os.environ.get("OCR_API_TOKENS_FILE"):
        return
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        print(f"preprocess_service: generated an API token in {path}", file=sys.stderr)
    else:
        print(f"preprocess_service: using the API token in {path}", file=sys.stderr)
    os.environ["OCR_API_TOKENS_FILE"] = str(path.resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="preprocess_service", description=__doc__)
    parser.add_argument("--dev-token-file", type=Path, help="create/use a token here when none is configured")
    args = parser.parse_args(argv)
    if args.dev_token_file:
        ensure_dev_token(args.dev_token_file)

    from .settings import get_settings

    try:
        settings = get_settings()
    except Exception as exc:  # pydantic ValidationError: say what is wrong, without a traceback
        print(f"preprocess_service: configuration error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        "preprocess_service.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
