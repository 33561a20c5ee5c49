#!/usr/bin/env bash
# GPU path of the benchmark suite: the same side-by-side throughput runs as `make bench`, with
# XLA (jit_compile) and mixed precision (mixed_float16) each off and on, then the input
# pipeline against what each model consumes and the DCGAN scaling sweep (with peak GPU memory).
# Needs only the installed package and its embedded data (no network): it uses .venv/bin/python
# when a checkout has one, else $PYTHON or python3. Writes benchmarks/RESULTS-gpu-*.md and prints
# them. Run from the repository root: `make bench-gpu` or `bash benchmarks/gpu.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
export TF_CPP_MIN_LOG_LEVEL=2

# Without a GPU every figure below would be a CPU figure under a GPU file name.
if ! "$PYTHON" - <<'PY'
import sys
import tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
print("GPUs:", [g.name for g in gpus] or "none")
sys.exit(0 if gpus else 1)
PY
then
  if [ "${ALLOW_CPU:-0}" != 1 ]; then
    echo "benchmarks/gpu.sh: TensorFlow sees no GPU (pip install 'tensorflow[and-cuda]==2.21.*'" \
      "brings the CUDA libraries on Linux); ALLOW_CPU=1 runs it on the CPU anyway." >&2
    exit 1
  fi
fi

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
# The pipeline must keep ahead of the fastest step, which is the GPU's; scaling with the
# defaults (jit_compile="auto": XLA on a GPU).
out="benchmarks/RESULTS-gpu-pipeline-scaling.md"
echo "=== input pipeline and scaling (jit_compile=auto) ==="
"$PYTHON" benchmarks/run.py --only throughput pipeline scaling --out "$out"
sed -n '/^## Input pipeline/,$p' "$out"
