"""Tools of the hostile-input suite (tests/e2e/test_hostile.py): hand-built files, a peak-RSS
sampler for the server process, raw-socket HTTP, a trickling URL source. Loopback only; every
loop is bounded in count and time."""

from __future__ import annotations

import io
import json
import os
import select
import socket
import struct
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from PIL import Image, ImageDraw, ImageFont

MIB = 2**20
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


# --- files ---------------------------------------------------------------------------------

def build_pdf(pages: int, count: int | None = None, mediabox: tuple[int, int] = (612, 792)) -> bytes:
    """A minimal PDF written by hand: ``pages`` /Page objects without content streams under one
    /Pages node whose /Count says ``count`` (default: the truth), with a correct xref table."""
    w, h = mediabox
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objs = ["<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{kids}] /Count {pages if count is None else count} >>"]
    objs += [f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w} {h}] >>" for _ in range(pages)]
    return _pdf_file([o.encode() for o in objs])


def nested_forms_pdf(depth: int, fanout: int = 10, side: int = 200) -> bytes:
    """A page of ``side`` points whose content draws form X``depth``, which draws X``depth-1``
    ``fanout`` times, down to X0, a page of 50 lines: fanout**depth x 50 lines from about 3 KB.
    pdfium loads the page in memory that grows with the draws (about 140 MB at depth 4) and renders
    it in time that grows with them (about 2.5 s at depth 3 and 25 s at depth 4, one core)."""
    def stream(data: bytes, extra: str) -> bytes:
        return f"<< /Length {len(data)} {extra} >>\nstream\n".encode() + data + b"\nendstream"

    leaf = "".join(f"{i} 0 m {side - i} {side} l S\n" for i in range(0, side, 4)).encode()
    bbox = f"/Type /XObject /Subtype /Form /BBox [0 0 {side} {side}]"
    first_form = 5
    forms = [stream(leaf, bbox)]
    for k in range(1, depth + 1):
        body = "".join(f"q 1 0 0 1 {j % 3} 0 cm /X{k - 1} Do Q\n" for j in range(fanout)).encode()
        forms.append(stream(body, f"{bbox} /Resources << /XObject << /X{k - 1} {first_form + k - 1} 0 R >> >>"))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {side} {side}] /Contents 4 0 R "
             f"/Resources << /XObject << /X{depth} {first_form + depth} 0 R >> >> >>").encode(),
            stream(f"/X{depth} Do\n".encode(), "")] + forms
    return _pdf_file(objs)


def _pdf_file(objs: list[bytes]) -> bytes:
    """The objects numbered from 1 (the first is the catalog), with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{off:010d} 00000 n \n" for off in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def flat_rgba_png(width: int, height: int, text: str = "Hostile large page") -> bytes:
    """A large RGBA PNG that is almost all transparent (so it compresses to ~150 KB), one line of text."""
    im = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    draw.text((240, 250), text, fill=(0, 0, 0, 255), font=ImageFont.truetype(str(FONT), 64))
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=9)
    im.close()
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with one compressed row of
    data: a few dozen bytes that would decode to width*height*3 bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\xff" * min(width * 3, 1 << 16), 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


# --- the server's resident memory ------------------------------------------------------------

def rss_bytes(pid: int) -> int:
    """RSS of the process and all its children."""
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def dir_usage(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path``."""
    files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            files += 1
            try:
                size += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return files, size


class PeakRss:
    """Samples the server's RSS (children included) every ``interval_s`` in a thread while the
    ``with`` block runs; optionally also the files under a folder (the server's TMPDIR)."""

    def __init__(self, pid: int, interval_s: float = 0.02, watch_dir: Path | None = None):
        self.pid = pid
        self.interval_s = interval_s
        self.watch_dir = watch_dir
        self.start_bytes = 0
        self.peak_bytes = 0
        self.samples = 0
        self.max_files = 0
        self.max_dir_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            rss = rss_bytes(self.pid)
        except psutil.NoSuchProcess:  # the server exited (SIGTERM case)
            return
        self.peak_bytes = max(self.peak_bytes, rss)
        self.samples += 1
        if self.watch_dir is not None:
            files, size = dir_usage(self.watch_dir)
            self.max_files = max(self.max_files, files)
            self.max_dir_bytes = max(self.max_dir_bytes, size)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self.start_bytes = rss_bytes(self.pid)
        self.peak_bytes = self.start_bytes
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    @property
    def start_mib(self) -> float:
        return self.start_bytes / MIB

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / MIB


