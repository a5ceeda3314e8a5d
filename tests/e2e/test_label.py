"""A printed label in a common sans font comes back exactly, line by line, in order."""

from __future__ import annotations

import pytest

from tests.helpers import b64, png_bytes, render_lines

LABEL = ["1072-604-01 REV E", "ASSY-CA-I/O BD TO FGA BHD", "J16A", "I/OBD-P16A"]


@pytest.mark.parametrize("size", [20, 28, 44])
def test_printed_label_exact_lines_in_order(client, size):
    image = render_lines(LABEL, size=size)
    r = client.post("/v1/ocr", json={"image": b64(png_bytes(image))})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [line["text"] for line in body["lines"]] == LABEL
    assert body["text"] == "\n".join(LABEL)
    assert all(line["confidence"] > 0.8 for line in body["lines"])
