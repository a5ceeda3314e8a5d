"""Keep secrets out of logs: credential-like query values are redacted in every logged URL."""

from __future__ import annotations

import logging
import re

SENSITIVE_PARAMS = ("key", "token", "access_token", "api_key", "apikey", "auth", "password", "secret")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:" + "|".join(SENSITIVE_PARAMS) + r")=)[^&#\s\"]*")


def redact_url(text: str) -> str:
    return _QUERY_SECRET.sub(r"\1[REDACTED]", text)


class RedactQuerySecrets(logging.Filter):
    """Rewrites a record's message arguments (uvicorn's access log passes the path as one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        return True


def install() -> None:
    for name in ("uvicorn.access", "uvicorn.error", "preprocess_service"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQuerySecrets) for f in logger.filters):
            logger.addFilter(RedactQuerySecrets())
