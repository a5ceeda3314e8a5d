"""A minimal FastAPI wrapper around a peer OCR library, for the side-by-side benchmark only.

Runs in the peer's own virtual environment (``.venv-rapid`` for RapidOCR, ``.venv-ref`` for
PaddleOCR, ``.venv-fastpaddle`` for faster-paddle), never in the service's. It is what a user of either library would write to put it
behind HTTP: one POST route taking ``{"image": <base64>}`` and answering
``{"lines": [{"text", "confidence", "box"}]}``, the library object created once at start, and
the library's own defaults for everything but the model files (the benchmark gives every system
the same ONNX files) and the orientation classifier (off, as in PP-OCRv6's own pipeline config).

The route is a plain ``def``: FastAPI runs it on its thread pool, so concurrent requests call
the library from several threads at once. RapidOCR's onnxruntime sessions are thread-safe and
run so; PaddleOCR's pipeline objects are not documented thread-safe, so calls into it are
serialised with a lock (as its own serving app does with one pipeline instance).

faster-paddle cannot be given model files: it runs the PP-OCRv6 tiny or small models compiled into
its wheel (see bench/peers/fastpaddle_models.py for how they compare with ours). One ``OcrEngine``,
created once with the library's defaults (its thread budget is every available core; detection
long side 1600, short side at least 736, recognition padded to 96 px for small, 64 for tiny) or
with ``--det-max-side``. No lock of ours and no pool: the engine is documented thread-safe,
releases the GIL and serialises inference itself, while image decoding and layout of concurrent
requests overlap; a pool of engines would split the same cores (each engine sizes its thread
pools to all of them), which is tuning the library does not ask of its users. Its boxes are
axis-aligned (``topLeftCoord`` / ``bottomRightCoord``), answered as four corner points.

    python bench/peers/server.py --engine rapidocr --det D.onnx --rec R.onnx --keys dict.txt --port N
    python bench/peers/server.py --engine paddleocr --det-dir DIR --rec-dir DIR --port N
    python bench/peers/server.py --engine fastpaddle --model-size small [--det-max-side 960] --port N
"""

from __future__ import annotations

import argparse
import base64
import os
import threading

os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")

import uvicorn  # noqa: E402
from fastapi import FastAPI, HTTPException  # noqa: E402
from pydantic import BaseModel  # noqa: E402


class Body(BaseModel):
    image: str


# numpy and OpenCV are imported where used: the faster-paddle venv has neither.


def rapidocr_engine(args):
    import numpy as np
    from rapidocr import RapidOCR

    engine = RapidOCR(params={
        "Global.use_cls": False,
        "Global.log_level": "warning",
        "Det.model_path": args.det,
        "Rec.model_path": args.rec,
        "Rec.rec_keys_path": args.keys,
    })

    def run(data: bytes) -> list[dict]:
        res = engine(data)
        if res.txts is None:
            return []
        return [
            {"text": t, "confidence": float(s), "box": np.asarray(b, dtype=float).tolist()}
            for t, s, b in zip(res.txts, res.scores, res.boxes)
        ]

    return run


def paddleocr_engine(args):
    import cv2
    import numpy as np
    import yaml
    from paddleocr import PaddleOCR

    def name(folder):
        with open(os.path.join(folder, "inference.yml"), encoding="utf-8") as f:
            return yaml.safe_load(f)["Global"]["model_name"]

    ocr = PaddleOCR(
        text_detection_model_name=name(args.det_dir), text_detection_model_dir=args.det_dir,
        text_recognition_model_name=name(args.rec_dir), text_recognition_model_dir=args.rec_dir,
        use_doc_orientation_classify=False, use_doc_unwarping=False, use_textline_orientation=False,
        engine="onnxruntime",
    )
    lock = threading.Lock()

    def run(data: bytes) -> list[dict]:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("not an image")
        with lock:
            res = ocr.predict(img)[0]
        return [
            {"text": t, "confidence": float(s), "box": np.asarray(p, dtype=float).tolist()}
            for t, s, p in zip(res["rec_texts"], res["rec_scores"], res["rec_polys"])
        ]

    return run


def fastpaddle_engine(args):
    import faster_paddle
    from faster_paddle import OcrEngine

    kwargs = {"model_size": args.model_size}
    if args.det_max_side:
        kwargs["det_max_side"] = args.det_max_side
    engine = OcrEngine(**kwargs)
    info = {"engine": "faster-paddle", "version": faster_paddle.__version__,
            "runtime": faster_paddle.__runtime_build__, "model_size": args.model_size, "config": engine.config}

    def run(data: bytes) -> list[dict]:
        try:
            res = engine.ocr(data)
        except RuntimeError as exc:  # what it raises for bytes that are not an image it decodes
            raise ValueError(str(exc)) from exc
        lines = []
        for _, b in sorted(res["bounds"].items()):
            (x1, y1), (x2, y2) = b["topLeftCoord"], b["bottomRightCoord"]
            box = [[float(x1), float(y1)], [float(x2), float(y1)], [float(x2), float(y2)], [float(x1), float(y2)]]
            lines.append({"text": b["text"], "confidence": float(b["confidence"]), "box": box})
        return lines

    return run, info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=["rapidocr", "paddleocr", "fastpaddle"], required=True)
    ap.add_argument("--det")
    ap.add_argument("--rec")
    ap.add_argument("--keys")
    ap.add_argument("--det-dir")
    ap.add_argument("--rec-dir")
    ap.add_argument("--model-size", choices=["tiny", "small"], default="small")
    ap.add_argument("--det-max-side", type=int, help="faster-paddle's detection limit (its default: 1600)")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    info = {}
    if args.engine == "fastpaddle":
        run, info = fastpaddle_engine(args)
    else:
        run = rapidocr_engine(args) if args.engine == "rapidocr" else paddleocr_engine(args)

    app = FastAPI()

    @app.get("/readyz")
    def ready():
        return {"ready": True, **info}

    @app.post("/ocr")
    def ocr(body: Body):
        try:
            data = base64.b64decode(body.image, validate=True)
            return {"lines": run(data)}
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
