#!/usr/bin/env bash
# make test-image: build the service image with podman from a Debian base made here (no base
# image can be pulled on this machine), run it with a read-only root filesystem on the host
# network, and check /healthz and one authenticated OCR call. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PY:-.venv/bin/python}
BASE=localhost/ocr-base:bookworm
IMAGE=localhost/ocr-service:test
ROOTFS=.cache/image/rootfs
PODMAN=(podman --storage-driver vfs)
# workarounds on this machine: chroot isolation for RUN, runc, bounded ulimits, host network,
# the host CA bundle for pip inside RUN
export BUILDAH_ISOLATION=chroot
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
CA=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "installing podman/buildah/debootstrap"; apt-get update -qq;
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman buildah debootstrap runc >/dev/null; break; }
done

if ! "${PODMAN[@]}" image exists "$BASE"; then
  echo "== base image: debootstrap bookworm (minbase + python3)"
  rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" http://deb.debian.org/debian >/dev/null
  tar -C "$ROOTFS" -c . | "${PODMAN[@]}" import - "$BASE" >/dev/null
  rm -rf "$ROOTFS"
fi

echo "== build $IMAGE (BASE_IMAGE=$BASE)"
"${PODMAN[@]}" build --format docker --runtime runc --network host "${LIMITS[@]}" "${CA[@]}" \
  --build-arg BASE_IMAGE="$BASE" -t "$IMAGE" -f Dockerfile . 

PORT=$($PY -c "from preprocess_service.localserver import free_port; print(free_port())")
TOKEN=$($PY -c "import secrets; print(secrets.token_urlsafe(24))")
NAME=ocr-test-image-$$
cleanup() { "${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "== run (read-only root filesystem, non-root, port $PORT)"
"${PODMAN[@]}" run -d --name "$NAME" --runtime runc --network host "${LIMITS[@]}" \
  --read-only --tmpfs /tmp -e OCR_PORT="$PORT" -e OCR_API_TOKENS="$TOKEN" "$IMAGE" >/dev/null

echo "== check"
OCR_URL="http://127.0.0.1:$PORT" OCR_TOKEN="$TOKEN" $PY - <<'PYEOF'
import base64, io, os, time, httpx
from PIL import Image, ImageDraw, ImageFont
url, token = os.environ["OCR_URL"], os.environ["OCR_TOKEN"]
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
ImageDraw.Draw(img).text((20, 30), "IMAGE TEST 2026", fill="black", font=ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 36))
buf = io.BytesIO(); img.save(buf, format="PNG")
body = {"image": base64.b64encode(buf.getvalue()).decode()}
assert httpx.post(f"{url}/v1/ocr", json=body, timeout=60).status_code == 401
r = httpx.post(f"{url}/v1/ocr", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60)
assert r.status_code == 200, r.text
assert r.json()["text"] == "IMAGE TEST 2026", r.json()
page = httpx.get(f"{url}/", timeout=10)
assert page.status_code == 200 and "OCR service demo" in page.text  # packaged static page
print("healthz ok, readyz ok, demo page ok, OCR:", r.json()["text"], r.json()["model"]["execution_providers"])
PYEOF
USER_ID=$("${PODMAN[@]}" exec "$NAME" id -u)
[ "$USER_ID" = "10001" ] || { echo "container runs as uid $USER_ID, expected 10001"; exit 1; }
"${PODMAN[@]}" logs "$NAME" 2>&1 | grep -q "$TOKEN" && { echo "the token appears in the container log"; exit 1; }
"${PODMAN[@]}" image inspect "$IMAGE" | $PY -c "import json, sys; hc = json.load(sys.stdin)[0].get('Healthcheck') or {}; sys.exit(0 if 'healthz' in str(hc.get('Test')) else 1)" \
  || { echo "the image has no HEALTHCHECK"; exit 1; }
echo "test-image: 1 passed, 0 failed"
