"""Secrets stay out of logs (query values in any encoding, Authorization headers, exception text)
and the token file is read robustly (BOM, CRLF, spaces; rotation by content; a file that goes
away keeps the last good tokens).

Everything here is real: real log records through real handlers and formatters, Starlette's own
query parsing as the reference for what the application accepts, real files on disk.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import os
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from pythonjsonlogger.json import JsonFormatter
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from preprocess_service import logredact
from preprocess_service.api.context import RequestContext
from preprocess_service.auth import TokenStore, parse_token_file
from preprocess_service.logredact import REDACTED, RedactQuerySecrets, is_sensitive_name, redact_url
from preprocess_service.logs import RequestIdFilter

TOKEN = "tok-9f8e7d6c5b4a"
AUTH_LOGGER = "preprocess_service.auth"


def forms(secret: str) -> set[str]:
    """The ways a secret could show up in a log line."""
    return {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret), json.dumps(secret)[1:-1]}


def assert_absent(secret: str, text: str) -> None:
    for form in forms(secret):
        assert form not in text, f"{form!r} leaked into {text!r}"


# --- redaction of URLs --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("/image_label?k%65y=" + TOKEN, TOKEN),  # a percent-encoded NAME (Starlette decodes it)
        ("/image_label?%4B%45%59=" + TOKEN, TOKEN),  # all of it encoded, upper case
        ("/image_label?%6b%65%79=" + TOKEN, TOKEN),  # lower-case hex
        ("/image_label?KEY=" + TOKEN, TOKEN),
        ("/image_label?key%00=" + TOKEN, TOKEN),  # a NUL after the name
        ("/image_label?key+=" + TOKEN, TOKEN),  # '+' is a space in a name
        ("/image_label?x=1&key=tok+with+plus", "tok with plus"),  # '+' in the token
        ("/image_label?key=tok%2Bplus%2Fslash", "tok+plus/slash"),
        ("/image_label?key=" + TOKEN + "#frag", TOKEN),
        ("/image_label?key=" + TOKEN + "#frag&x=1", TOKEN),
        ("/cb#access_token=" + TOKEN, TOKEN),  # a fragment carrying a token
        ("/x?=&&key=" + TOKEN + "&=", TOKEN),  # malformed around it
        ("/x?key==" + TOKEN, "=" + TOKEN),
        ("/x?a=1;key=" + TOKEN, TOKEN),  # ';' is not Starlette's separator, but some servers split on it
        ("/x?next=%2Fcb%3Ftoken%3D" + TOKEN, TOKEN),  # a URL inside a value
        ("/x?api-key=" + TOKEN, TOKEN),
        ("/x?refresh_token=" + TOKEN, TOKEN),
        ("/x?Authorization=Bearer%20" + TOKEN, TOKEN),
        ("https://user@host:8443/x?sig=" + TOKEN + "&page=2", TOKEN),
    ],
)
def test_sensitive_values_are_redacted_whatever_the_encoding(url, secret):
    out = redact_url(url)
    assert_absent(secret, out)
    assert REDACTED in out


def test_the_existing_layout_is_kept():
    assert redact_url("/image_label?key=s3cr3t&x=1") == "/image_label?key=[REDACTED]&x=1"
    assert redact_url("/image_label?k%65y=s3cr3t&x=1") == "/image_label?k%65y=[REDACTED]&x=1"
    assert redact_url("/x?a=1&Token=abc") == "/x?a=1&Token=[REDACTED]"
    for harmless in ("/x?monkey=1", "/x?a=1&b=%2F&c=+", "/x?=&&key", "/x?key=", "/v1/ocr", "/x#top", "x=1 y=2",
                     "ready: backend=fake models={'det': 'm'} tokens=2"):
        assert redact_url(harmless) == harmless


def test_repeated_parameters_and_a_value_repeated_under_another_name():
    out = redact_url(f"/x?key={TOKEN}&key=second-tok-77&page=2")
    assert_absent(TOKEN, out)
    assert_absent("second-tok-77", out)
    assert out == "/x?key=[REDACTED]&key=[REDACTED]&page=2"
    out = redact_url(f"/x?key={TOKEN}&note={TOKEN}")  # the same value under a harmless name
    assert out == "/x?key=[REDACTED]&note=[REDACTED]"
    out = redact_url("/x?key=ab&copy=ab&page=2")  # short secrets too, as a whole value
    assert out == "/x?key=[REDACTED]&copy=[REDACTED]&page=2"
    out = redact_url(f"/files/{TOKEN}/x?key={TOKEN}")  # and elsewhere in the same line
    assert_absent(TOKEN, out)


def test_every_encoding_starlette_accepts_as_key_is_redacted():
    """For each spelling of the name 'key' (every letter raw, upper case or percent-encoded in
    either hex case) and of the value: if Starlette reads it as ``key``, the log does not show it."""
    spellings = [[c, c.upper(), f"%{ord(c):02x}", f"%{ord(c):02X}", f"%{ord(c.upper()):02X}"] for c in "key"]
    token = "a+b/c=d%26e"  # '+' (a space), '/', '=', an encoded '&'
    accepted = 0
    for letters in itertools.product(*spellings):
        url = "/image_label?x=1&" + "".join(letters) + "=" + token
        query = url.split("?", 1)[1]
        value = QueryParams(query).get("key")
        if value is not None:
            accepted += 1
            assert value == "a b/c=d&e"
        out = redact_url(url)
        for secret in (token, "a b/c=d&e", "c=d"):
            assert_absent(secret, out)
    assert accepted == 3 * 3 * 3  # the lower-case letter, raw or encoded, is what Starlette takes


def test_sensitive_names():
    for name in ("key", "KEY", "Key ", " key", "key\x00", "ke\u200by", "ｋｅｙ", "api_key", "x-api-key", "access_token",
                 "client_secret", "Authorization", "key[]", "password",
                 # every name docs/security.md lists, bare
                 "token", "apikey", "auth", "secret"):
        assert is_sensitive_name(name), name
    for name in ("monkey", "keyboard", "page", "tokens_used", "", "=", "auth_mode"):
        assert not is_sensitive_name(name), name


def test_headers_and_credentials_in_free_text():
    cases = [
        f"Authorization: Bearer {TOKEN}",
        f"authorization=Basic {TOKEN}",
        f"headers={{'host': 'h', 'authorization': 'Bearer {TOKEN}'}}",
        f"[(b'host', b'h'), (b'authorization', b'Bearer {TOKEN}')]",
        f'{{"token": "{TOKEN}", "n": 1}}',
        f"QueryParams('key={TOKEN}')",
        f"illegal request line: bytearray(b'GET /image_label?k%65y={TOKEN} HTTP/1.1\\r\\n')",
        f"token: {TOKEN}",
        f"Bearer {TOKEN} with a space",
    ]
    for text in cases:
        out = redact_url(text)
        assert_absent(TOKEN, out)
        assert REDACTED in out


# --- redaction through the logging filter -------------------------------------------------------

def json_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger with the service's own handler set-up (logs.log_config): JSON formatter, request id
    and redaction filters on the handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", json_ensure_ascii=False))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactQuerySecrets())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_filter_redacts_args_extra_and_mapping_args():
    logger, stream = json_logger("preprocess_service.test_redaction.args")
    path = f"/image_label?k%65y={TOKEN}&x=1"
    logger.info("%s %s %d", "POST", path, 200, extra={"path": path, "headers": {"authorization": f"Bearer {TOKEN}"},
                                                     "token": TOKEN, "note": f"from {path}"})
    logger.info("%(method)s %(path)s", {"method": "GET", "path": path})
    logger.info(f"unformatted {path}")
    logger.warning("combined: %s?%s=%s", "/image_label", "key", TOKEN)  # the pieces alone look harmless
    out = stream.getvalue()
    assert_absent(TOKEN, out)
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["message"] == "POST /image_label?k%65y=[REDACTED]&x=1 200"
    assert lines[0]["path"] == "/image_label?k%65y=[REDACTED]&x=1"
    assert lines[0]["headers"] == {"authorization": REDACTED} and lines[0]["token"] == REDACTED
    assert lines[1]["message"] == "GET /image_label?k%65y=[REDACTED]&x=1"
    assert lines[2]["message"] == "unformatted /image_label?k%65y=[REDACTED]&x=1"
    assert lines[3]["message"] == "combined: /image_label?key=[REDACTED]"


def test_filter_redacts_exception_text_and_stack():
    logger, stream = json_logger("preprocess_service.test_redaction.exc")
    url = f"http://ocr.example/image_label?key={TOKEN}"
    request = httpx.Request("GET", url, headers={"Authorization": f"Bearer {TOKEN}x"})
    try:
        httpx.Response(401, request=request).raise_for_status()  # httpx's own message names the URL
    except httpx.HTTPStatusError:
        logger.exception("upstream failed")
    try:
        raise ValueError(f"bad headers {dict(request.headers)!r}")
    except ValueError:
        logger.error("bad request", exc_info=True, stack_info=True)
    out = stream.getvalue()
    assert_absent(TOKEN, out)
    assert_absent(TOKEN + "x", out)
    first, second = (json.loads(line) for line in out.splitlines())
    assert "HTTPStatusError" in first["exc_info"] and "key=[REDACTED]" in first["exc_info"]
    assert "ValueError" in second["exc_info"] and "'authorization': '[REDACTED]'" in second["exc_info"]


def test_a_plain_formatter_sees_the_redacted_exception_too():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactQuerySecrets())
    logger = logging.getLogger("preprocess_service.test_redaction.plain")
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        raise RuntimeError(f"GET /image_label?%4B%45%59={TOKEN} failed")
    except RuntimeError:
        logger.exception("handler crashed for %s", f"/image_label?%4B%45%59={TOKEN}")
    out = stream.getvalue()
    assert_absent(TOKEN, out)
    assert "RuntimeError: GET /image_label?%4B%45%59=[REDACTED] failed" in out


def test_install_covers_child_loggers():
    """A logger's filter does not see its children's records: install() puts one on each."""
    child = logging.getLogger("preprocess_service.test_redaction.child")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    child.handlers[:] = [handler]
    child.propagate = False
    child.setLevel(logging.INFO)
    logredact.install()
    child.info("GET %s", f"/image_label?k%65y={TOKEN}")
    assert stream.getvalue().strip() == "GET /image_label?k%65y=[REDACTED]"
    logredact.install()  # idempotent
    assert sum(isinstance(f, RedactQuerySecrets) for f in child.filters) == 1
    assert sum(isinstance(f, RedactQuerySecrets) for f in handler.filters) == 1


def test_the_access_log_of_a_request_with_an_encoded_key():
    """The hostile request end to end: Starlette reads ``k%65y`` as ``key``; the access log line
    (RequestContext, the service's outermost middleware) shows no token."""
    seen = []

    async def image_label(request: Request) -> PlainTextResponse:
        seen.append(request.query_params.get("key"))
        return PlainTextResponse("ok")

    app = RequestContext(Starlette(routes=[Route("/image_label", image_label, methods=["POST"])]))
    logger, stream = json_logger("preprocess_service.access")

    async def send() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.post(f"/image_label?x=1&k%65y={TOKEN}", content=b"{}")
            return r.status_code

    try:
        assert asyncio.run(send()) == 200
    finally:
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    assert seen == [TOKEN]  # the application took it as the key
    out = stream.getvalue()
    assert_absent(TOKEN, out)
    line = json.loads(out.splitlines()[-1])
    assert line["path"] == "/image_label?x=1&k%65y=[REDACTED]"
    assert line["message"] == "POST /image_label?x=1&k%65y=[REDACTED] 200"


# --- the token file ------------------------------------------------------------------------------

@pytest.fixture
def auth_log(caplog):
    caplog.set_level(logging.INFO, logger=AUTH_LOGGER)
    return caplog


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == AUTH_LOGGER and r.levelno == logging.WARNING]


