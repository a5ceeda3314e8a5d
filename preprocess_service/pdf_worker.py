"""The PDF worker process: pdfium, and nothing else, in a process of its own (``pdf_render`` starts it).

``python -m preprocess_service.pdf_worker``: reads tasks from stdin and writes answers to stdout,
one at a time, until stdin closes. A crafted PDF can make pdfium run for minutes or allocate
gigabytes; here it can only do so inside this process, under a memory ceiling set for each task
(RLIMIT_DATA: what the task was charged, over what the process already holds) and a deadline that
the parent enforces by killing the process. Imports pypdfium2 only: the process is small (about
20 MiB) and starts in well under a second.

A message, either way: 4-byte big-endian length + a JSON header, 8-byte length + a payload.
Tasks (the header's ``op``):

- ``open``: the payload is a PDF; answers ``{"sizes": [[w, h], ...]}`` in points, read from
  the page tree without loading a page (the probe).
- ``render``: page ``index`` of the open PDF at ``scale``; answers ``{"width", "height"}`` and
  the BGR pixels, row after row (``width * 3`` bytes each), as the payload.
- ``close``: the open PDF is let go; answers ``{}``.

Each task carries ``allow``: the bytes it may allocate beyond what the process holds when it
starts. A failure is answered ``{"error": kind, "message": ...}``, kind one of ``open``
(corrupt, truncated or encrypted), ``page`` (missing or broken), ``render``, ``memory``; after
``memory`` the process exits (pdfium's state is not to be trusted after a failed allocation).
"""

from __future__ import annotations

import json
import resource
import struct
import sys
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")
PAYLOAD = struct.Struct(">Q")


def read_message(stream: BinaryIO) -> tuple[dict, bytes] | None:
    """One message, or None at a clean end of the stream."""
    raw = stream.read(HEADER.size)
    if len(raw) < HEADER.size:
        return None
    header = json.loads(_exactly(stream, HEADER.unpack(raw)[0]))
    (size,) = PAYLOAD.unpack(_exactly(stream, PAYLOAD.size))
    return header, _exactly(stream, size)


def write_message(stream: BinaryIO, header: dict, payload: bytes | memoryview = b"") -> None:
    encoded = json.dumps(header).encode()
    stream.write(HEADER.pack(len(encoded)) + encoded + PAYLOAD.pack(len(payload)))
    if payload:
        stream.write(payload)
    stream.flush()


def _exactly(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError("the stream ended inside a message")
    return data


def _data_bytes() -> int:
    """What RLIMIT_DATA counts now (VmData: heap and private writable mappings)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _allow(extra: int) -> None:
    """Let the process allocate ``extra`` bytes beyond what it holds now, and no more."""
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = _data_bytes() + extra
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _send_bgr(stream: BinaryIO, bitmap) -> None:
    """The bitmap's pixels as tight BGR rows (a BGRx bitmap loses its fourth byte, and a row its
    padding)."""
    w, h, stride, n = bitmap.width, bitmap.height, bitmap.stride, bitmap.n_channels
    buf = memoryview(bitmap.buffer).cast("B")
    encoded = json.dumps({"width": w, "height": h}).encode()
    stream.write(HEADER.pack(len(encoded)) + encoded + PAYLOAD.pack(w * h * 3))
    row = w * 3
    for y in range(h):
        line = buf[y * stride:y * stride + w * n]
        stream.write(line if n == 3 else _drop_fourth(line, row))
    stream.flush()


def _drop_fourth(line: memoryview, row: int) -> bytes:
    out = bytearray(row)
    out[0::3] = line[0::4]
    out[1::3] = line[1::4]
    out[2::3] = line[2::4]
    return bytes(out)


class _Worker:
    """The open document (pdfium reads it from ``data``, which lives as long as it) and the tasks."""

    def __init__(self, stdout: BinaryIO):
        import pypdfium2 as pdfium

        self.pdfium = pdfium
        self.out = stdout
        self.pdf: Any = None  # a pypdfium2 PdfDocument
        self.data = b""

    def close(self) -> None:
        if self.pdf is not None:
            self.pdf.close()
            self.pdf = None
        self.data = b""

    def open(self, payload: bytes) -> None:
        self.close()
        self.data = payload
        try:
            pdf = self.pdf = self.pdfium.PdfDocument(self.data)
        except self.pdfium.PdfiumError:
            return write_message(self.out, {"error": "open", "message": "cannot be opened"})
        sizes = []
        for i in range(len(pdf)):  # from the page tree: no page is loaded or parsed
            try:
                sizes.append(list(pdf.get_page_size(i)))
            except (self.pdfium.PdfiumError, IndexError, ValueError):
                break
        if len(sizes) < len(pdf):
            return write_message(self.out, {"error": "page", "index": len(sizes)})
        write_message(self.out, {"sizes": sizes})

    def render(self, index: int, scale: float) -> None:
        if self.pdf is None:
            return write_message(self.out, {"error": "open", "message": "no document is open"})
        try:
            page = self.pdf[index]
        except (self.pdfium.PdfiumError, IndexError, ValueError):
            return write_message(self.out, {"error": "page", "index": index})
        try:
            bitmap = page.render(scale=scale, draw_annots=True)
        except self.pdfium.PdfiumError:
            return write_message(self.out, {"error": "render", "index": index})
        finally:
            page.close()
        try:
            if bitmap.mode not in ("BGR", "BGRX", "BGRA"):  # not what pdfium renders a page to
                return write_message(self.out, {"error": "render", "index": index})
            _send_bgr(self.out, bitmap)
        finally:
            bitmap.close()


def main() -> int:
    stdin = sys.stdin.buffer
    worker = _Worker(sys.stdout.buffer)
    while True:
        message = read_message(stdin)
        if message is None:
            return 0
        task, payload = message
        _allow(int(task.get("allow", 0)))
        try:
            if task["op"] == "open":
                worker.open(payload)
            elif task["op"] == "render":
                worker.render(int(task["index"]), float(task["scale"]))
            elif task["op"] == "close":
                worker.close()
                write_message(worker.out, {})
            else:
                write_message(worker.out, {"error": "render", "message": f"unknown task {task['op']!r}"})
        except MemoryError:
            write_message(worker.out, {"error": "memory"})
            return 3


if __name__ == "__main__":
    sys.exit(main())
