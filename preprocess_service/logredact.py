"""Keep secrets out of logs: credentials are redacted from every logged URL, message, extra field
and exception text.

Query strings are redacted on their PARSED parameters, the way the application reads them
(``urllib.parse.parse_qsl`` with blank values kept: names and values percent-decoded, ``+`` a
space, ``&`` the only separator), so ``?k%65y=T``, ``?%4B%45%59=T`` and ``?key=a+b`` lose their
values as ``?key=T`` does. A parameter is sensitive when its decoded name, NFKC-normalised,
case-folded and without control characters, spells one of :data:`SENSITIVE_PARAMS` in its letters
and digits alone (``KEY``, ``key%00``, ``api-key``) or ends in a sensitive word (``refresh_token``,
``x-api-key``; not ``monkey``). The query is rebuilt segment by segment: a sensitive value becomes
``[REDACTED]`` up to the next ``&`` (so a ``#`` inside it goes too: some servers keep it in the
query), everything else is kept as it was sent. A non-sensitive value is redacted as well when it
carries a secret: one of the sensitive values seen (``key=T&x=T``), or, decoded, a URL, query,
``;``-separated pair or header that would be redacted itself (``next=%2F%3Ftoken%3DT``). A
fragment (``#access_token=T``) is redacted like a query. Every sensitive value seen (6 characters
or more) is then removed wherever else it appears in the same record (the path, another
argument), as sent, decoded and percent-encoded.

Outside URLs the filter redacts ``Authorization``/``Cookie`` header lines, ``Bearer``/``Basic``
credentials, quoted pairs with a sensitive name (a dict's or a header list's repr:
``{'token': 'T'}``, ``(b'authorization', b'Bearer T')``) and ``name: value`` pairs with a
sensitive name. The log filter applies all of this to the message, its arguments (kept in their
places: uvicorn's access formatter unpacks them), a mapping argument, ``extra`` fields (whose
sensitive KEYS redact their values: ``extra={"token": T}``), the exception text and the stack.
When the formatted message still carries something to redact, it is replaced by its redacted
text. Redaction over-redacts rather than lets a secret through.

Cost is bounded per record: every logged string is cut to :data:`MAX_LOGGED_CHARS` (its head and
its tail) before it is redacted (a 16 KiB query string on any path, sent without a token, costs the cut's work, not the
patterns' over 16 KiB), and a record is redacted once, however many loggers and handlers carry the
filter (it sits on each, since a logger's filters do not see its children's records).
"""

from __future__ import annotations

import logging
import re
import unicodedata
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus

REDACTED = "[REDACTED]"

SENSITIVE_PARAMS = ("key", "token", "access_token", "api_key", "apikey", "auth", "password", "secret")
# names that are sensitive as a whole (letters and digits only, lower case) ...
_SENSITIVE_WHOLE = frozenset(
    {re.sub("[^a-z0-9]", "", p) for p in SENSITIVE_PARAMS}
    | {"authorization", "passwd", "pwd", "credential", "credentials", "cookie", "setcookie", "sessionid", "sig", "signature"}
)
# ... or by their last word (client_secret, x-api-key, refresh_token, key[]; 'monkey' is one word)
_SENSITIVE_LAST_WORD = frozenset(
    {"key", "token", "secret", "password", "passwd", "authorization", "credential", "credentials", "cookie",
     "signature", "apikey", "accesstoken"}
)
MAX_LOGGED_CHARS = 4096  # of one logged string (message, argument, extra field); the rest is cut before redaction
_MIN_SCRUB = 6  # a secret this long is removed anywhere in the record; shorter ones only as a whole value
_MAX_DEPTH = 4  # nested encodings looked into; deeper values that could carry one are redacted outright