def all_log_text(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"\xef\xbb\xbf" + TOKEN.encode() + b"\n", "byte-order mark"),
        (b"\xef\xbb\xbf" + TOKEN.encode(), "byte-order mark"),
        (b"# tokens\r\n" + TOKEN.encode() + b"\r\nsecond-token-555\r\n", "CR character"),
        (b" \t" + TOKEN.encode() + b"  \nsecond-token-555\t\n", "spaces/tabs around 2 token(s)"),
    ],
)
def test_token_file_is_normalised_with_one_warning(tmp_path, auth_log, content, what):
    f = tmp_path / "tokens"
    f.write_bytes(content)
    store = TokenStore(tokens_file=f)
    assert store.verify(TOKEN)
    assert not store.verify("\ufeff" + TOKEN) and not store.verify(TOKEN + "\r")
    for _ in range(3):
        store.verify(TOKEN)
    warnings = warnings_of(auth_log)
    assert len(warnings) == 1, warnings
    assert str(f) in warnings[0] and what in warnings[0]
    assert_absent(TOKEN, all_log_text(auth_log))
    assert_absent("second-token-555", all_log_text(auth_log))


def test_a_clean_token_file_warns_nothing(tmp_path, auth_log):
    f = tmp_path / "tokens"
    f.write_text(f"# comment\n{TOKEN}\n\n")
    store = TokenStore(tokens_file=f)
    assert store.verify(TOKEN) and store.count == 1
    assert warnings_of(auth_log) == []