# --- raw-socket HTTP ---------------------------------------------------------------------------

@dataclass
class RawResponse:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    closed: bool = False  # the server closed (EOF) or reset the connection
    error: str | None = None  # how the connection ended, when not by a clean EOF

    def json(self):
        return json.loads(self.body)

    @property
    def seen(self) -> str | int:
        """The status, or how the connection ended without one."""
        if self.status is not None:
            return self.status
        return self.error or ("closed" if self.closed else "no answer")


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def readable(sock: socket.socket, timeout: float) -> bool:
    return bool(select.select([sock], [], [], max(0.0, timeout))[0])


def _parse_head(head: bytes) -> tuple[int | None, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, {}
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def read_response(sock: socket.socket, timeout: float) -> RawResponse:
    """One HTTP response (headers + Content-Length body), or what ended the connection first."""
    deadline = time.monotonic() + timeout
    buf = b""
    out = RawResponse()
    while time.monotonic() < deadline:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            out.status, out.headers = _parse_head(buf[:end])
            length = int(out.headers.get("content-length", "0") or 0)
            if len(buf) - end - 4 >= length:
                out.body = buf[end + 4:end + 4 + length]
                return out
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        except OSError as exc:  # ECONNRESET: the server closed with our bytes unread
            out.closed, out.error = True, type(exc).__name__
            break
        if not data:
            out.closed = True
            break
        buf += data
    end = buf.find(b"\r\n\r\n")
    if end >= 0:
        out.status, out.headers = _parse_head(buf[:end])
        out.body = buf[end + 4:]
    return out


def wait_closed(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closes (EOF or reset), reading and discarding what comes; None
    when it is still open after ``timeout``."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return None
        except OSError:
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start
    return None


# --- a URL source that trickles -----------------------------------------------------------------

class TrickleServer:
    """HTTP on 127.0.0.1:<free port> that answers 200 with a Content-Length of ``total`` bytes and
    then sends one byte every ``interval_s`` (at most ``total`` bytes; stopped by ``close``)."""

    def __init__(self, interval_s: float = 2.0, total: int = 64):
        self.interval_s = interval_s
        self.total = total
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> TrickleServer:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self.sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
                             + f"Content-Length: {self.total}\r\n\r\n".encode())
                for _ in range(self.total):
                    conn.sendall(b"\x89")
                    if self._stop.wait(self.interval_s):
                        return
            except OSError:
                return


_POLL = r"""
import json, os, sys, threading, time
import httpx
url, every = sys.argv[1], float(sys.argv[2])
try:  # a normal client that gets the CPU when it asks: what it times is the server's answer
    os.nice(-5)
except OSError:
    pass
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
latencies, failures = [], []
with httpx.Client(base_url=url, timeout=5.0) as client:
    client.get("/healthz")  # the client's own first-call costs (imports, the connection): not counted
    print("ready", flush=True)
    while not stop.is_set():
        t = time.monotonic()
        try:
            r = client.get("/healthz")
            if r.status_code != 200:
                failures.append(str(r.status_code))
        except Exception as exc:
            failures.append(type(exc).__name__)
        latencies.append(time.monotonic() - t)
        stop.wait(every)
print(json.dumps({"latencies": latencies, "failures": failures}))
"""


def _one_poll(url: str) -> float:
    import httpx

    t = time.monotonic()
    httpx.get(f"{url}/healthz", timeout=5).raise_for_status()
    return time.monotonic() - t


class HealthPoller:
    """GET /healthz every ``every_s`` from a normal client in a process of its own (what it
    measures is the server, not the test process's own threads): the latencies seen."""

    def __init__(self, url: str, every_s: float = 0.05):
        import sys

        self.url = url
        self._cmd = [sys.executable, "-c", _POLL, url, str(every_s)]
        self._proc: subprocess.Popen | None = None
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def __enter__(self) -> HealthPoller:
        self._proc = subprocess.Popen(self._cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline()  # the poller is up and polling before the attack starts
        assert ready.strip() == "ready", ready
        return self

    def __exit__(self, *exc) -> None:
        assert self._proc is not None
        out, _ = self._proc.communicate("", timeout=30)
        got = json.loads(out.strip().splitlines()[-1])
        if not got["latencies"]:  # an attack shorter than one poll: poll once more, now
            got["latencies"] = [_one_poll(self.url)]
        self.latencies, self.failures = got["latencies"], got["failures"]
