#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): one line per check, "NAME ok|FAIL numbers", exit 1 on any FAIL.
#   benchmarks/gpu_check.sh                 # on one GPU: every example on CUDA against CPU, a probe, torchrun 2v1, speed
#   benchmarks/gpu_check.sh --device cpu    # the tiny CPU shape CI runs
# Any further options go to gpu_check.py (--peak-tflops, --examples, --only, --require-goal; see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PY" benchmarks/gpu_check.py "$@"