_WORDS = re.compile(r"[a-z0-9]+")
_WHITESPACE = re.compile(r"([ \t\r\n\f\v]+)")  # ASCII only: a raw query may hold other bytes (latin-1)
# 'name': 'value' / "name": "value" / (b'name', b'value') / 'name'='value'
_QUOTED_PAIR = re.compile(
    r"""b?(?P<c1>['"])(?P<name>[^'"\r\n]{1,64})(?P=c1)\s*[:,=]\s*b?(?P<c2>['"])"""
    r"""(?P<value>(?:\\.|(?!(?P=c2))[^\\\r\n])*)(?P=c2)"""
)
_HEADER_LINE = re.compile(
    r"(?im)\b(?P<name>(?:proxy-)?authorization|(?:set-)?cookie|x-api-key|x-auth-token)[ \t]*[:=][ \t]*"
    r"(?P<value>[^\r\n'\"]+)"
)
_BEARER = re.compile(r"(?i)\bbearer[ \t]+(?P<value>[^\r\n'\"]+)")  # a bearer token may hold spaces: to the line's end
_BASIC = re.compile(r"(?i)\bbasic[ \t]+(?P<value>[A-Za-z0-9+/=._~-]{4,})")
_COLON_PAIR = re.compile(r"(?<![\w-])(?P<name>[A-Za-z][\w-]{0,63})[ \t]*:[ \t]*(?P<value>[^\s'\",;{}\[\]()]+)")


def is_sensitive_name(name: str) -> bool:
    """Whether a (decoded) parameter, header or field name names a credential."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    folded = "".join(ch for ch in folded if not unicodedata.category(ch).startswith("C"))  # NUL, BOM, zero-width
    words = _WORDS.findall(folded)
    return bool(words) and ("".join(words) in _SENSITIVE_WHOLE or words[-1] in _SENSITIVE_LAST_WORD)


def _replace_group(m: re.Match[str], group: str, by: str = REDACTED) -> str:
    start, end = m.start(group) - m.start(), m.end(group) - m.start()
    return m[0][:start] + by + m[0][end:]


class _Redaction:
    """One record's (or one string's) redaction: the sensitive values it has seen so far are
    removed from everything else in it by :meth:`scrub`."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()

    def _note(self, *values: str) -> None:
        for v in values:
            if v and v != REDACTED:
                self.secrets.add(v)

    # --- free text ---
    def text(self, text: str, depth: int = 0) -> str:
        if not text or depth > _MAX_DEPTH:
            return text
        text = _QUOTED_PAIR.sub(self._named("name", "value"), text)
        text = _HEADER_LINE.sub(self._always("value"), text)
        text = _BEARER.sub(self._always("value"), text)
        text = _BASIC.sub(self._always("value"), text)
        text = _COLON_PAIR.sub(self._named("name", "value"), text)
        parts = _WHITESPACE.split(text)
        return "".join(p if i % 2 else self._chunk(p, depth) for i, p in enumerate(parts))

    def _always(self, group: str) -> Callable[[re.Match[str]], str]:
        def sub(m: re.Match[str]) -> str:
            self._note(m[group].strip())
            return _replace_group(m, group)

        return sub

    def _named(self, name: str, group: str) -> Callable[[re.Match[str]], str]:
        def sub(m: re.Match[str]) -> str:
            if not m[group] or not is_sensitive_name(m[name]):
                return m[0]
            self._note(m[group])
            return _replace_group(m, group)

        return sub

    # --- URLs and queries ---
    def _chunk(self, s: str, depth: int) -> str:
        """One whitespace-free run: a URL, a path with a query, a bare ``a=b&c=d`` or a word."""
        if "?" in s:
            head, _, query = s.partition("?")
            return self._chunk(head, depth) + "?" + self._query(query, depth)
        if "#" in s:
            head, _, fragment = s.partition("#")
            return self._chunk(head, depth) + "#" + self._query(fragment, depth)
        if "=" in s:
            return self._query(s, depth)
        return s

    def _query(self, query: str, depth: int) -> str:
        segments = []
        for segment in query.split("&"):
            raw_name, eq, raw_value = segment.partition("=")
            pairs = parse_qsl(segment, keep_blank_values=True)  # the name and value as the application reads them
            name, value = pairs[0] if pairs else ("", "")
            sensitive = bool(eq and raw_value) and is_sensitive_name(name)
            if sensitive:
                self._note(value, raw_value)
            segments.append((segment, raw_name, value, sensitive))
        out = []
        for segment, raw_name, value, sensitive in segments:
            if sensitive or (value and self._carries_secret(value, depth)):
                out.append(f"{raw_name}={REDACTED}")
            else:
                out.append(segment)
        return "&".join(out)

    def _carries_secret(self, value: str, depth: int) -> bool:
        if value == REDACTED:
            return False
        if value in self.secrets or any(len(s) >= _MIN_SCRUB and s in value for s in self.secrets):
            return True
        if depth >= _MAX_DEPTH:
            return "=" in value or "%" in value or any(c.isspace() for c in value)
        for sub in re.split("[;&]", value):  # ';'-separated pairs (other servers split on ';')
            name, eq, rest = sub.partition("=")
            if eq and rest and is_sensitive_name(unquote_plus(name)):
                return True
        return self.text(value, depth + 1) != value

    def scrub(self, text: str) -> str:
        for s in sorted(self.secrets, key=len, reverse=True):
            if len(s) >= _MIN_SCRUB:
                for form in {s, quote(s, safe=""), quote_plus(s, safe=""), quote(s)}:
                    text = text.replace(form, REDACTED)
        return text

    def full(self, text: str) -> str:
        return self.scrub(self.text(text))

    # --- structured values (arguments, extra fields) ---
    def value(self, v: Any, key: Any = None, depth: int = 0) -> Any:
        if isinstance(key, str) and is_sensitive_name(key) and v not in (None, "", b""):
            if isinstance(v, str | bytes):
                self._note(v if isinstance(v, str) else v.decode("latin-1"))
            return REDACTED
        if v is None or isinstance(v, bool | int | float):
            return v
        if isinstance(v, str):
            return self.text(v)
        if depth < _MAX_DEPTH:
            if isinstance(v, Mapping):
                return {k: self.value(x, k, depth + 1) for k, x in v.items()}
            if isinstance(v, list | tuple | set | frozenset):
                items = [self.value(x, None, depth + 1) for x in v]
                return items if isinstance(v, list) else tuple(items)
        try:  # any other object is logged through str() or repr()
            shown, represented = str(v), repr(v)
        except Exception:
            return "<unprintable>"
        for form in (shown, represented):
            redacted = self.text(form)
            if redacted != form:
                return redacted
        return v

    def scrub_value(self, v: Any, depth: int = 0) -> Any:
        if isinstance(v, str):
            return self.scrub(v)
        if depth < _MAX_DEPTH:
            if isinstance(v, dict):
                return {k: self.scrub_value(x, depth + 1) for k, x in v.items()}
            if isinstance(v, list | tuple):
                items = [self.scrub_value(x, depth + 1) for x in v]
                return items if isinstance(v, list) else tuple(items)
        return v


