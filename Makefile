# Two commands do all the set-up on a fresh machine:
#   make serve   - venv + pinned deps + model files, then the service on $(HOST):$(PORT) (embedded onnxruntime)
#   make test    - the same set-up, then the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=
TOKEN_FILE ?= .secrets/api-tokens
DEPS_STAMP := $(VENV)/.deps-stamp
FONT := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
REF_VENV ?= .venv-ref
REF_STAMP := $(REF_VENV)/.deps-stamp

.PHONY: help setup venv models fonts serve test eval reference clean

help:
	@echo "make serve   start the service on $(HOST):$(PORT) (HOST/PORT override), embedded onnxruntime backend"
	@echo "make test    run the whole test suite"
	@echo "make eval    accuracy (CER) on ../shared/eval, ours vs PaddleOCR's own pipeline"
	@echo "make models  fetch and verify the model files into model_repository/"

$(DEPS_STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[test]'
	@touch $@

venv: $(DEPS_STAMP)

models: $(DEPS_STAMP)
	$(PY) -m export_scripts.fetch_models

# The label test renders text in DejaVu Sans (Debian's fonts-dejavu-core).
fonts:
	@test -f $(FONT) || { echo "installing fonts-dejavu-core"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null; }
	@test -f $(FONT) || { echo "error: $(FONT) is missing (apt-get install fonts-dejavu-core)"; exit 1; }

setup: venv models

serve: setup
	OCR_HOST=$(HOST) OCR_PORT=$(PORT) $(PY) -m preprocess_service --dev-token-file $(TOKEN_FILE)

test: setup fonts
	$(PY) -m pytest $(PYTEST_ARGS)

# PaddleOCR's own pipeline as the accuracy reference, in a venv of its own (it is large).
$(REF_STAMP): evaluation/reference-requirements.txt
	@test -x $(REF_VENV)/bin/python || $(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip --disable-pip-version-check install -q -r evaluation/reference-requirements.txt
	@touch $@

reference: $(REF_STAMP)

eval: setup reference
	$(PY) -m evaluation.run_eval --reference-python $(REF_VENV)/bin/python

clean:
	rm -rf $(VENV) $(REF_VENV) .pytest_cache
