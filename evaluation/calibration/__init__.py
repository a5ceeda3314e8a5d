"""The INT8 calibration set: rendered pages and text lines, generated deterministically.

Static quantisation (``export_scripts/quantize.py``) needs sample inputs to fix each activation's
int8 range. They must not come from ``evaluation/data`` (the CER gate would then be measured on
the images the ranges were fitted to) nor from the benchmark's rendered labels
(``bench/dataset.py``, whose exact reading is part of the adoption rule). So they are rendered
here from a fixed seed, with a vocabulary of our own:

* ``pages()``: ``N_PAGES`` detection inputs, 360 to 1500 px on a side: documents (white, tinted,
  noisy or graded paper, dark-on-light and light-on-dark), forms with rules, and "scenes"
  (coloured panels with text on a cluttered background), some slightly rotated or blurred;
  lines in eleven DejaVu faces (sans, serif, mono, condensed, bold, oblique) and, on some
  pages, WenQuanYi Micro Hei for Chinese, 13 to 60 px high.
* ``line_crops()``: ``N_LINES`` recognition inputs, single text lines cropped with a margin the
  way the pipeline crops detected boxes, same faces, sizes and colours; a fifth of them Chinese.

Everything comes from ``numpy.random.default_rng([SEED, stream, i])`` and Pillow's text
rendering: the same Pillow/FreeType and font files give the same pixels. ``python -m
evaluation.calibration --out DIR`` writes the set as PNGs to look at (nothing is committed: the
quantiser renders it in memory). Text content: words, numbers, dates, codes and prices drawn from
``_WORDS``/``_HANZI`` below; none of it is an evaluation or label line (tests/unit/test_int8.py
checks).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SEED = 20260417
N_PAGES = 16
N_LINES = 160

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
LATIN_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansCondensed.ttf",
    "DejaVuSansCondensed-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerifCondensed.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
)
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")

# Vocabulary of our own (not the evaluation set's, not bench/dataset.py's label words).
_WORDS = (
    "account", "balance", "statement", "payment", "receipt", "tax", "net", "gross", "discount", "subtotal",
    "item", "description", "amount", "service", "period", "contract", "number", "phone", "email", "street",
    "avenue", "suite", "floor", "room", "building", "station", "platform", "exit", "entrance", "north",
    "south", "east", "west", "open", "closed", "monday", "friday", "weekend", "hours", "menu", "coffee",
    "bakery", "pharmacy", "hotel", "parking", "ticket", "gate", "flight", "seat", "class", "boarding",
    "manual", "chapter", "section", "figure", "table", "appendix", "index", "summary", "results", "method",
    "sample", "measured", "value", "error", "signal", "module", "version", "release", "update", "warning",
    "caution", "danger", "notice", "please", "thank", "you", "welcome", "visit", "again", "online",
    "Straße", "Größe", "München", "Zürich", "Köln", "café", "résumé", "naïve", "façade", "Ærø",
    "ACME", "GmbH", "Ltd.", "Inc.", "No.", "Tel.", "Fax", "VAT", "IBAN", "BIC", "SKU", "QTY", "USD", "CHF",
)
_PUNCT = (",", ".", ":", ";", "!", "?", "-", "/", "(", ")", "&", "%", "+", "=", "*", "'", '"', "@", "#")
_HANZI = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"
    "十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相"
    "全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料"
    "象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取"
)


def _rng(stream: int, i: int) -> np.random.Generator:
    return np.random.default_rng([SEED, stream, i])


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _token(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.62:
        w = _pick(rng, _WORDS)
        c = rng.random()
        return w.upper() if c < 0.12 else w.capitalize() if c < 0.35 else w
    if r < 0.72:
        return str(int(rng.integers(0, 100000)))
    if r < 0.79:
        return f"{int(rng.integers(0, 10000))}.{int(rng.integers(0, 100)):02d}"
    if r < 0.85:
        return f"{int(rng.integers(1, 29)):02d}.{int(rng.integers(1, 13)):02d}.{int(rng.integers(1990, 2040))}"
    if r < 0.91:
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        return "".join(_pick(rng, letters) for _ in range(int(rng.integers(2, 4)))) + "-" + str(int(rng.integers(100, 99999)))
    return _pick(rng, _PUNCT) + _pick(rng, _WORDS) if rng.random() < 0.5 else _pick(rng, _WORDS) + _pick(rng, _PUNCT)


def text_line(rng: np.random.Generator, cjk: bool) -> str:
    if cjk:
        n = int(rng.integers(3, 15))
        s = "".join(_pick(rng, _HANZI) for _ in range(n))
        if rng.random() < 0.4:
            s += str(int(rng.integers(1, 999)))
        return s
    return " ".join(_token(rng) for _ in range(int(rng.integers(1, 9))))


def _font(rng: np.random.Generator, size: int, cjk: bool) -> ImageFont.FreeTypeFont:
    path = CJK_FONT if cjk else FONT_DIR / _pick(rng, LATIN_FONTS)
    if not path.exists():
        raise SystemExit(f"{path} missing: `make fonts cjk-fonts` installs the calibration fonts")
    return ImageFont.truetype(str(path), size)


def _colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(background, ink) with enough contrast to read; a fifth light-on-dark."""
    light = tuple(int(v) for v in rng.integers(200, 256, 3))
    dark = tuple(int(v) for v in rng.integers(0, 80, 3))
    return (dark, light) if rng.random() < 0.2 else (light, dark)


