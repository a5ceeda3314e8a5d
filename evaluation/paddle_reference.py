"""PaddleOCR 3.x's own pipeline as a reference, run offline on the published ONNX models.

Runs in a virtual environment of its own (``make reference``: paddlepaddle + paddleocr), not
in the service's. PaddleOCR wants ``inference.onnx`` + ``inference.yml`` per model folder:
``evaluation.run_eval`` stages the models as the source wheel publishes them (float32, float
NCHW input; not the served files, whose input head takes uint8 NHWC) and passes the folders as
``--det-dir`` and ``--rec-dir``; nothing is downloaded.

Two inputs per image: the file path (PaddleOCR decodes it itself, as its users get) and the
image as our decoder produced it (a .npy BGR array), which isolates the pipelines from decoding.
Writes JSON: {"files": {name: [lines]}, "decoded": {...}, "seconds": {...}} with each line as
{"text", "confidence", "box"}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")


def model_name(folder: Path) -> str:
    import yaml

    doc = yaml.safe_load((folder / "inference.yml").read_text(encoding="utf-8"))
    return doc["Global"]["model_name"]


def lines_of(res) -> list[dict]:
    out = []
    for text, score, poly in zip(res["rec_texts"], res["rec_scores"], res["rec_polys"]):
        out.append({"text": text, "confidence": float(score), "box": [[float(x), float(y)] for x, y in poly]})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--det-dir", type=Path, required=True, help="inference.onnx + inference.yml")
    ap.add_argument("--rec-dir", type=Path, required=True, help="inference.onnx + inference.yml")
    ap.add_argument("--images", nargs="+", type=Path, required=True)
    ap.add_argument("--arrays", type=Path, help="folder of <image name>.npy BGR arrays")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import numpy as np
    from paddleocr import PaddleOCR

    ocr = PaddleOCR(
        text_detection_model_name=model_name(args.det_dir),
        text_detection_model_dir=str(args.det_dir),
        text_recognition_model_name=model_name(args.rec_dir),
        text_recognition_model_dir=str(args.rec_dir),
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
