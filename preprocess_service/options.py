"""A request's options: what it asks for, and what it runs with, worked out once.

``RequestOptions`` is what a route maps its contract's request to (``None``: the service's
default). ``OCRService.process`` resolves it once into ``Options`` (``resolve``): the request's
own value, else the service's setting, else the detection model's inference.yml. Admission sizing
(the page's memory cost), the pipeline (every page of the request) and the envelopes (PaddleX
echoes the settings it ran with) all read that one frozen object.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model_spec import DetSpec
from .settings import Settings


@dataclass(frozen=True)
class RequestOptions:
    """What a request asks for; None: the service's default."""

    det_limit_side_len: int | None = None
    det_thresh: float | None = None
    det_box_thresh: float | None = None
    det_unclip_ratio: float | None = None
    rec_score_thresh: float | None = None
    use_textline_orientation: bool | None = None


@dataclass(frozen=True)
class Options:
    """What a request runs with: every value resolved."""

    det_limit_side_len: int  # the longest side is brought down to this before detection
    det_min_side_len: int  # smaller images are brought up so the short side is this
    det_max_side_limit: int  # hard cap on either side after resizing
    det_thresh: float
    det_box_thresh: float
    det_unclip_ratio: float
    det_max_candidates: int
    rec_score_thresh: float
    use_textline_orientation: bool
    cls_thresh: float


def _first(*values):
    return next(v for v in values if v is not None)


def resolve(asked: RequestOptions, settings: Settings, det: DetSpec) -> Options:
    """The request's value, else the setting, else the detection model's inference.yml."""
    return Options(
        det_limit_side_len=asked.det_limit_side_len or settings.det_limit_side_len,
        det_min_side_len=settings.det_min_side_len,
        det_max_side_limit=settings.det_max_side_limit,
        det_thresh=_first(asked.det_thresh, settings.det_thresh, det.thresh),
        det_box_thresh=_first(asked.det_box_thresh, settings.det_box_thresh, det.box_thresh),
        det_unclip_ratio=_first(asked.det_unclip_ratio, settings.det_unclip_ratio, det.unclip_ratio),
        det_max_candidates=_first(settings.det_max_candidates, det.max_candidates),
        rec_score_thresh=_first(asked.rec_score_thresh, settings.rec_score_thresh),
        use_textline_orientation=_first(asked.use_textline_orientation, settings.orientation_default),
        cls_thresh=settings.cls_thresh,
    )
