"""Visualisations draw CJK text with a font that has the glyphs (fonts-wqy-microhei, which the
image and `make test` install), not as tofu boxes; without such a font they say so, once."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from PIL import ImageFont

from preprocess_service import visualize

CHINESE = "汉字测试"
BOX = [[40, 80], [360, 80], [360, 120], [40, 120]]  # a 40 px high line: text drawn 24 px high above it


def _cjk_font() -> str:
    path = visualize.font_path()
    if path is None:
        pytest.fail("no CJK font for visualisations: `make test` installs fonts-wqy-microhei "
                    "(apt-get install fonts-wqy-microhei)")
    return path


def _glyph(font, ch: str) -> tuple:
    mask = font.getmask(ch)
    return mask.size, bytes(mask)


def test_the_font_visualize_picks_has_distinct_cjk_glyphs():
    path = _cjk_font()
    assert path in visualize.CJK_FONTS
    font = ImageFont.truetype(path, 28)
    glyphs = {ch: _glyph(font, ch) for ch in CHINESE + "한カ"}
    notdef = _glyph(font, "\u0378")  # an unassigned code point: the font's missing-glyph box
    assert all(g != notdef for g in glyphs.values())
    assert len(set(glyphs.values())) == len(glyphs)  # tofu boxes would all be the same
    assert all(np.frombuffer(g[1], np.uint8).any() for g in glyphs.values())  # and none is blank


def _drawn(text: str, font: str | None = None) -> np.ndarray:
    img = np.full((160, 400, 3), 255, np.uint8)
    jpeg = visualize.draw(img, [BOX], [text], quality=95, font=font)
    out = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert out.shape == img.shape
    return out[40:80].astype(int)  # the band above the box, where the text goes


def test_a_chinese_line_is_drawn_with_real_glyphs():
    _cjk_font()
    a, b = _drawn(CHINESE), _drawn(CHINESE[::-1])
    # red ink in the text band
    assert ((a[:, :, 2] > 150) & (a[:, :, 1] < 100)).sum() > 200
    # the same characters in another order give another picture: tofu boxes would not
    assert np.abs(a - b).mean() > 3
    # and each glyph differs from every other one where it is drawn
    assert np.abs(_drawn("汉汉汉汉") - _drawn("字字字字")).mean() > 3


def test_without_a_cjk_font_it_says_why_once_and_the_check_above_sees_tofu(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(visualize, "CJK_FONTS", ())
    missing = str(tmp_path / "missing.ttf")  # the OCR_VISUALIZE_FONT setting; a fresh lookup (cached per value)
    with caplog.at_level(logging.WARNING, logger=visualize.__name__):
        assert visualize.font_path(missing) is None
        a, b = _drawn(CHINESE, missing), _drawn(CHINESE[::-1], missing)
        _drawn("again", missing)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot be loaded as a font" in m for m in messages) == 1
    assert sum("no CJK-capable font found" in m and "as boxes" in m for m in messages) == 1
    # Pillow's default font has no CJK glyphs: both orders draw the same four boxes
    assert np.abs(a - b).mean() < 0.5


def test_override_by_the_setting(tmp_path, caplog, monkeypatch):
    """OCR_VISUALIZE_FONT is a setting like the others (read with the rest of the environment)."""
    from preprocess_service.settings import Settings

    cjk = _cjk_font()
    monkeypatch.setenv("OCR_VISUALIZE_FONT", cjk)
    setting = Settings(api_tokens="x").visualize_font
    assert str(setting) == cjk and visualize.font_path(setting) == cjk
    bad = tmp_path / "not-a-font.ttf"
    bad.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger=visualize.__name__):
        assert visualize.font_path(bad) == cjk  # falls back to the known paths
    assert any("cannot be loaded as a font" in r.getMessage() for r in caplog.records)
