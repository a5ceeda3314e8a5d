"""`ocr send`: Retry-After in both of RFC 9110's forms (delay-seconds, HTTP-date), and progress
only on a terminal. The retry loop runs against a real HTTP server on 127.0.0.1 (http.server in a
thread) that refuses each file once with 503 and a date-form Retry-After, then answers like /v1/ocr."""

from __future__ import annotations

import email.utils
import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from preprocess_service.cli import DEFAULT_RETRY_AFTER_S, Progress, retry_after_seconds

OCR = str(Path(sys.executable).parent / "ocr")
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


# --- the Retry-After parser ---------------------------------------------------------------------


@pytest.mark.parametrize("value,seconds", [("0", 0.0), ("5", 5.0), ("2.5", 2.5), (" 7 ", 7.0),
                                           ("120", 30.0),  # clamped to max_wait
                                           ("-3", 0.0)])
def test_delay_seconds(value, seconds):
    assert retry_after_seconds(value, max_wait=30, now=NOW) == seconds


@pytest.mark.parametrize("value,seconds", [
    ("Thu, 01 Jan 2026 12:00:07 GMT", 7.0),        # IMF-fixdate, the preferred form
    ("Thursday, 01-Jan-26 12:00:09 GMT", 9.0),     # obsolete RFC 850 form
    ("Thu Jan  1 12:00:04 2026", 4.0),             # obsolete asctime form (no zone: GMT)
    ("Thu, 01 Jan 2026 12:00:03 -0000", 3.0),
    ("Thu, 01 Jan 2026 13:00:03 +0100", 3.0),      # a zone other than GMT, converted
    ("Thu, 01 Jan 2026 11:59:00 GMT", 0.0),        # already past: no wait
    ("Fri, 31 Dec 9999 23:59:59 GMT", 30.0),       # far future: clamped to max_wait
])
def test_http_date(value, seconds):
    assert retry_after_seconds(value, max_wait=30, now=NOW) == seconds


def test_http_date_against_the_real_clock():
    value = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8.0 <= retry_after_seconds(value, max_wait=30) <= 10.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "Mon, 99 Foo 2026 12:00:00 GMT",
                                   "Thu, 01 Jan 2026 25:00:07 GMT", "Thu, 01 Jan 99999 12:00:07 GMT",
                                   "nan", "inf", "-inf", "1e999", "12 seconds", "\x00"])
def test_garbage_gives_the_default(value):
    assert retry_after_seconds(value, max_wait=30, now=NOW) == DEFAULT_RETRY_AFTER_S
    assert retry_after_seconds(value, max_wait=30, default=4.0, now=NOW) == 4.0
    assert retry_after_seconds(value, max_wait=0.5, default=4.0, now=NOW) == 0.5  # the default is clamped too


# --- a tiny real server ---------------------------------------------------------------------------


def _ocr_answer(name: str) -> dict:
    """Shaped like the service's /v1/ocr (one image on /v1/ocr/upload) answer."""
    return {"lines": [{"text": f"text of {name}", "confidence": 0.97, "box": [[4, 5], [90, 5], [90, 30], [4, 30]]}],
            "text": f"text of {name}", "width": 100, "height": 40,
            "model": {"backend": "onnxruntime", "det": "ppocrv6_small_det", "rec": "ppocrv6_small_rec", "cls": None,
                      "execution_providers": {"det": "CPUExecutionProvider", "rec": "CPUExecutionProvider"}},
            "timings_ms": {"total": 12.5}, "page": None, "source": name}


class FakeOCR(BaseHTTPRequestHandler):
    """POST /v1/ocr/upload: the first request for each file name is refused with 503 and a
    Retry-After HTTP-date server.retry_in seconds ahead (unless server.refuse_first is False);
    the next ones answer 200."""

    protocol_version = "HTTP/1.1"

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    return data
                data += chunk
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _json(self, status: int, obj: dict, headers: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        body = self._body()
        srv = self.server
        name = re.search(rb'filename="([^"]+)"', body).group(1).decode()
        assert self.path == "/v1/ocr/upload" and self.headers["Authorization"] == f"Bearer {srv.token}"
        with srv.lock:
            seen = srv.requests.setdefault(name, [])
            seen.append(time.monotonic())
            refuse = srv.refuse_first and len(seen) == 1
        if refuse:
            when = datetime.now(UTC) + timedelta(seconds=srv.retry_in)
            self._json(503, {"error": {"code": "overloaded", "message": "busy, come back later"}},
                       {"Retry-After": email.utils.format_datetime(when, usegmt=True)})
        else:
            self._json(200, _ocr_answer(name))

    def log_message(self, *args):
        pass


@pytest.fixture()
def fake_ocr():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeOCR)
    srv.daemon_threads = True
    srv.token, srv.retry_in, srv.refuse_first = "fake-token-0123456789", 2, True
    srv.lock, srv.requests = threading.Lock(), {}
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _folder(tmp_path, names):
    folder = tmp_path / "in"
    folder.mkdir()
    for n in names:
        (folder / n).write_bytes(b"\x89PNG fake image bytes for " + n.encode())
    (folder / "notes.txt").write_text("ignored: not an image")
    return folder