def test_parse_token_file_reports_in_words_without_tokens():
    parsed = parse_token_file(b"\xef\xbb\xbf a \r\n# c\r\n\r\nb\r\n")
    assert parsed.tokens == ["a", "b"]
    assert parsed.normalised == ["a UTF-8 byte-order mark removed", "4 CR character(s) (CRLF line ends) removed",
                                 "spaces/tabs around 1 token(s) removed"]


def rewrite_keeping_stamp(path: Path, content: bytes) -> None:
    """A rotation the old (mtime, size) check could not see: same size, mtime set back."""
    before = os.stat(path)
    assert len(content) == before.st_size
    path.write_bytes(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)


def test_same_size_rotation_in_the_same_mtime_is_noticed_by_content(tmp_path, monkeypatch):
    f = tmp_path / "tokens"
    old, new = "old-secret-000001", "new-secret-000002"
    f.write_text(old + "\n")
    clock = [1000.0]
    monkeypatch.setattr("preprocess_service.auth.time.monotonic", lambda: clock[0])
    store = TokenStore(tokens_file=f, reload_interval_s=1.0)
    assert store.verify(old)
    rewrite_keeping_stamp(f, (new + "\n").encode())
    clock[0] += 0.5
    assert store.verify(old) and not store.verify(new)  # within the interval: not re-read yet
    clock[0] += 0.6
    assert store.verify(new) and not store.verify(old)  # the interval passed: re-read, new content


