"""``ocr``: the command line.

    ocr [--json] [--model-set ppocrv6_small] IMAGE_OR_PDF...
        Run the embedded pipeline locally (no server) and print each file's text, or JSON lines.

    ocr send --url URL [--token-file FILE] [--concurrency 4] [--retries 5] [--out FILE.jsonl] DIR
        Send every image/PDF in DIR to a running service (multipart /v1/ocr/upload) with bounded
        concurrency, a progress bar on stderr when it is a terminal (else one summary line at the end),
        JSON Lines out, and retries on 503/429 (honouring Retry-After, in seconds or as an HTTP date)
        and on connection errors. Exit status 1 if any file failed. The token comes from
        --token-file (its first line) or the OCR_TOKEN environment variable, never from the command
        line, where every user of the machine could read it (ps, /proc, shell history).
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

from .model_sets import DEFAULT_MODEL_SET, MODEL_SETS

SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".pdf"}


# --- local ------------------------------------------------------------------------------------


async def _run_local(paths: list[Path], model_set: str, as_json: bool) -> int:
    from pydantic import SecretStr

    from .backends import create_backend
    from .errors import OCRError
    from .options import RequestOptions
    from .schemas import OCRResponse
    from .service import OCRService, Source
    from .settings import Settings

    # in-process only: nothing listens, so no API token is used
    settings = Settings(api_tokens=[SecretStr("local-cli-no-server")], model_set=model_set)
    backend = create_backend(settings)
    service = await OCRService.create(settings, backend)
    failed = 0
    try:
        for path in paths:
            try:
                source = Source(path.read_bytes(), encoding="raw", kind="auto", field=str(path))
                done = await service.process([source], RequestOptions())
                for res in done.pages:
                    page = res.page
                    if as_json:
                        native = OCRResponse.of(res).model_dump(exclude_none=True)
                        print(json.dumps({"file": str(path), "page": page, **native}, ensure_ascii=False))
                    else:
                        header = f"== {path}" + (f" (page {page})" if page else "")
                        print(header + "\n" + res.text, flush=True)
            except (OCRError, OSError) as exc:
                failed += 1
                message = getattr(exc, "message", None) or str(exc)
                if as_json:
                    print(json.dumps({"file": str(path), "error": message}))
                else:
                    print(f"== {path}\nerror: {message}", file=sys.stderr)
    finally:
        await backend.close()
    return 1 if failed else 0


# --- send -------------------------------------------------------------------------------------


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class Progress:
    """A progress bar redrawn in place (``\\r``) when the stream is a terminal; on anything else
    (a file, a pipe, a CI log) no bar, only one summary line when all is done."""

    def __init__(self, total: int, stream=None, width: int = 30):
        self.total, self.done, self.failed = total, 0, 0
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.tty = _is_tty(self.stream)
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.finished = False

    def _rate(self) -> float:
        return self.done / max(time.monotonic() - self.start, 1e-9)

    def update(self, ok: bool) -> None:
        with self.lock:
            self.done += 1
            self.failed += 0 if ok else 1
            if self.tty:
                filled = int(self.width * self.done / max(self.total, 1))
                self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}"
                                  f"  {self._rate():.1f} files/s  failed {self.failed}")
                if self.done == self.total:
                    self.stream.write("\n")
                self.stream.flush()
            if self.done == self.total:
                self._finish_locked()

    def finish(self) -> None:
        """The summary line, once (also for an empty folder)."""
        with self.lock:
            self._finish_locked()

    def _finish_locked(self) -> None:
        if self.finished:
            return
        self.finished = True
        if not self.tty:
            self.stream.write(f"{self.done}/{self.total} files  {self._rate():.1f} files/s  failed {self.failed}\n")
            self.stream.flush()


DEFAULT_RETRY_AFTER_S = 1.0


def retry_after_seconds(value: str | None, max_wait: float = 30.0, default: float = DEFAULT_RETRY_AFTER_S,
                        now: datetime | None = None) -> float:
    """Seconds to wait from a Retry-After header, which RFC 9110 allows as delay-seconds ("120")
    or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"), clamped to [0, max_wait]. A missing or
    unparseable value gives ``default`` (clamped too)."""
    def clamp(seconds: float) -> float:
        return min(max(0.0, max_wait), max(0.0, seconds))

    value = (value or "").strip()
    if not value:
        return clamp(default)
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return clamp(default)
        if when.tzinfo is None:  # "-0000" or no zone: HTTP dates are in GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):  # "nan", "inf"
        return clamp(default)
    return clamp(seconds)


def _send_one(client, url: str, token: str, path: Path, retries: int, max_wait: float) -> dict:
    import httpx

    attempt = 0
    while True:
        try:
            with path.open("rb") as f:
                r = client.post(f"{url.rstrip('/')}/v1/ocr/upload", files={"file": (path.name, f)},
                                headers={"Authorization": f"Bearer {token}"})
            if r.status_code in (429, 503) and attempt < retries:
                attempt += 1
                time.sleep(retry_after_seconds(r.headers.get("Retry-After"), max_wait))
                continue
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            if r.status_code == 200:
                return {"file": str(path), "status": 200, "attempts": attempt + 1, "result": body}
            return {"file": str(path), "status": r.status_code, "attempts": attempt + 1,
                    "error": (body.get("error") or {}).get("message", r.text[:200])}
        except httpx.HTTPError as exc:
            if attempt < retries:
                attempt += 1
                time.sleep(min(max_wait, 0.5 * 2 ** attempt))
                continue
            return {"file": str(path), "status": None, "attempts": attempt + 1, "error": type(exc).__name__}


def send(url: str, token: str, folder: Path, concurrency: int, retries: int, out, max_wait: float = 30.0,
         progress_stream=None) -> int:
    """progress_stream: where the progress goes (default: sys.stderr at call time)."""
    import httpx

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    progress = Progress(len(files), progress_stream)
    failed = 0
    with httpx.Client(timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client, \
            ThreadPoolExecutor(max(1, concurrency)) as pool:
        futures = [pool.submit(_send_one, client, url, token, p, retries, max_wait) for p in files]
        for fut in as_completed(futures):
            rec = fut.result()
            ok = rec["status"] == 200
            failed += 0 if ok else 1
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()
            progress.update(ok)
    progress.finish()
    return 1 if failed else 0


def _token(ap: argparse.ArgumentParser, token_file: Path | None) -> str:
    if token_file is not None:
        try:
            lines = [ln.strip() for ln in token_file.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            ap.error(f"cannot read the token file {token_file}: {type(exc).__name__}")
        if not lines:
            ap.error(f"the token file {token_file} is empty")
        return lines[0]
    token = os.environ.get("OCR_TOKEN", "").strip()
    if not token:
        ap.error("no token: give --token-file FILE or set OCR_TOKEN")
    return token


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "send":
        ap = argparse.ArgumentParser(prog="ocr send", description="send a folder to a running OCR service",
                                     allow_abbrev=False)  # --token is not --token-file
        ap.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8080")
        ap.add_argument("--token-file", type=Path, help="file whose first line is the API token (default: the "
                        "OCR_TOKEN environment variable)")
        ap.add_argument("--concurrency", type=int, default=4)
        ap.add_argument("--retries", type=int, default=5, help="retries per file on 503/429 and connection errors")
        ap.add_argument("--out", type=Path, help="JSON Lines output (default: stdout)")
        ap.add_argument("folder", type=Path)
        args = ap.parse_args(argv[1:])
        token = _token(ap, args.token_file)
        if not args.folder.is_dir():
            ap.error(f"{args.folder} is not a folder")
        out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
        try:
            return send(args.url, token, args.folder, args.concurrency, args.retries, out)
        finally:
            if args.out:
                out.close()
    ap = argparse.ArgumentParser(prog="ocr", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="JSON lines instead of text")
    ap.add_argument("--model-set", default=DEFAULT_MODEL_SET, choices=sorted(MODEL_SETS))
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(_run_local(args.files, args.model_set, args.json))


if __name__ == "__main__":
    sys.exit(main())
