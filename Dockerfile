# OCR service image: the embedded (onnxruntime) mode is self-contained, with the models fetched
# and sha256-checked at build time. Also the source of model_repository/ for a Triton pod.
#   docker build -t ocr-service .                                      (or: make image)
#   docker build --build-arg VARIANT=gpu -t ocr-service:0.1.0-gpu .    (or: make image-gpu)
#   docker build --build-arg BASE_IMAGE=... (any Debian-based image with python3 + venv)
# The base is pinned by digest (the tag's multi-platform index on Docker Hub): a build gets exactly
# this image or fails, never whatever the tag points to that day. `make base-digest` re-resolves
# the tag on a machine that reaches Docker Hub and writes the new digest here (review it like any
# dependency update).
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
# cpu: onnxruntime, every package pinned by constraints.txt. gpu: the same service on
# onnxruntime-gpu with the CUDA 13.0 / cuDNN 9 runtime libraries from PyPI, exactly
# requirements-gpu.txt; it asks for CUDA first and refuses a silent CPU fallback
# (docs/deployment.md, "The embedded backend on a GPU"). The node brings the NVIDIA driver.
ARG VARIANT=cpu

FROM ${BASE_IMAGE} AS build
ARG VARIANT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml constraints.txt requirements-gpu.txt ./
COPY preprocess_service ./preprocess_service
COPY export_scripts ./export_scripts
# gpu: requirements-gpu.txt as it is (--no-deps: nothing resolved at build time), then the service
# without its dependencies (they name the CPU onnxruntime, which must not come in beside
# onnxruntime-gpu: both own the `onnxruntime` module). The build fails if the CPU onnxruntime is
# there, if anything else the service needs is missing (pip check), or if the onnxruntime that
# imports is not the GPU build.
RUN case "$VARIANT" in \
      cpu) /opt/venv/bin/pip install --no-cache-dir -c constraints.txt . ;; \
      gpu) /opt/venv/bin/pip install --no-cache-dir --no-deps -r requirements-gpu.txt \
        && /opt/venv/bin/pip install --no-cache-dir --no-deps . \
        && if /opt/venv/bin/pip show onnxruntime >/dev/null 2>&1; then echo "the CPU onnxruntime is installed" >&2; exit 1; fi \
        && { /opt/venv/bin/pip check > /tmp/pip-check.txt || true; } \
        && if grep -v -x -E -e 'preprocess-service [^ ]+ requires onnxruntime, which is not installed\.' \
             -e 'No broken requirements found\.' /tmp/pip-check.txt; then exit 1; fi \
        && rm /tmp/pip-check.txt \
        && /opt/venv/bin/python -c "import importlib.metadata as m, onnxruntime as o; \
assert o.__version__ == m.version('onnxruntime-gpu'), o.__version__; \
assert 'CUDAExecutionProvider' in o.get_available_providers(), o.get_available_providers()" ;; \
      *) echo "VARIANT must be cpu or gpu, not '$VARIANT'" >&2; exit 1 ;; \
    esac
COPY model_repository ./model_repository
# the published models (sha256-checked), then the INT8 models quantised from them with the
# committed activation ranges (export_scripts/int8_ranges; sha256-pinned as well), and the FP16
# set for GPUs (export_scripts/fp16.py, sha256-pinned; its converter stays out of the image). Both
# variants carry every set: a Triton on GPUs copies its models out of the CPU image.
RUN /opt/venv/bin/python -m export_scripts.fetch_models --repository /src/model_repository --cache-dir /tmp/wheels \
    && /opt/venv/bin/python -m export_scripts.quantize --repository /src/model_repository --cache-dir /tmp/wheels \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps --target /tmp/fp16 -c constraints.txt onnxconverter-common \
    && PYTHONPATH=/tmp/fp16 /opt/venv/bin/python -m export_scripts.fp16 --repository /src/model_repository --cache-dir /tmp/wheels \
    && rm -rf /tmp/fp16 /tmp/wheels

FROM ${BASE_IMAGE} AS runtime
# ORT_DISABLE_TELEMETRY: onnxruntime's Linux wheels (CPU and GPU) carry a telemetry uploader to
# mobile.events.data.microsoft.com, switched off here before anything imports onnxruntime.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1 \
    OCR_HOST=0.0.0.0 \
    OCR_PORT=8080 \
    OCR_MODEL_REPOSITORY=/app/model_repository
# A CJK font for the visualisations (visualize.py): WenQuanYi Micro Hei, ~5 MB installed;
# pinned to the version in Debian 12 (bookworm, the default BASE_IMAGE), last uploaded 2020
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei=0.2.0-beta-3.1 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 ocr \
    && useradd --system --uid 10001 --gid ocr --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ocr
COPY --from=build /src/model_repository /app/model_repository
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Nothing is written at run time outside /tmp (an emptyDir in the chart): the root filesystem
# can be read-only. Tokens come from OCR_API_TOKENS or a mounted OCR_API_TOKENS_FILE.
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('OCR_PORT', '8080'), timeout=4)"]
CMD ["python", "-m", "preprocess_service"]

# (each variant stage holds an instruction: buildah with --layers=false commits no image for a
# stage that is a bare FROM, and the final FROM could not find it)
FROM runtime AS runtime-cpu
LABEL io.example.ocr-service.variant="cpu"

FROM runtime AS runtime-gpu
LABEL io.example.ocr-service.variant="gpu"
USER 0:0
# The CUDA and cuDNN libraries of the nvidia-* wheels, found by the dynamic loader: onnxruntime's
# CUDA provider links libcudart, libcublas(Lt) and libcurand and loads libcudnn at run time.
# libcuda.so.1 is the node's driver, mounted by the NVIDIA container runtime.
RUN printf '%s\n' /opt/venv/lib/python3*/site-packages/nvidia/cu13/lib /opt/venv/lib/python3*/site-packages/nvidia/cudnn/lib \
      > /etc/ld.so.conf.d/onnxruntime-gpu.conf \
    && ldconfig \
    && python -c "import ctypes; [ctypes.CDLL(n) for n in ('libcudart.so.13', 'libcublasLt.so.13', 'libcublas.so.13', 'libcurand.so.10', 'libcufft.so.12', 'libcudnn.so.9')]"
USER 10001:10001
# CUDA first; a CPU fallback is refused at start-up unless OCR_ORT_ALLOW_CPU_FALLBACK=true is set.
# NVIDIA_VISIBLE_DEVICES is left to the runtime (the device plugin sets it for a pod that asks for
# nvidia.com/gpu; `docker run --gpus`): an image-wide "all" would hand every GPU of a node to a pod
# that asked for none. The float models on the GPU (the default INT8 set was measured on CPUs).
ENV OCR_ORT_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider \
    OCR_ORT_ALLOW_CPU_FALLBACK=false \
    OCR_MODEL_SET=ppocrv6_small \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# ${VARIANT:-cpu}: buildah (1.28, Debian 12) picks the stages to build before it applies the ARG's
# default, so the default is spelled out here as well
# hadolint ignore=DL3006
FROM runtime-${VARIANT:-cpu}
LABEL org.opencontainers.image.title="ocr-service"
