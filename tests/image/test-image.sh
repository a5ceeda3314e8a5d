#!/usr/bin/env bash
# make test-image: build the service image with podman from a Debian base built locally with
# debootstrap (no base image is pulled), run it with a read-only root filesystem on the host
# network, and check /healthz and one authenticated OCR call. Cleans up after itself.
set -euo pipefail
# shellcheck source=tests/image/common.sh
source "$(dirname "$0")/common.sh"

IMAGE=localhost/ocr-service:test

ensure_base
build_image "$IMAGE"

PORT=$(free_port)
TOKEN=$(new_token)
NAME=ocr-test-image-$$
cleanup() { "${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "== run (read-only root filesystem, non-root, port $PORT)"
"${PODMAN[@]}" run -d --name "$NAME" --runtime runc --network host "${LIMITS[@]}" \
  --read-only --tmpfs /tmp -e OCR_PORT="$PORT" -e OCR_API_TOKENS="$TOKEN" "$IMAGE" >/dev/null

echo "== check"
OCR_URL="http://127.0.0.1:$PORT" OCR_TOKEN="$TOKEN" $PY tests/image/check_running.py
USER_ID=$("${PODMAN[@]}" exec "$NAME" id -u)
[ "$USER_ID" = "10001" ] || { echo "container runs as uid $USER_ID, expected 10001"; exit 1; }
"${PODMAN[@]}" logs "$NAME" 2>&1 | grep -q "$TOKEN" && { echo "the token appears in the container log"; exit 1; }
"${PODMAN[@]}" image inspect "$IMAGE" | $PY -c "import json, sys; hc = json.load(sys.stdin)[0].get('Healthcheck') or {}; sys.exit(0 if 'healthz' in str(hc.get('Test')) else 1)" \
  || { echo "the image has no HEALTHCHECK"; exit 1; }
echo "test-image: 1 passed, 0 failed"
