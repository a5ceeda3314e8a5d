"""What the memory budget charges per pixel, held to what `python -m bench.memory_costs` measured
(docs/artifacts/memory-costs.json), and the decoder's nets: each image kind is charged its own
constant, Pillow's pixel check stays on, and only the accepted formats' plugins parse a file."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from preprocess_service import budget, documents, imaging
from preprocess_service.errors import ImageTooLarge, UnsupportedImageFormat
from tests.conftest import ROOT

ARTIFACT = json.loads((ROOT / "docs" / "artifacts" / "memory-costs.json").read_text())


@pytest.mark.parametrize("row", ARTIFACT["rows"], ids=lambda r: f"{r['kind']}-{r['width']}x{r['height']}")
def test_every_measured_cost_is_charged(row):
    """The charge covers the measured peak over the base: per pixel for decoding and rendering, the
    fixed part plus the per-pixel part for detection."""
    measured = (row["peak_mib"] - row["base_mib"]) * budget.MIB
    if row["kind"] == "det":
        charged = budget.DET_FIXED_BYTES + row["pixels"] * budget.DET_BYTES_PER_PIXEL
    elif row["kind"] == "pdf":  # the service's array and the renderer's allowance, fixed part included
        charged = row["pixels"] * budget.PDF_RENDER_BYTES_PER_PIXEL + budget.PDF_WORKER_FIXED_BYTES
        allowance = budget.PDF_WORKER_FIXED_BYTES + row["pixels"] * budget.PDF_WORKER_BYTES_PER_PIXEL
        assert row["worker_bytes_per_pixel"] * row["pixels"] <= allowance, row
    else:
        from bench.memory_costs import CHARGED

        charged = row["pixels"] * getattr(budget, CHARGED[row["kind"]])
    assert measured <= charged, (row, charged / budget.MIB)


def test_a_pdf_pages_render_is_covered_by_its_page_cost():
    """A page's cost is its held bytes per pixel plus max(detection, recognition); while it renders
    no model runs on it, so that second term must cover the renderer's fixed allowance."""
    assert budget.REC_FIXED_BYTES >= budget.PDF_WORKER_FIXED_BYTES
    assert budget.PDF_RENDER_BYTES_PER_PIXEL == 3 + budget.PDF_WORKER_BYTES_PER_PIXEL  # the BGR array + the worker


def test_the_artifact_measured_every_kind_the_budget_charges():
    from bench.memory_costs import CHARGED

    assert {r["kind"] for r in ARTIFACT["rows"]} == set(CHARGED)


