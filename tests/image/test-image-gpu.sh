#!/usr/bin/env bash
# make test-image-gpu: build the GPU variant of the service image (VARIANT=gpu: onnxruntime-gpu and
# the CUDA/cuDNN libraries from PyPI, requirements-gpu.txt) with podman on the Debian base the CPU
# image test uses, then, on a machine without a GPU:
#   - the image holds exactly requirements-gpu.txt (no CPU onnxruntime), and every library the CUDA
#     provider links resolves inside the image except the driver's libcuda.so.1;
#   - with its defaults (CUDA first, no fallback) the container refuses to start, exits non-zero,
#     and says what was asked for and what was given;
#   - with OCR_ORT_ALLOW_CPU_FALLBACK=true it serves (read-only root filesystem, uid 10001) and
#     reports CPUExecutionProvider for every model in /v1/ocr's model.execution_providers.
# Prints the build time and the image size. Cleans up the containers after itself.
set -euo pipefail
# shellcheck source=tests/image/common.sh
source "$(dirname "$0")/common.sh"

IMAGE=localhost/ocr-service:test-gpu
RUN=("${PODMAN[@]}" run --runtime runc --network host "${LIMITS[@]}" --read-only --tmpfs /tmp)

ensure_base
BUILD_SECONDS=null
if [ "${SKIP_BUILD:-0}" != 1 ] || ! "${PODMAN[@]}" image exists "$IMAGE"; then
  build_image "$IMAGE" --build-arg VARIANT=gpu
fi
IMAGE_BYTES=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")

TOKEN=$(new_token)
NAME=ocr-test-image-gpu-$$
LOG=$(mktemp)
RESULT=$(mktemp)
REFUSAL=$(mktemp)
cleanup() { "${PODMAN[@]}" rm -f "$NAME" "$NAME-refuse" >/dev/null 2>&1 || true; rm -f "$LOG" "$RESULT" "$REFUSAL"; }
trap cleanup EXIT

echo "== contents: the pinned GPU set, no CPU onnxruntime, the CUDA provider's libraries"
# one container (vfs copies the whole image for each): the installed distributions, then ldd of
# onnxruntime's CUDA provider, then cuDNN loaded through the loader's paths
"${PODMAN[@]}" run --rm --runtime runc "${LIMITS[@]}" --read-only "$IMAGE" sh -c '
python -c "import importlib.metadata as m; print(\"\n\".join(\"dist \" + d.name + \"==\" + d.version for d in m.distributions()))"
ldd "$(python -c "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), \"capi\", \"libonnxruntime_providers_cuda.so\"))")"
python -c "import ctypes; ctypes.CDLL(\"libcudnn.so.9\"); print(\"libcudnn.so.9 loads\")"' > "$LOG"
sed -n 's/^dist //p' "$LOG" | $PY -c "
import re, sys
norm = lambda s: re.sub(r'[-_.]+', '-', s.strip()).lower()
have = {norm(line) for line in sys.stdin if line.strip()}
want = {norm(line) for line in open('requirements-gpu.txt') if line.strip() and not line.startswith('#')}
extra = {p for p in have - want if not p.startswith(('preprocess-service==', 'pip==', 'setuptools=='))}
assert not extra and not want - have, ('in the image only', sorted(extra), 'missing', sorted(want - have))
assert not any(p.startswith('onnxruntime==') for p in have)
print(f'{len(want)} packages, exactly requirements-gpu.txt (+ preprocess-service)')
"
grep -E 'libcu|libcudnn' "$LOG" | sed 's/ (0x[0-9a-f]*)//'
MISSING=$(grep 'not found' "$LOG" | awk '{print $1}' | tr '\n' ' ')
[ "$MISSING" = "libcuda.so.1 " ] || { echo "libraries not found in the image: '$MISSING' (only the driver's libcuda.so.1 may be missing)"; exit 1; }
grep -qx 'libcudnn.so.9 loads' "$LOG" || { echo "libcudnn.so.9 does not load"; exit 1; }
"${PODMAN[@]}" image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | grep -E '^(OCR_ORT|NVIDIA)' | tee "$LOG"
grep -qx 'OCR_ORT_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider' "$LOG" && grep -qx 'OCR_ORT_ALLOW_CPU_FALLBACK=false' "$LOG" \
  || { echo "the GPU image must default to CUDA first with no CPU fallback"; exit 1; }

