# OCR service image: the embedded (onnxruntime) mode is self-contained, with the models fetched
# and sha256-checked at build time. Also the source of model_repository/ for a Triton pod.
#   docker build -t ocr-service .          (or: make image)
#   docker build --build-arg BASE_IMAGE=... (any Debian-based image with python3 + venv)
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml constraints.txt ./
COPY preprocess_service ./preprocess_service
COPY export_scripts ./export_scripts
# pinned: every package comes from constraints.txt
RUN /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .
COPY model_repository ./model_repository
RUN /opt/venv/bin/python -m export_scripts.fetch_models --repository /src/model_repository --cache-dir /tmp/wheels \
    && rm -rf /tmp/wheels

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
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
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/model_repository /app/model_repository
WORKDIR /app
# Nothing is written at run time outside /tmp (an emptyDir in the chart): the root filesystem
# can be read-only. Tokens come from OCR_API_TOKENS or a mounted OCR_API_TOKENS_FILE.
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('OCR_PORT', '8080'), timeout=4)"]
CMD ["python", "-m", "preprocess_service"]
