"""Bearer-token checks. Tokens come from settings and/or a file (a mounted Kubernetes Secret).

Comparison is constant-time (``hmac.compare_digest`` on SHA-256 digests, always against every
configured token). The file is read as UTF-8 with what editors and other systems add normalised
away: a byte-order mark, CR (CRLF) line ends, spaces and tabs around a token; one warning names
the file and what was normalised (never a token). A rotated Secret takes effect without a
restart: the file is re-read at once when its modification time or size changes, and at the
latest every ``reload_interval_s`` seconds otherwise, and a rotation is recognised by a digest of
the file's CONTENT (a new secret of the same size written within the same mtime tick is not
missed). A deleted file revokes its tokens (an error in the log, once); a file that is there but
cannot be read, or holds a token that breaks the rules below, keeps the last good tokens, with one
warning until it is good again. A file that is readable but holds no token revokes its tokens too,
with an error in the log.

Every token is at least :data:`MIN_TOKEN_LENGTH` printable ASCII characters without spaces (what a
Bearer header can carry as sent); a service whose tokens break this, or that has no token at all
at start, refuses to start with a message that names the rule, never the token. Tokens are never
logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

log = logging.getLogger(__name__)

_BOM = "\ufeff"
MIN_TOKEN_LENGTH = 16
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space


def token_problem(token: str) -> str | None:
    """Why a token may not be used (in words, without the token), or None."""
    if not _TOKEN_CHARS.fullmatch(token):
        return "a token holds characters other than printable ASCII (spaces, control characters, non-ASCII)"
    if len(token) < MIN_TOKEN_LENGTH:
        return f"a token is shorter than {MIN_TOKEN_LENGTH} characters"
    return None
_LINE_END = re.compile(r"\r\n|\r|\n")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass
class TokenFileContent:
    tokens: list[str]
    normalised: list[str] = field(default_factory=list)  # what was cleaned up, in words (no token in them)


def parse_token_file(data: bytes) -> TokenFileContent:
    """One token per line; blank lines and lines starting with # are ignored. A UTF-8 BOM, CR
    characters (CRLF or CR line ends) and whitespace around a line are removed and reported."""
    text = data.decode("utf-8")  # UnicodeDecodeError (a ValueError) for anything else
    boms = text.count(_BOM)
    crs = text.count("\r")
    tokens, padded = [], 0
    for line in _LINE_END.split(text.replace(_BOM, "")):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            tokens.append(stripped)
            padded += stripped != line
    notes = []
    if boms:
        notes.append("a UTF-8 byte-order mark removed" if boms == 1 else f"{boms} byte-order marks removed")
    if crs:
        notes.append(f"{crs} CR character(s) (CRLF line ends) removed")
    if padded:
        notes.append(f"spaces/tabs around {padded} token(s) removed")
    return TokenFileContent(tokens, notes)


def read_token_file(path: Path) -> list[str]:
    """The tokens of a token file (see :func:`parse_token_file`)."""
    return parse_token_file(Path(path).read_bytes()).tokens


class TokenStore:
    def __init__(
        self,
        tokens: list[SecretStr] | None = None,
        tokens_file: Path | None = None,
        reload_interval_s: float = 1.0,
    ):
        for t in tokens or []:
            if problem := token_problem(t.get_secret_value()):
                raise ValueError(f"OCR_API_TOKENS: {problem}")
        self._static = [_digest(t.get_secret_value()) for t in (tokens or [])]
        self._file = Path(tokens_file) if tokens_file else None
        self.reload_interval_s = reload_interval_s
        self._file_digests: list[bytes] = []
        self._content_digest: bytes | None = None  # SHA-256 of the file's bytes as last read
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) as last read: a change re-reads at once
        self._next_read = 0.0  # monotonic time of the next periodic read
        self._failing = False  # a read failed and was reported; reported again only after a good read
        self._lock = threading.Lock()
        self._revoked = False  # the file's tokens were revoked (deleted or emptied) and reported
        if self._file is not None:
            self._reload(initial=True)
        if not self._static and not self._file_digests:
            raise RuntimeError("no API token: OCR_API_TOKENS is empty and "
                               + (f"the token file {self._file} holds none" if self._file else "no token file is set"))

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._file)  # type: ignore[arg-type]
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _due(self) -> bool:
        return time.monotonic() >= self._next_read or self._read_stamp() != self._stamp

    def _reload(self, initial: bool = False) -> None:
        assert self._file is not None
        if not initial and not self._due():
            return
        if not self._lock.acquire(blocking=initial):
            return  # another thread is reading it: use the tokens there are
        try:
            self._read(initial)
        finally:
            self._lock.release()

    def _read(self, initial: bool) -> None:
        assert self._file is not None
        self._next_read = time.monotonic() + self.reload_interval_s
        stamp = self._read_stamp()
        try:
            data = self._file.read_bytes()
        except FileNotFoundError:
            if initial:
                raise RuntimeError(f"cannot read the token file {self._file}: it does not exist") from None
            self._stamp = stamp
            self._revoke("was deleted")
            return
        except OSError as exc:
            self._keep(initial, exc.strerror or type(exc).__name__, stamp)
            return
        content_digest = hashlib.sha256(data).digest()
        self._stamp = stamp
        if content_digest == self._content_digest and not self._failing:
            return  # the same content (touched, or re-written as it was)
        try:
            parsed = parse_token_file(data)
        except ValueError:
            self._keep(initial, "it is not UTF-8 text", stamp)
            return
        problems = {p for t in parsed.tokens if (p := token_problem(t))}
        if problems:
            self._keep(initial, "; ".join(sorted(problems)), stamp)
            return
        if self._failing:
            self._failing = False
            log.info("token file %s is readable again", self._file)
        self._content_digest = content_digest
        if not parsed.tokens and not initial:
            self._revoke("holds no token")
            return
        self._file_digests = [_digest(t) for t in parsed.tokens]
        if parsed.normalised:
            log.warning("token file %s normalised: %s", self._file, "; ".join(parsed.normalised))
        if self._revoked:
            self._revoked = False
            log.warning("token file %s has tokens again: %d", self._file, len(self._file_digests))
        elif not initial:
            log.info("token file %s re-read: %d token(s)", self._file, len(self._file_digests))

    def _keep(self, initial: bool, why: str, stamp: tuple[int, int] | None) -> None:
        """The file is there but cannot be used: the last good tokens stay (a broken write must
        not lock every client out), with one warning until it is good again."""
        if initial:
            raise RuntimeError(f"cannot read the token file {self._file}: {why}")
        if not self._failing:
            self._failing = True
            log.warning("token file %s cannot be read (%s); keeping the previous tokens", self._file, why)
        self._stamp = stamp  # re-read when it changes or at the next interval
        self._content_digest = None

    def _revoke(self, what: str) -> None:
        """The file was deleted or emptied: its tokens no longer open anything."""
        self._file_digests = []
        self._content_digest = None
        if not self._revoked:
            self._revoked = True
            log.error("token file %s %s: its tokens are revoked; requests with them get 401%s", self._file, what,
                      "" if self._static else " (no other token is configured: every request does)")

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