def _png(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(("data", "per_pixel"), [
    (_png(np.zeros((20, 30, 3), np.uint8)), budget.DECODE_BYTES_PER_PIXEL),
    (_png(np.zeros((20, 30, 4), np.uint8)), budget.DECODE_ALPHA_BYTES_PER_PIXEL),
    (_png(np.zeros((20, 30), np.uint16)), budget.DECODE_DEEP_BYTES_PER_PIXEL),
    (_png(np.zeros((20, 30), np.float32), "F", "TIFF"), budget.DECODE_DEEP_BYTES_PER_PIXEL),
])
def test_each_image_kind_is_charged_its_own_cost(data, per_pixel):
    doc = documents.probe(data, "image", 10, 10**6)
    assert doc.sizes == ((30, 20),) and doc.bytes_per_pixel == per_pixel


def test_pillows_pixel_check_stays_as_a_second_net():
    assert Image.MAX_IMAGE_PIXELS == imaging.PIXEL_NET
    # a header claiming more pixels than the net is refused by Pillow itself, whatever our limit
    data = bytearray(_png(np.zeros((1, 1, 3), np.uint8)))
    data[16:24] = (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big")  # IHDR width, height
    import zlib

    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    with pytest.raises(ImageTooLarge):
        imaging.probe_image(bytes(data), 10**12)


def test_only_the_accepted_formats_plugins_parse_a_file(monkeypatch):
    """A spy on Pillow's plugin registry (the real plugins run): GIF, ICO and EPS bytes reach none
    of their plugins; they are refused as unsupported."""
    Image.init()
    called = []
    for fmt in ("GIF", "ICO", "EPS", "PSD", "TGA"):
        factory, accept = Image.OPEN[fmt]
        monkeypatch.setitem(Image.OPEN, fmt, (lambda *a, _f=factory, _n=fmt: (called.append(_n), _f(*a))[1], accept))
    gif = _png(np.zeros((8, 8), np.uint8), "L", "GIF")
    ico = _png(np.zeros((16, 16, 4), np.uint8), "RGBA", "ICO")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    for data in (gif, ico, eps):
        with pytest.raises(UnsupportedImageFormat):
            imaging.decode_image(data, 10**6)
    assert called == []
    png = _png(np.zeros((8, 8, 3), np.uint8))
    assert imaging.decode_image(png, 10**6).shape == (8, 8, 3)


def test_the_workspace_is_the_fraction_of_the_limit_less_what_the_process_holds():
    """docs/security.md: requests may reserve fraction x limit (per server process) less what the
    warmed-up process holds; too little to serve is a start-up error naming the setting."""
    from preprocess_service.settings import Settings

    s = Settings(api_tokens="unit-test-token-0123456789", memory_limit_mib=2048)  # type: ignore[arg-type]
    held = 300 * budget.MIB
    assert budget.workspace_bytes(s, held) == int(2048 * budget.MIB * s.memory_budget_fraction) - held
    two = Settings(api_tokens="unit-test-token-0123456789", memory_limit_mib=2048, workers=2)  # type: ignore[arg-type]
    assert budget.workspace_bytes(two, held) == int(2048 * budget.MIB * two.memory_budget_fraction / 2) - held
    small = Settings(api_tokens="unit-test-token-0123456789", memory_limit_mib=512)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="OCR_MEMORY_LIMIT_MIB"):
        budget.workspace_bytes(small, held)


def test_the_limit_comes_from_the_cgroup_when_the_setting_is_not_given(monkeypatch, tmp_path):
    """OCR_MEMORY_LIMIT_MIB unset: the cgroup v2 memory.max, then v1's limit_in_bytes (its "no
    limit" value ignored), then 2048. The cgroup files are written to a temporary folder here: the
    reader is pointed at them (a STAND-IN for /sys/fs/cgroup, which a test cannot set)."""
    from pathlib import Path

    from preprocess_service import settings as settings_module

    files = {"/sys/fs/cgroup/memory.max": tmp_path / "memory.max",
             "/sys/fs/cgroup/memory/memory.limit_in_bytes": tmp_path / "limit_in_bytes"}
    real = Path.read_text

    def read_text(self, *a, **kw):
        stand_in = files.get(str(self))
        if stand_in is not None:
            return real(stand_in, *a, **kw)
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", read_text)
    files["/sys/fs/cgroup/memory.max"].write_text("1073741824\n")
    assert settings_module.cgroup_memory_limit_mib() == 1024
    files["/sys/fs/cgroup/memory.max"].write_text("max\n")
    files["/sys/fs/cgroup/memory/memory.limit_in_bytes"].write_text(str(3 * 2**30))
    assert settings_module.cgroup_memory_limit_mib() == 3072
    files["/sys/fs/cgroup/memory/memory.limit_in_bytes"].write_text(str(2**63 - 4096))  # v1's "no limit"
    assert settings_module.cgroup_memory_limit_mib() is None
    s = settings_module.Settings(api_tokens="unit-test-token-0123456789")  # type: ignore[arg-type]
    assert s.memory_limit_bytes == 2048 * 2**20
    files["/sys/fs/cgroup/memory.max"].write_text(str(2**30))
    assert s.memory_limit_bytes == 1024 * 2**20
