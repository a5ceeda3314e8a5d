"""Read one model-repository folder into a small immutable spec.

The folder is the one Triton loads (``config.pbtxt``, ``<version>/model.onnx``); its PaddleX
``inference.yml`` says how to feed and read the model: normalisation, DB thresholds, the
recognition dictionary. Nothing about a model is hard-coded in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


class ModelSpecError(RuntimeError):
    pass


@dataclass(frozen=True)
class Normalization:
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class DetSpec:
    name: str
    folder: Path
    model_name: str
    norm: Normalization
    thresh: float
    box_thresh: float
    unclip_ratio: float
    max_candidates: int
    kind: str = "det"


@dataclass(frozen=True)
class RecSpec:
    name: str
    folder: Path
    model_name: str
    image_height: int
    base_width: int
    max_width: int
    charset: tuple[str, ...]  # index i is class i+1; class 0 is the CTC blank, the last is space
    kind: str = "rec"


@dataclass(frozen=True)
class ClsSpec:
    name: str
    folder: Path
    model_name: str
    image_height: int
    image_width: int
    norm: Normalization
    labels: tuple[str, ...]
    thresh: float
    kind: str = "cls"


ModelSpec = DetSpec | RecSpec | ClsSpec


def _number(v) -> float:
    """Numbers in PaddleX ymls are sometimes written as expressions like ``1./255.``."""
    if isinstance(v, (int, float)):
        return float(v)
    text = str(v).strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def _ops(doc: dict) -> dict[str, dict]:
    ops = {}
    for op in (doc.get("PreProcess") or {}).get("transform_ops") or []:
        for k, v in op.items():
            ops[k] = v or {}
    return ops


def _norm(ops: dict[str, dict], default_mean, default_std) -> Normalization:
    n = ops.get("NormalizeImage") or {}
    mean = tuple(_number(x) for x in n.get("mean", default_mean))
    std = tuple(_number(x) for x in n.get("std", default_std))
    return Normalization(scale=_number(n.get("scale", 1.0 / 255.0)), mean=mean, std=std)  # type: ignore[arg-type]


def _trt_max_width(doc: dict, default: int) -> int:
    cfgs = ((doc.get("Hpi") or {}).get("backend_configs") or {})
    for cfg in cfgs.values():
        shapes = (cfg or {}).get("dynamic_shapes") or (cfg or {}).get("trt_dynamic_shapes") or {}
        for ranges in shapes.values():
            try:
                return int(ranges[-1][-1])
            except (TypeError, IndexError, ValueError):
                continue
    return default


def model_file(folder: Path) -> Path:
    """The newest numeric version's model.onnx (Triton's default version policy)."""
    versions = sorted((int(p.name), p) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())
    if not versions:
        raise ModelSpecError(f"{folder}: no version folder (expected {folder}/1/model.onnx)")
    path = versions[-1][1] / "model.onnx"
    if not path.exists():
        raise ModelSpecError(f"{path} is missing: run `make models`")
    return path


def load_spec(repository: Path, name: str) -> ModelSpec:
    folder = Path(repository) / name
    yml = folder / "inference.yml"
    if not yml.exists():
        raise ModelSpecError(f"{yml} is missing: run `make models` (model folder {name!r})")
    with yml.open(encoding="utf-8") as f:
        doc = yaml.load(f, Loader=_Loader) or {}
    post = doc.get("PostProcess") or {}
    kind = post.get("name")
    model_name = (doc.get("Global") or {}).get("model_name", name)
    ops = _ops(doc)
    if kind == "DBPostProcess":
        return DetSpec(
            name=name,
            folder=folder,
            model_name=model_name,
            norm=_norm(ops, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            thresh=_number(post.get("thresh", 0.3)),
            box_thresh=_number(post.get("box_thresh", 0.6)),
            unclip_ratio=_number(post.get("unclip_ratio", 1.5)),
            max_candidates=int(post.get("max_candidates", 1000)),
        )
    if kind == "CTCLabelDecode":
        chars = post.get("character_dict")
        if not chars:
            raise ModelSpecError(f"{yml}: CTCLabelDecode without a character_dict")
        shape = (ops.get("RecResizeImg") or {}).get("image_shape", [3, 48, 320])
        # PaddleOCR's convention: blank first, then the dictionary, then a space.
        charset = tuple(str(c) for c in chars) + (" ",)
        return RecSpec(
            name=name,
            folder=folder,
            model_name=model_name,
            image_height=int(shape[1]),
            base_width=int(shape[2]),
            max_width=_trt_max_width(doc, 3200),
            charset=charset,
        )
    if kind in ("Topk", "ClsPostProcess"):
        size = (ops.get("ResizeImage") or {}).get("size", [192, 48])
        return ClsSpec(
            name=name,
            folder=folder,
            model_name=model_name,
            image_height=int(size[1]),
            image_width=int(size[0]),
            norm=_norm(ops, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            labels=tuple(str(x) for x in post.get("label_list", ["0", "180"])),
            thresh=_number(post.get("thresh", 0.9)),
        )
    raise ModelSpecError(f"{yml}: unknown PostProcess.name {kind!r}")
