#!/usr/bin/env bash
# The GPU benchmark on the GPU machine, from the loads `make gpu-stage` prepared (docs/gpu.md):
# check and join the loads, install the wheels into a venv that also sees the machine's own
# packages (CUDA/cuDNN, numpy, opencv, NVML), run bench/gpu.py. The artifact goes to $OUT (what
# the device tool brings back) or, without it, to docs/artifacts/gpu-bench.json.
#   bash bench/gpu_run.sh [extra bench.gpu arguments, e.g. --budget-s 300]
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${GPU_STAGE:-.gpu-stage}
PY=${GPU_PYTHON:-python3}
OUT_FILE="${OUT:-docs/artifacts}/gpu-bench.json"
"$PY" -m bench.gpu_stage --assemble "$STAGE" --into "$STAGE/assembled"
VENV=${GPU_VENV:-$STAGE/venv}  # an existing venv instead (the CPU dry run of make test uses .venv)
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv --system-site-packages "$VENV"
fi
shopt -s nullglob
wheels=("$STAGE"/assembled/wheels/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps "${wheels[@]}"
fi
"$VENV/bin/python" -m bench.gpu --stage "$STAGE/assembled" --out "$OUT_FILE" "$@"
