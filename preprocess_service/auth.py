"""Bearer-token checks. Tokens come from settings and/or a file (a mounted Kubernetes Secret).

Comparison is constant-time (``hmac.compare_digest`` on SHA-256 digests, always against every
configured token). The file is re-read when its modification time or size changes, so a
rotated Secret takes effect without a restart. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from pathlib import Path

from pydantic import SecretStr

log = logging.getLogger(__name__)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def read_token_file(path: Path) -> list[str]:
    """One token per line; blank lines and lines starting with # are ignored."""
    tokens = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            tokens.append(line)
    return tokens


class TokenStore:
    def __init__(self, tokens: list[SecretStr] | None = None, tokens_file: Path | None = None):
        self._static = [_digest(t.get_secret_value()) for t in (tokens or [])]
        self._file = Path(tokens_file) if tokens_file else None
        self._file_digests: list[bytes] = []
        self._file_stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        if self._file is not None:
            self._reload(initial=True)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._file)  # type: ignore[arg-type]
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reload(self, initial: bool = False) -> None:
        assert self._file is not None
        stamp = self._stamp()
        if stamp == self._file_stamp and not initial:
            return
        with self._lock:
            try:
                digests = [_digest(t) for t in read_token_file(self._file)]
            except OSError as exc:
                if initial:
                    raise RuntimeError(f"cannot read the token file {self._file}: {exc.strerror}") from None
                log.error("token file %s cannot be read (%s); keeping the previous tokens", self._file, exc.strerror)
                return
            self._file_digests = digests
            self._file_stamp = stamp
            if not initial:
                log.info("token file %s re-read: %d token(s)", self._file, len(digests))

    @property
    def count(self) -> int:
        return len(self._static) + len(self._file_digests)

    def verify(self, presented: str | None) -> bool:
        return self.identify(presented) is not None

    def identify(self, presented: str | None) -> str | None:
        """A stable, non-secret identity of the matching token (for rate limits), or None."""
        if not presented:
            return None
        if self._file is not None:
            self._reload()
        candidate = _digest(presented)
        ok = False
        for d in self._static + self._file_digests:
            ok |= hmac.compare_digest(candidate, d)  # no early exit: time does not depend on which matched
        return hashlib.sha256(b"id:" + candidate).hexdigest()[:16] if ok else None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