def test_same_size_rotation_with_the_real_clock(tmp_path):
    f = tmp_path / "tokens"
    old, new = "old-secret-000001", "new-secret-000002"
    f.write_text(old + "\n")
    store = TokenStore(tokens_file=f, reload_interval_s=0.2)
    assert store.verify(old)
    rewrite_keeping_stamp(f, (new + "\n").encode())
    deadline = time.monotonic() + 3
    while not store.verify(new):
        assert time.monotonic() < deadline, "the rotated token was never picked up"
        time.sleep(0.05)
    assert not store.verify(old)


def test_default_interval_keeps_old_callers_working(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("alpha-0123456789-token\n")
    store = TokenStore(None, f)  # positional, as api/app.py calls it
    assert store.reload_interval_s == 1.0 and store.verify("alpha-0123456789-token")


def test_unreadable_file_keeps_the_last_tokens_and_warns_once(tmp_path, auth_log, monkeypatch):
    f = tmp_path / "tokens"
    f.write_text(TOKEN + "\n")
    clock = [1000.0]
    monkeypatch.setattr("preprocess_service.auth.time.monotonic", lambda: clock[0])
    store = TokenStore(tokens_file=f, reload_interval_s=1.0)
    f.write_bytes(b"\xff\xfe not utf-8")  # a broken write: unreadable as text
    for _ in range(3):
        clock[0] += 2
        assert store.verify(TOKEN)  # the last good tokens
    f.write_text("short\n")  # breaks the rules: kept as well
    clock[0] += 2
    assert store.verify(TOKEN) and not store.verify("short")
    warnings = warnings_of(auth_log)
    assert len(warnings) == 1 and "not UTF-8" in warnings[0] and str(f) in warnings[0]
    f.write_text(TOKEN + "\n")  # good again: a later failure is reported again
    clock[0] += 2
    assert store.verify(TOKEN)
    f.write_text("tok\u00e9n-with-an-accent-0123\n")
    clock[0] += 2
    assert store.verify(TOKEN)
    warnings = warnings_of(auth_log)
    assert len(warnings) == 2 and "printable ASCII" in warnings[1]
    assert_absent(TOKEN, all_log_text(auth_log))


def test_a_deleted_or_emptied_token_file_revokes_its_tokens(tmp_path, auth_log, monkeypatch):
    """Deleting the file (or emptying it) is how an operator takes its tokens back: they stop
    working at the next read, and the log says so once, as an error."""
    f = tmp_path / "tokens"
    f.write_text(TOKEN + "\n")
    clock = [1000.0]
    monkeypatch.setattr("preprocess_service.auth.time.monotonic", lambda: clock[0])
    store = TokenStore(tokens_file=f, reload_interval_s=1.0)
    assert store.verify(TOKEN)
    f.unlink()
    for _ in range(3):
        clock[0] += 2
        assert not store.verify(TOKEN)
    errors = [r.getMessage() for r in auth_log.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "deleted" in errors[0] and "revoked" in errors[0]
    f.write_text(TOKEN + "\n")
    clock[0] += 2
    assert store.verify(TOKEN)
    f.write_text("# nothing left\n")
    clock[0] += 2
    assert not store.verify(TOKEN)
    errors = [r.getMessage() for r in auth_log.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and "holds no token" in errors[1]
    assert_absent(TOKEN, all_log_text(auth_log))


@pytest.mark.parametrize(("tokens", "content", "message"), [
    ([], b"", "holds none"),
    ([], b"# only a comment\n", "holds none"),
    ([], b"short-token\n", "shorter than 16"),
    ([], "t\u00f6ken-0123456789abcdef\n".encode(), "printable ASCII"),
    (["fine-token-0123456789", "tiny"], None, "shorter than 16"),
    (["with space 0123456789"], None, "printable ASCII"),
])
def test_a_service_with_no_usable_token_does_not_start(tmp_path, tokens, content, message):
    """An empty token file must not start a service that refuses everyone in silence, and no token
    below the rules is taken; the message names the rule, never the token."""
    from pydantic import SecretStr

    f = None
    if content is not None:
        f = tmp_path / "tokens"
        f.write_bytes(content)
    with pytest.raises((RuntimeError, ValueError), match=message) as err:
        TokenStore([SecretStr(t) for t in tokens], f)
    for t in tokens:
        assert t not in str(err.value)
    assert "0123456789abcdef" not in str(err.value)


def test_a_directory_in_place_of_the_file_keeps_the_tokens(tmp_path, auth_log, monkeypatch):
    f = tmp_path / "tokens"
    f.write_text(TOKEN + "\n")
    clock = [1000.0]
    monkeypatch.setattr("preprocess_service.auth.time.monotonic", lambda: clock[0])
    store = TokenStore(tokens_file=f)
    f.unlink()
    f.mkdir()  # a read error other than 'missing' (EISDIR), whatever user runs the tests
    clock[0] += 2
    assert store.verify(TOKEN) and store.verify(TOKEN)
    assert len(warnings_of(auth_log)) == 1


def test_unreadable_file_at_start_still_fails(tmp_path):
    with pytest.raises(RuntimeError, match="cannot read the token file"):
        TokenStore(tokens_file=tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(RuntimeError, match="not UTF-8"):
        TokenStore(tokens_file=bad)


def test_a_record_is_cut_then_redacted_once_however_many_filters_it_meets(monkeypatch):
    """A record meets the filter on its logger, on each handler and on the root's handlers: it is
    redacted at the first and passed by the others. Each logged string is cut to MAX_LOGGED_CHARS
    first; a secret inside the kept part is still redacted, one beyond it is gone with the cut."""
    calls = []
    real = logredact._redact_record
    monkeypatch.setattr(logredact, "_redact_record", lambda record: (calls.append(record), real(record)))
    stream = io.StringIO()
    logger = logging.getLogger("preprocess_service.test_once")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handlers = [logging.StreamHandler(stream) for _ in range(2)]
    for h in handlers:
        h.addFilter(logredact.RedactQuerySecrets())
        logger.addHandler(h)
    logger.addFilter(logredact.RedactQuerySecrets())
    try:
        tail_secret = "T" * 30
        long_query = "/nope?token=" + "S" * 30 + "&" + "a=b&" * 4000 + f"key={tail_secret}"
        logger.info('"%s %s"', "POST", long_query)
        assert len(calls) == 1
        lines = stream.getvalue().splitlines()
        assert len(lines) == 2 and lines[0] == lines[1]
        assert "S" * 30 not in lines[0] and "token=[REDACTED]" in lines[0]
        assert tail_secret not in lines[0] and "characters cut" in lines[0]  # in the tail, yet redacted
        assert "key=[REDACTED]" in lines[0]
        assert len(lines[0]) < logredact.MAX_LOGGED_CHARS + 100
        # the tail never starts inside a value whose name was cut away
        cut = logredact._cut("a=b&" * 2000 + "k=" + "Z" * 2000)
        assert "Z" not in cut and cut.startswith("a=b&")
        trace = "Traceback (most recent call last):\n" + "  File x, line 1\n" * 500 + "RuntimeError: the reason"
        assert logredact._cut(trace).endswith("RuntimeError: the reason")
        logger.info("short %s", "/x?token=abcdefgh")
        assert len(calls) == 2 and "abcdefgh" not in stream.getvalue()
    finally:
        for h in handlers:
            logger.removeHandler(h)


def test_a_token_is_compared_against_every_configured_token_in_constant_time(monkeypatch):
    """Each presented token is compared (hmac.compare_digest, on SHA-256 digests) with every
    configured token, the match or not: no early exit whose timing tells which matched."""
    import hmac

    from pydantic import SecretStr

    from preprocess_service import auth

    tokens = [f"token-number-{i}-0123456789abcdef" for i in range(5)]
    store = TokenStore([SecretStr(t) for t in tokens], None)
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    for presented in (tokens[0], tokens[4], "not-a-token-0123456789abcdef", "x"):
        calls.clear()
        store.identify(presented)
        assert len(calls) == len(tokens), (presented, calls)
        assert all(a == b == 32 for a, b in calls)  # digests, whatever the presented length