def redact_url(text: str) -> str:
    """``text`` (a URL, a path with its query, or any message) without credentials."""
    return _Redaction().full(text)


redact = redact_url

_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_EXCEPTION_FORMATTER = logging.Formatter()


_TAIL_CHARS = MAX_LOGGED_CHARS // 4
_TAIL_START = re.compile(r"[&;\s]")


def _cut(v: Any) -> Any:
    """A long string keeps its head and its tail (an exception's message comes last in its
    traceback); the tail starts after a separator, so that it never begins inside a value whose
    name was cut away (such a value could not be recognised as a secret)."""
    if isinstance(v, str) and len(v) > MAX_LOGGED_CHARS:
        head = v[:MAX_LOGGED_CHARS - _TAIL_CHARS]
        tail = v[-_TAIL_CHARS:]
        m = _TAIL_START.search(tail)
        tail = tail[m.end():] if m else ""
        return f"{head}...[{len(v) - len(head) - len(tail)} characters cut]...{tail}"
    if isinstance(v, bytes) and len(v) > MAX_LOGGED_CHARS:
        return v[:MAX_LOGGED_CHARS] + b"...[cut]"
    return v


def _redact_record(record: logging.LogRecord) -> None:
    r = _Redaction()
    # cut first: the patterns below then see at most MAX_LOGGED_CHARS of each string
    record.msg = _cut(record.msg)
    if isinstance(record.args, Mapping):
        record.args = {k: _cut(v) for k, v in record.args.items()}
    elif isinstance(record.args, tuple):
        record.args = tuple(_cut(a) for a in record.args)
    if isinstance(record.args, Mapping):
        record.args = {k: r.value(v, k) for k, v in record.args.items()}
    elif isinstance(record.args, tuple):
        record.args = tuple(r.value(a) for a in record.args)
    if not isinstance(record.msg, str):
        record.msg = r.value(record.msg)
    elif not record.args:
        record.msg = r.text(record.msg)
    extras = [k for k in record.__dict__ if k not in _STANDARD_ATTRS]
    for k in extras:
        record.__dict__[k] = r.value(_cut(record.__dict__[k]), k)
    if record.exc_info or record.exc_text:
        shown = record.exc_text or _EXCEPTION_FORMATTER.formatException(record.exc_info)  # type: ignore[arg-type]
        redacted = r.text(shown)
        if redacted != shown:
            # formatters (python-json-logger among them) re-format exc_info themselves: drop it
            record.exc_info, record.exc_text = None, redacted
    if record.stack_info:
        record.stack_info = r.text(record.stack_info)
    if "message" in record.__dict__ and isinstance(record.message, str):
        record.message = r.text(record.message)

    if r.secrets:  # what was found anywhere goes everywhere else too
        if isinstance(record.msg, str):
            record.msg = r.scrub(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {k: r.scrub_value(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(r.scrub_value(a) for a in record.args)
        for k in extras:
            record.__dict__[k] = r.scrub_value(record.__dict__[k])
        for attr in ("exc_text", "stack_info", "message"):
            if isinstance(record.__dict__.get(attr), str):
                record.__dict__[attr] = r.scrub(record.__dict__[attr])

    # the message as formatted: arguments may combine into something to redact ("?%s=%s")
    try:
        formatted = record.getMessage()
    except Exception:  # a bad format: the handler reports msg and args, so the format string goes too
        if isinstance(record.msg, str):
            record.msg = r.full(record.msg)
        return
    redacted = r.full(formatted)
    if redacted != formatted and record.name != "uvicorn.access":  # uvicorn's access formatter unpacks args
        record.msg, record.args = redacted, None


# records already redacted (by the filter of a logger or handler they passed before)
_DONE: weakref.WeakSet[logging.LogRecord] = weakref.WeakSet()


class RedactQuerySecrets(logging.Filter):
    """Redacts a record's message, arguments, extra fields, exception and stack text in place, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record in _DONE:
            return True
        try:
            _DONE.add(record)
            _redact_record(record)
        except Exception as exc:  # a record that cannot be redacted is not written as it was
            record.msg, record.args = "log record withheld: the redaction filter failed (%s)", (type(exc).__name__,)
            record.exc_info = record.exc_text = record.stack_info = None
            for k in [k for k in record.__dict__ if k not in _STANDARD_ATTRS]:
                record.__dict__[k] = REDACTED
        return True


_PREFIXES = ("uvicorn", "preprocess_service")


def install() -> None:
    """The filter on uvicorn's and the service's loggers. A logger's filters do not see its
    children's records, so every child logger existing now gets one too, and so do their handlers
    and the root logger's (they see the records children propagate)."""
    names = {"uvicorn", "uvicorn.access", "uvicorn.error", "preprocess_service", "preprocess_service.access"}
    names |= {n for n in logging.root.manager.loggerDict if n.split(".")[0] in _PREFIXES}
    targets: list[logging.Filterer] = list(logging.getLogger().handlers)
    for name in sorted(names):
        logger = logging.getLogger(name)
        targets.append(logger)
        targets.extend(logger.handlers)
    for target in targets:
        if not any(isinstance(f, RedactQuerySecrets) for f in target.filters):
            target.addFilter(RedactQuerySecrets())
