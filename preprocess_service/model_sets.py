"""The one registry of model sets: which model-repository folders make up a pipeline.

Settings (``OCR_MODEL_SET``), the CLI (``--model-set``) and the evaluation take their choices
from here; nothing else spells a model set out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict


class ModelFolders(TypedDict):
    det: str
    rec: str
    cls: str | None


@dataclass(frozen=True)
class ModelSet:
    name: str
    det: str
    rec: str
    cls: str | None
    orientation_default: bool  # the set was published with the text-line classifier on
    description: str
    cpu_only: bool = False  # quantised for CPUs: never loaded by a GPU mode

    def folders(self) -> ModelFolders:
        return {"det": self.det, "rec": self.rec, "cls": self.cls}


MODEL_SETS: dict[str, ModelSet] = {
    ms.name: ms
    for ms in (
        ModelSet("ppocrv6_small_int8", "ppocrv6_small_det_int8", "ppocrv6_small_rec_int8", "ppocr_textline_cls",
                 False, "PP-OCRv6 small, detection and recognition in static INT8 (default; for CPUs)", cpu_only=True),
        ModelSet("ppocrv6_small_int8rec", "ppocrv6_small_det", "ppocrv6_small_rec_int8", "ppocr_textline_cls",
                 False, "PP-OCRv6 small, recognition in static INT8, detection in float32 (for CPUs)", cpu_only=True),
        ModelSet("ppocrv6_small", "ppocrv6_small_det", "ppocrv6_small_rec", "ppocr_textline_cls", False,
                 "PP-OCRv6 small in float32 (for GPUs)"),
        ModelSet("ppocrv6_small_fp16", "ppocrv6_small_det_fp16", "ppocrv6_small_rec_fp16", "ppocr_textline_cls",
                 False, "PP-OCRv6 small in float16 with uint8/float32 I/O (for GPUs; converted from the float set)"),
        ModelSet("ppocrv6_tiny", "ppocrv6_tiny_det", "ppocrv6_tiny_rec", "ppocr_textline_cls", False,
                 "PP-OCRv6 tiny: faster, less accurate"),
        ModelSet("ppocrv5_mobile", "ppocrv5_mobile_det", "ppocrv5_mobile_rec", "ppocr_textline_cls", True,
                 "PP-OCRv5 mobile, with the text-line classifier on"),
    )
}
# INT8 on the CPU: faster than the float models within the accuracy rule (docs/performance.md,
# `make levers` and `make bench`). The INT8 models were measured on CPUs only: GPUs take the float
# set (OCR_MODEL_SET=ppocrv6_small; the GPU image and the chart's GPU modes set it).
DEFAULT_MODEL_SET = "ppocrv6_small_int8"