# --- the retry loop ----------------------------------------------------------------------------


def test_send_waits_for_a_date_form_retry_after_then_succeeds(fake_ocr, tmp_path):
    names = ["a.png", "b.jpg", "c.pdf"]
    folder = _folder(tmp_path, names)
    out = tmp_path / "out.jsonl"
    r = subprocess.run([OCR, "send", "--url", fake_ocr.url, "--concurrency", "3",
                        "--retries", "2", "--out", str(out), str(folder)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "OCR_TOKEN": fake_ocr.token})
    assert r.returncode == 0, r.stderr
    records = {Path(x["file"]).name: x for x in map(json.loads, out.read_text().splitlines())}
    assert set(records) == set(names)
    for name, rec in records.items():
        assert rec["status"] == 200 and rec["attempts"] == 2
        assert rec["result"] == _ocr_answer(name)
    for name, times in fake_ocr.requests.items():
        assert len(times) == 2
        # the date was 2 s ahead, to the second: the client waited 1 to 2 s (a bit of slack)
        assert 0.8 <= times[1] - times[0] <= 5, (name, times)
    # stderr is a pipe here, not a terminal: no progress bar, one summary line
    assert "\r" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("3/3 files") and "failed 0" in r.stderr


def test_send_gives_up_after_the_retries(fake_ocr, tmp_path):
    folder = _folder(tmp_path, ["a.png"])
    token_file = tmp_path / "token"
    token_file.write_text(fake_ocr.token + "\n")
    r = subprocess.run([OCR, "send", "--url", fake_ocr.url, "--token-file", str(token_file), "--retries", "0",
                        str(folder)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    rec = json.loads(r.stdout)
    assert rec["status"] == 503 and rec["attempts"] == 1 and rec["error"] == "busy, come back later"
    assert "\r" not in r.stderr and "1/1 files" in r.stderr and "failed 1" in r.stderr


# --- progress: only on a terminal ------------------------------------------------------------


def test_progress_bar_on_a_terminal(fake_ocr, tmp_path):
    fake_ocr.refuse_first = False  # progress only, no retries here
    folder = _folder(tmp_path, ["a.png", "b.png", "c.png"])
    out = tmp_path / "out.jsonl"
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([OCR, "send", "--url", fake_ocr.url, "--out", str(out), str(folder)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                                env={**os.environ, "OCR_TOKEN": fake_ocr.token})
        os.close(slave)
        slave = None
        seen = b""
        while True:  # read the terminal until the child has closed its end
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: no writer left
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=60) == 0, seen
        proc.stdout.close()
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    text = seen.decode()
    assert text.count("\r[") == 3  # redrawn in place once per file
    assert "] 3/3" in text and "failed 0" in text
    assert "3/3 files" not in text  # the summary line is for non-terminals only
    assert len(out.read_text().splitlines()) == 3


def test_progress_to_a_file_is_one_summary_line():
    stream = io.StringIO()
    progress = Progress(4, stream)
    for ok in (True, False, True, True):
        progress.update(ok)
    progress.finish()  # idempotent after the last update
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 1
    assert lines[0].startswith("4/4 files") and lines[0].endswith("failed 1")


def test_progress_on_an_empty_folder_still_ends_with_a_summary():
    stream = io.StringIO()
    Progress(0, stream).finish()
    assert stream.getvalue().startswith("0/0 files")


def test_send_takes_no_token_from_the_command_line(fake_ocr, tmp_path):
    """A token on argv is readable by every user of the machine (ps, /proc): there is no --token;
    without --token-file or OCR_TOKEN the command says what to give, and an empty file is refused."""
    folder = _folder(tmp_path, ["a.png"])
    env = {k: v for k, v in os.environ.items() if k != "OCR_TOKEN"}
    r = subprocess.run([OCR, "send", "--url", fake_ocr.url, "--token", fake_ocr.token, str(folder)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "unrecognized arguments: --token" in r.stderr and "token file" not in r.stderr
    r = subprocess.run([OCR, "send", "--url", fake_ocr.url, str(folder)], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 2 and "OCR_TOKEN" in r.stderr and "--token-file" in r.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    r = subprocess.run([OCR, "send", "--url", fake_ocr.url, "--token-file", str(empty), str(folder)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "is empty" in r.stderr
