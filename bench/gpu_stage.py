"""Everything a GPU machine without a package registry needs for bench/gpu.py, in loads it can be sent in.

    make gpu-stage                                   # = python -m bench.gpu_stage (downloads, seconds)
    python -m bench.gpu_stage --no-download          # models and dataset only (the CPU dry run)
    python3 -m bench.gpu_stage --assemble .gpu-stage --into .gpu-stage/assembled   # on the GPU machine

The GPU machine (docs/gpu.md) has Python 3.12, CUDA 13 / cuDNN 9 as pip packages, onnxruntime's CPU
build, numpy, pillow, opencv and nvidia-ml-py, and reaches no registry; one command may send at
most 64 MiB. ``--out`` (default ``.gpu-stage/``, git-ignored) gets:

- ``load-0/`` ... ``load-N/``: folders of at most ``--load-mib`` MiB each (default 56, leaving room
  for the working tree that travels with every command), one per command. Files larger than a
  load are cut into parts; every load carries ``manifest.json`` (each file's sha256 and its parts'
  sha256s), so whatever has arrived can be checked;
- what goes in them: the Python 3.12 manylinux wheels the pipeline needs beyond that machine's own
  packages (onnxruntime-gpu of requirements-gpu.txt, and pydantic, pydantic-settings, pyclipper,
  shapely, PyYAML, pybase64 and their own compiled parts, versions from constraints.txt), the model
  folders of the float32 and FP16 GPU sets (``models/``, sha256 as pinned), and the benchmark's
  images with their ground truth (``dataset.pkl``, bench/gpu.py --prepare);
- ``calls.txt``: the device commands, one per load; the last one also runs the benchmark.

``--assemble`` (stdlib only, the first thing the GPU machine runs) checks every part and file
against the manifest and joins them under ``--into``; a missing or corrupt part stops it with the
file named. The assembled folder holds ``wheels/``, ``models/`` and ``dataset.pkl``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
# the GPU sets' folders (float32 and FP16); the classifier is optional and left out
MODEL_FOLDERS = ("ppocrv6_small_det", "ppocrv6_small_rec", "ppocrv6_small_det_fp16", "ppocrv6_small_rec_fp16")
# the wheels the pipeline imports beyond the GPU machine's own packages (numpy, pillow, opencv,
# nvidia-ml-py, onnxruntime's own dependencies); installed with --no-deps
WHEELS = ("pydantic", "pydantic-core", "pydantic-settings", "python-dotenv", "annotated-types", "typing-inspection",
          "typing-extensions", "pyclipper", "shapely", "pyyaml", "pybase64", "rapidfuzz")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(4 * MIB), b""):
            h.update(block)
    return h.hexdigest()


def pins() -> list[str]:
    """``name==version`` of onnxruntime-gpu (requirements-gpu.txt) and of WHEELS (constraints.txt)."""
    found: dict[str, str] = {}
    for path in (ROOT / "requirements-gpu.txt", ROOT / "constraints.txt"):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            name, sep, version = line.partition("==")
            if sep and name and not name.startswith("-"):
                found.setdefault(name.lower().replace("_", "-"), version.split(";")[0].split()[0].strip())
    wanted = ["onnxruntime-gpu", *WHEELS]
    missing = [w for w in wanted if w not in found]
    if missing:
        raise SystemExit(f"gpu_stage: no pinned version for {missing} in requirements-gpu.txt / constraints.txt")
    return [f"{w}=={found[w]}" for w in wanted]


def download_wheels(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet", "--no-deps",
           "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + pins(), check=True)


def collect(work: Path, download: bool) -> dict[str, Path]:
    """The files to send, by their path on the GPU machine (relative to the assembled folder)."""
    files: dict[str, Path] = {}
    if download:
        wheels = work / "wheels"
        download_wheels(wheels)
        files |= {f"wheels/{p.name}": p for p in sorted(wheels.glob("*.whl"))}
    repo = ROOT / "model_repository"
    for folder in MODEL_FOLDERS:
        for rel in ("1/model.onnx", "inference.yml"):
            path = repo / folder / rel
            if not path.exists():
                raise SystemExit(f"gpu_stage: {path} is missing: run `make models`")
            files[f"models/{folder}/{rel}"] = path
    from bench import gpu

    dataset = work / "dataset.pkl"
    gpu.prepare(dataset)
    files["dataset.pkl"] = dataset
    return files


def pack(files: dict[str, Path], out: Path, load_bytes: int) -> list[Path]:
    """Cut the files into parts and fill numbered load folders with them; manifest in each."""
    for old in out.glob("load-*"):
        shutil.rmtree(old)
    manifest: dict = {"files": {}}
    loads: list[list[tuple[str, bytes]]] = [[]]
    sizes = [0]
    for name, path in sorted(files.items(), key=lambda kv: -kv[1].stat().st_size):
        data = path.read_bytes()
        entry = manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "parts": []}
        for i, start in enumerate(range(0, max(len(data), 1), load_bytes)):
            part = data[start:start + load_bytes]
            target = next((k for k, s in enumerate(sizes) if s + len(part) <= load_bytes), None)
            if target is None:
                loads.append([])
                sizes.append(0)
                target = len(loads) - 1
            part_name = f"{name.replace('/', '__')}.part{i:02d}"
            loads[target].append((part_name, part))
            sizes[target] += len(part)
            entry["parts"].append({"name": part_name, "load": target, "sha256": hashlib.sha256(part).hexdigest()})
    manifest["loads"] = len(loads)
    folders = []
    for k, parts in enumerate(loads):
        folder = out / f"load-{k}"
        folder.mkdir(parents=True)
        for part_name, part in parts:
            (folder / part_name).write_bytes(part)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        folders.append(folder)
    return folders


def assemble(stage: Path, into: Path) -> dict:
    """Check every part against the manifest and join the files under ``into`` (idempotent)."""
    manifests = sorted(stage.glob("load-*/manifest.json"))
    if not manifests:
        raise SystemExit(f"gpu_stage: no load-*/manifest.json under {stage}")
    manifest = json.loads(manifests[-1].read_text(encoding="utf-8"))
    missing = []
    for name, entry in manifest["files"].items():
        target = into / name
        if target.exists() and target.stat().st_size == entry["bytes"] and sha256(target) == entry["sha256"]:
            continue
        chunks = []
        for part in entry["parts"]:
            path = stage / f"load-{part['load']}" / part["name"]
            if not path.exists():
                missing.append(f"{name} (load-{part['load']}/{part['name']})")
                break
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != part["sha256"]:
                raise SystemExit(f"gpu_stage: {path} does not match its sha256 in the manifest: send load-{part['load']} again")
            chunks.append(data)
        else:
            data = b"".join(chunks)
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise SystemExit(f"gpu_stage: {name} joined from its parts does not match its sha256")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    if missing:
        raise SystemExit("gpu_stage: not arrived yet: " + "; ".join(missing))
    return manifest


def calls(folders: list[Path]) -> str:
    lines = ["# One device command per load (each sends the working tree and that folder, under 64 MiB);",
             "# the ignored folders sent by earlier commands stay on the machine while it is held."]
    for k, folder in enumerate(folders):
        rel = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
        last = k == len(folders) - 1
        cmd = "bash bench/gpu_run.sh" if last else f"ls -la {rel}"
        lines.append(f"carry=[\"{rel}\"] command=\"{cmd}\" timeout_s={420 if last else 120}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".gpu-stage")
    ap.add_argument("--load-mib", type=float, default=56.0)
    ap.add_argument("--no-download", action="store_true", help="no wheels: models and dataset only (the dry run)")
    ap.add_argument("--assemble", type=Path, metavar="STAGE", help="on the GPU machine: check and join the loads")
    ap.add_argument("--into", type=Path, help="with --assemble: where the files go (default STAGE/assembled)")
    args = ap.parse_args(argv)
    if args.assemble:
        manifest = assemble(args.assemble, args.into or args.assemble / "assembled")
        print(f"gpu_stage: {len(manifest['files'])} files checked and assembled from {manifest['loads']} load(s)")
        return 0
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    files = collect(work, not args.no_download)
    folders = pack(files, args.out, int(args.load_mib * MIB))
    (args.out / "calls.txt").write_text(calls(folders), encoding="utf-8")
    total = sum(p.stat().st_size for p in files.values())
    print(f"gpu_stage: {len(files)} files, {total / MIB:.1f} MiB in {len(folders)} load(s) under {args.out}; "
          f"device commands in {args.out / 'calls.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