def _texture(rng: np.random.Generator, w: int, h: int, bg: tuple[int, ...], kind: int) -> Image.Image:
    base = np.empty((h, w, 3), np.float32)
    base[:] = bg
    if kind == 1:  # noisy paper
        base += rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    elif kind == 2:  # graded light
        ramp = np.linspace(-25, 15, h, dtype=np.float32)[:, None, None]
        base += ramp
    elif kind == 3:  # cluttered scene
        base += rng.normal(0, 12, (h, w, 3)).astype(np.float32)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def _fit(text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """The text shortened (by words, or characters for Chinese) to fit ``width`` pixels."""
    while len(text) > 1 and font.getlength(text) > width:
        text = text.rsplit(" ", 1)[0] if " " in text else text[:-1]
    return text


def page(i: int) -> Image.Image:
    """Calibration page ``i`` (RGB)."""
    return _page(i)[0]


def _page(i: int) -> tuple[Image.Image, list[str]]:
    rng = _rng(1, i)
    texts: list[str] = []
    kind = i % 4  # 0 plain, 1 noisy, 2 graded, 3 scene
    w, h = int(rng.integers(360, 1500)), int(rng.integers(360, 1500))
    bg, ink = _colours(rng)
    im = _texture(rng, w, h, bg, kind)
    draw = ImageDraw.Draw(im)
    cjk_page = rng.random() < 0.3
    if kind == 3:  # coloured panels (signs) with a line or two each
        for _ in range(int(rng.integers(3, 8))):
            pw, ph = int(rng.integers(w // 5, w // 2 + 1)), int(rng.integers(h // 10, h // 4 + 1))
            x0, y0 = int(rng.integers(0, max(1, w - pw))), int(rng.integers(0, max(1, h - ph)))
            pbg, pink = _colours(rng)
            draw.rectangle([x0, y0, x0 + pw, y0 + ph], fill=pbg)
            size = int(min(60, max(13, ph * rng.uniform(0.25, 0.45))))
            font = _font(rng, size, cjk_page and rng.random() < 0.6)
            text = _fit(text_line(rng, font.path == str(CJK_FONT)), font, pw - size // 3)
            texts.append(text)
            draw.text((x0 + size // 3, y0 + size // 3), text, fill=pink, font=font)
    else:
        y = int(rng.integers(8, 40))
        x_margin = int(rng.integers(8, max(9, w // 8)))
        rules = rng.random() < 0.3  # a form: horizontal rules between lines
        while True:
            size = int(rng.integers(13, 61) if rng.random() < 0.3 else rng.integers(14, 34))
            if y + size * 1.4 > h - 8:
                break
            font = _font(rng, size, cjk_page and rng.random() < 0.5)
            x = x_margin + int(rng.integers(0, max(1, w // 6)))
            text = _fit(text_line(rng, font.path == str(CJK_FONT)), font, w - x - 8)
            texts.append(text)
            draw.text((x, y), text, fill=ink, font=font)
            if rules:
                yr = y + int(size * 1.3)
                draw.line([(x_margin // 2, yr), (w - x_margin // 2, yr)], fill=ink, width=1)
            y += int(size * rng.uniform(1.3, 2.4))
    if rng.random() < 0.3:
        angle = float(rng.uniform(-4, 4))
        im = im.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=bg)
    if rng.random() < 0.25:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.3))))
    return im, texts


def line_crop(i: int) -> Image.Image:
    """Calibration text line ``i`` (RGB), cropped with a margin as a detected box would be."""
    return _line(i)[0]


def _line(i: int) -> tuple[Image.Image, str]:
    rng = _rng(2, i)
    cjk = i % 5 == 4
    size = int(rng.integers(14, 61))
    font = _font(rng, size, cjk)
    text = text_line(rng, cjk)
    bg, ink = _colours(rng)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    mx, my = int(size * rng.uniform(0.1, 0.5)), int(size * rng.uniform(0.1, 0.4))
    w, h = right - left + 2 * mx, bottom - top + 2 * my
    im = _texture(rng, w, h, bg, int(rng.integers(0, 4)))
    ImageDraw.Draw(im).text((mx - left, my - top), text, fill=ink, font=font)
    if rng.random() < 0.2:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.0))))
    return im, text


def _bgr(im: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:, :, ::-1])


def pages() -> list[np.ndarray]:
    """The detection calibration inputs, as the service decodes images: BGR uint8."""
    return [_bgr(page(i)) for i in range(N_PAGES)]


def line_crops() -> list[np.ndarray]:
    """The recognition calibration inputs: BGR uint8 line crops."""
    return [_bgr(line_crop(i)) for i in range(N_LINES)]


def digest() -> str:
    """sha256 over every rendered image of the set (shape and pixels): recorded beside the
    ranges measured from it, so a changed rendering (Pillow, FreeType, fonts) shows."""
    import hashlib

    h = hashlib.sha256()
    for img in pages() + line_crops():
        h.update(repr(img.shape).encode())
        h.update(img.tobytes())
    return h.hexdigest()


def lines_text() -> list[str]:
    """Every text line the set renders (to check it shares nothing with the evaluation set)."""
    return [t for i in range(N_PAGES) for t in _page(i)[1]] + [_line(i)[1] for i in range(N_LINES)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder to write pages/ and lines/ PNGs into")
    args = ap.parse_args(argv)
    for sub, fn, n in (("pages", page, N_PAGES), ("lines", line_crop, N_LINES)):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            fn(i).save(args.out / sub / f"{i:03d}.png")
    print(f"wrote {N_PAGES} pages and {N_LINES} lines into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
