"""The benchmark's images: every item of evaluation/data plus rendered labels of several sizes.

Every system gets exactly the same encoded bytes. Each item carries its scoring rule, so the CER
of every system is computed by the one scorer of ``evaluation/scoring.py``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from shapely.geometry import Polygon

from evaluation.scoring import Rule, load_items

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

# name -> (font size, lines); from a one-line shipping label to a dense full page.
_WORDS = ("invoice", "total", "order", "2026", "shipping", "address", "Berlin", "quantity", "unit", "price",
          "EUR", "reference", "customer", "delivery", "#4711", "weight", "kg", "parcel", "date", "11/23")


def _page_lines(n: int, words: int) -> list[str]:
    return [" ".join(_WORDS[(i * 7 + j * 3) % len(_WORDS)] for j in range(words)) for i in range(n)]


LABELS: dict[str, tuple[int, list[str]]] = {
    "label_s": (22, ["PARCEL 4711-0815"]),
    "label_m": (28, ["ORDER 2026-11-23", "Ship to: Alexanderplatz 1", "10178 Berlin", "Weight 2.4 kg"]),
    "label_l": (40, _page_lines(12, 5)),
    "label_xl": (36, _page_lines(40, 9)),
}


@dataclass(frozen=True)
class BenchItem:
    name: str
    data: bytes  # the encoded image every system receives
    gt_lines: list[str]
    rule: Rule
    dont_care: list[Polygon] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)  # width, height


def render_label(size: int, lines: list[str]) -> Image.Image:
    if not FONT.exists():
        raise SystemExit(f"{FONT} missing: install fonts-dejavu-core (make fonts)")
    font = ImageFont.truetype(str(FONT), size)
    margin, step = 2 * size, int(size * 1.7)
    width = max(int(font.getlength(t)) for t in lines) + 2 * margin
    im = Image.new("RGB", (width, len(lines) * step + 2 * margin), "white")
    draw = ImageDraw.Draw(im)
    for i, text in enumerate(lines):
        draw.text((margin, margin + i * step), text, fill="black", font=font)
    return im


def load(eval_dir: Path, labels: bool = True) -> list[BenchItem]:
    items = []
    for it in load_items(eval_dir):
        data = it.image.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
        items.append(BenchItem(it.name, data, it.gt_lines, it.rule, it.dont_care, size))
    if labels:
        for name, (font_size, lines) in LABELS.items():
            im = render_label(font_size, lines)
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            items.append(BenchItem(f"{name}.png", buf.getvalue(), lines, Rule(), [], im.size))
    return items