echo "== run with the image's defaults: no GPU here, so it must refuse to start"
PORT=$(free_port)
set +e
timeout 300 "${RUN[@]}" --name "$NAME-refuse" -e OCR_PORT="$PORT" -e OCR_API_TOKENS="$TOKEN" "$IMAGE" > "$LOG" 2>&1
RC=$?
set -e
echo "exit status: $RC"
# the service logs JSON: the refusal is the last line of the start-up traceback
grep -o 'RuntimeError: model [a-z0-9_]*: asked for [^"\\]*' "$LOG" | head -n 1 | tee "$REFUSAL"
grep -o 'Application startup failed[^"]*' "$LOG" || true
[ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] || { echo "expected a non-zero exit at start-up, got $RC"; tail -n 20 "$LOG"; exit 1; }
grep -q 'asked for CUDAExecutionProvider but onnxruntime gave CPUExecutionProvider' "$LOG" \
  || { echo "the refusal does not name what was asked for and what was given"; tail -n 20 "$LOG"; exit 1; }
grep -q 'OCR_ORT_ALLOW_CPU_FALLBACK' "$LOG" || { echo "the refusal does not name OCR_ORT_ALLOW_CPU_FALLBACK"; exit 1; }
if grep -q "$TOKEN" "$LOG"; then echo "the token appears in the container log"; exit 1; fi

echo "== run with OCR_ORT_ALLOW_CPU_FALLBACK=true: it serves and reports CPUExecutionProvider"
PORT=$(free_port)
"${RUN[@]}" -d --name "$NAME" -e OCR_PORT="$PORT" -e OCR_API_TOKENS="$TOKEN" -e OCR_ORT_ALLOW_CPU_FALLBACK=true "$IMAGE" >/dev/null
OCR_URL="http://127.0.0.1:$PORT" OCR_TOKEN="$TOKEN" OCR_EXPECT_PROVIDER=CPUExecutionProvider OCR_RESULT_FILE="$RESULT" \
  $PY tests/image/check_running.py
"${PODMAN[@]}" logs "$NAME" > "$LOG" 2>&1
grep -o 'model [a-z0-9_]* asked for CUDAExecutionProvider but runs on CPUExecutionProvider' "$LOG" | sort -u
grep -q 'asked for CUDAExecutionProvider but runs on CPUExecutionProvider' "$LOG" || { echo "the fallback is not logged"; exit 1; }
if grep -q "$TOKEN" "$LOG"; then echo "the token appears in the container log"; exit 1; fi
if grep -qi 'telemetry' "$LOG"; then echo "onnxruntime's telemetry is on (ORT_DISABLE_TELEMETRY)"; grep -i telemetry "$LOG"; exit 1; fi
curl_metrics=$($PY -c "import httpx; print(httpx.get('http://127.0.0.1:$PORT/metrics', timeout=10).text)" | grep '^ocr_model_info{')
echo "$curl_metrics"
if echo "$curl_metrics" | grep -q CUDA; then echo "/metrics reports CUDA on a machine without a GPU"; exit 1; fi
USER_ID=$("${PODMAN[@]}" exec "$NAME" id -u)
[ "$USER_ID" = "10001" ] || { echo "container runs as uid $USER_ID, expected 10001"; exit 1; }
# what was measured and seen, for docs/deployment.md ("The embedded backend on a GPU")
ARTIFACT=docs/artifacts/gpu-image.json BUILD_SECONDS=$BUILD_SECONDS IMAGE_BYTES=$IMAGE_BYTES RC=$RC \
  RESULT=$RESULT REFUSAL=$REFUSAL PODMAN_VERSION="$(podman --version)" $PY - <<'PYEOF'
import datetime, json, os, platform
art = os.environ["ARTIFACT"]
with open(os.environ["RESULT"]) as f:
    result = json.load(f)
with open(os.environ["REFUSAL"]) as f:
    refusal = f.read().strip()
build = os.environ["BUILD_SECONDS"]
record = {
    "written_by": "make test-image-gpu (tests/image/test-image-gpu.sh)",
    "measured_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": f"{os.cpu_count()} cores, no GPU, {platform.machine()}; {os.environ['PODMAN_VERSION']}, vfs storage, "
               "base image: debootstrap bookworm minbase + python3",
    "build_seconds": None if build == "null" else int(build),
    "image_bytes": int(os.environ["IMAGE_BYTES"]),
    "requirements": "requirements-gpu.txt",
    "default_run": {"exit_status": int(os.environ["RC"]), "refusal": refusal},
    "fallback_run": {"env": "OCR_ORT_ALLOW_CPU_FALLBACK=true", "text": result["text"],
                     "execution_providers": result["model"]["execution_providers"]},
}
if record["build_seconds"] is None and os.path.exists(art):
    with open(art) as f:
        record["build_seconds"] = json.load(f).get("build_seconds")  # SKIP_BUILD=1: keep the last build's time
with open(art, "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
print("wrote", art)
PYEOF
echo "test-image-gpu: 1 passed, 0 failed"
