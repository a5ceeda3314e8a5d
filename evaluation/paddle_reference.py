"""PaddleOCR 3.x's own pipeline as a reference, run offline on our model repository's files.

Runs in a virtual environment of its own (``make reference``: paddlepaddle + paddleocr), not
in the service's. PaddleOCR wants ``inference.onnx`` + ``inference.yml`` per model folder, so
the repository's ``1/model.onnx`` is linked into a staging folder; nothing is downloaded.

Two inputs per image: the file path (PaddleOCR decodes it itself, as its users get) and the
image as our decoder produced it (a .npy BGR array), which isolates the pipelines from decoding.
Writes JSON: {"files": {name: [lines]}, "decoded": {...}, "seconds": {...}} with each line as
{"text", "confidence", "box"}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")


def stage(repository: Path, name: str, root: Path) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inference.onnx").symlink_to((repository / name / "1" / "model.onnx").resolve())
    (folder / "inference.yml").symlink_to((repository / name / "inference.yml").resolve())
    return folder


def model_name(repository: Path, name: str) -> str:
    import yaml

    doc = yaml.safe_load((repository / name / "inference.yml").read_text(encoding="utf-8"))
    return doc["Global"]["model_name"]


def lines_of(res) -> list[dict]:
    out = []
    for text, score, poly in zip(res["rec_texts"], res["rec_scores"], res["rec_polys"]):
        out.append({"text": text, "confidence": float(score), "box": [[float(x), float(y)] for x, y in poly]})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repository", type=Path, required=True)
    ap.add_argument("--det", required=True)
    ap.add_argument("--rec", required=True)
    ap.add_argument("--images", nargs="+", type=Path, required=True)
    ap.add_argument("--arrays", type=Path, help="folder of <image name>.npy BGR arrays")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import numpy as np
    from paddleocr import PaddleOCR

    with tempfile.TemporaryDirectory() as tmp:
        det_dir = stage(args.repository, args.det, Path(tmp))
        rec_dir = stage(args.repository, args.rec, Path(tmp))
        ocr = PaddleOCR(
            text_detection_model_name=model_name(args.repository, args.det),
            text_detection_model_dir=str(det_dir),
            text_recognition_model_name=model_name(args.repository, args.rec),
            text_recognition_model_dir=str(rec_dir),
            use_doc_orientation_classify=False,
            use_doc_unwarping=False,
            use_textline_orientation=False,
            engine="onnxruntime",
        )
        result = {"files": {}, "decoded": {}, "seconds": {"files": {}, "decoded": {}}}
        for img in args.images:
            t = time.perf_counter()
            result["files"][img.name] = lines_of(ocr.predict(str(img))[0])
            result["seconds"]["files"][img.name] = time.perf_counter() - t
            if args.arrays:
                arr = np.load(args.arrays / f"{img.name}.npy")
                t = time.perf_counter()
                result["decoded"][img.name] = lines_of(ocr.predict(arr)[0])
                result["seconds"]["decoded"][img.name] = time.perf_counter() - t
    args.out.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
