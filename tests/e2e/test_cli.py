"""The `ocr` console script: local pipeline, and `ocr send` against a real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.localserver import LocalServer

OCR = str(Path(sys.executable).parent / "ocr")


def test_local_text_and_json(eval_dir):
    r = subprocess.run([OCR, str(eval_dir / "tjs_simple.png"), str(eval_dir / "pp_word_10.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"== {eval_dir / 'tjs_simple.png'}", "Tesseract.js", f"== {eval_dir / 'pp_word_10.png'}", "PAIN"]
    r = subprocess.run([OCR, "--json", str(eval_dir / "tjs_simple_exif90.jpg")], capture_output=True, text=True, timeout=120)
    rec = json.loads(r.stdout)
    assert rec["text"] == "Tesseract.js" and rec["lines"][0]["confidence"] > 0.9


def test_local_reports_bad_files(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    r = subprocess.run([OCR, "--json", str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "error" in json.loads(r.stdout)


def _folder(tmp_path, eval_dir, names):
    folder = tmp_path / "in"
    folder.mkdir()
    for n in names:
        shutil.copy(eval_dir / n, folder / n)
    (folder / "notes.txt").write_text("ignored: not an image")
    return folder


def test_send_a_folder_with_progress_and_jsonl(server, eval_dir, tmp_path):
    names = ["tjs_simple.png", "pp_word_10.png", "tjs_simple_exif90.jpg", "easyocr_chinese.jpg", "tess_hello_google.png"]
    folder = _folder(tmp_path, eval_dir, names)
    out = tmp_path / "out.jsonl"
    r = subprocess.run([OCR, "send", "--url", server.url, "--concurrency", "3",
                        "--out", str(out), str(folder)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OCR_TOKEN": server.token})
    assert r.returncode == 0, r.stderr
    records = {Path(x["file"]).name: x for x in map(json.loads, out.read_text().splitlines())}
    assert set(records) == set(names)
    assert all(x["status"] == 200 for x in records.values())
    assert records["tjs_simple.png"]["result"]["text"] == "Tesseract.js"
    assert records["pp_word_10.png"]["result"]["text"] == "PAIN"
    assert "5/5" in r.stderr and "failed 0" in r.stderr  # the progress bar


def test_send_retries_on_429_and_reports_failures(eval_dir, tmp_path):
    token = "cli-rate-limited-token-0123456789"
    folder = _folder(tmp_path, eval_dir, ["tjs_simple.png", "pp_word_10.png", "tess_hello_google.png"])
    env = {"OCR_API_TOKENS": token, "OCR_RATE_LIMIT_PER_MINUTE": "60", "OCR_RATE_LIMIT_BURST": "1"}
    with LocalServer(env, log_path=tmp_path / "svc.log") as srv:
        r = subprocess.run([OCR, "send", "--url", srv.url, "--concurrency", "3", str(folder)],
                           capture_output=True, text=True, timeout=300, env={**os.environ, "OCR_TOKEN": token})
        assert r.returncode == 0, r.stderr
        records = [json.loads(x) for x in r.stdout.splitlines()]
        assert [x["status"] for x in records] == [200, 200, 200]
        assert max(x["attempts"] for x in records) > 1  # some were refused with 429 and retried
        assert '"status": 429' in (tmp_path / "svc.log").read_text()
        wrong = subprocess.run([OCR, "send", "--url", srv.url, "--retries", "0", str(folder)],
                               capture_output=True, text=True, timeout=120,
                               env={**os.environ, "OCR_TOKEN": "wrong-token-0123456789"})
        assert wrong.returncode == 1 and all(json.loads(x)["status"] == 401 for x in wrong.stdout.splitlines())
