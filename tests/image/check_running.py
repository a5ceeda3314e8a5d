"""The checks on a running service container (tests/image/test-image.sh, test-image-gpu.sh):
/healthz and /readyz, 401 without a token, one authenticated OCR call that reads the rendered text
back, the packaged demo page. OCR_URL, OCR_TOKEN; OCR_EXPECT_PROVIDER: the one execution provider
every model must report in the response's model.execution_providers (unset: not checked);
OCR_RESULT_FILE: where to write the OCR response's text and model as JSON (unset: nowhere)."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time

import httpx
from PIL import Image, ImageDraw, ImageFont


def main() -> int:
    url, token = os.environ["OCR_URL"], os.environ["OCR_TOKEN"]
    expect = os.environ.get("OCR_EXPECT_PROVIDER")
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200 and httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "container not ready in 180 s"
        time.sleep(1)
    img = Image.new("RGB", (420, 100), "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 36)
    ImageDraw.Draw(img).text((20, 30), "IMAGE TEST 2026", fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    body = {"image": base64.b64encode(buf.getvalue()).decode()}
    assert httpx.post(f"{url}/v1/ocr", json=body, timeout=60).status_code == 401
    r = httpx.post(f"{url}/v1/ocr", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "IMAGE TEST 2026", r.json()
    providers = r.json()["model"]["execution_providers"]
    if expect:
        assert providers and set(providers.values()) == {expect}, providers
    page = httpx.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and "OCR service demo" in page.text  # packaged static page
    print("healthz ok, readyz ok, demo page ok, OCR:", r.json()["text"], providers)
    if os.environ.get("OCR_RESULT_FILE"):
        with open(os.environ["OCR_RESULT_FILE"], "w") as f:
            json.dump({"text": r.json()["text"], "model": r.json()["model"]}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
