#!/usr/bin/env bash
# GPU path of the benchmark suite: the same side-by-side throughput runs as `make bench`, with
# XLA (jit_compile) and mixed precision (mixed_float16) each off and on. Needs only the
# installed package and its embedded data (no network). Writes benchmarks/RESULTS-gpu-*.md and
# prints them. Run from the repository root: `make bench-gpu` or `bash benchmarks/gpu.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
export TF_CPP_MIN_LOG_LEVEL=2

"$PYTHON" - <<'PY'
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print("GPUs:", [g.name for g in gpus] or "none (the numbers below are CPU numbers)")
PY

for xla in false true; do
  for mixed in off on; do
    out="benchmarks/RESULTS-gpu-xla-${xla}-mixed-${mixed}.md"
    flags=(--only throughput --jit-compile "$xla" --out "$out")
    [ "$mixed" = on ] && flags+=(--mixed-precision)
    echo "=== jit_compile=${xla}, mixed precision ${mixed} ==="
    "$PYTHON" benchmarks/run.py "${flags[@]}"
    sed -n '/^## Train-step throughput/,$p' "$out"
  done
done
