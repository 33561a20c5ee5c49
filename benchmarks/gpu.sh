#!/usr/bin/env bash
# GPU path of the benchmark suite: the same side-by-side throughput runs as `make bench`, with
# XLA (jit_compile) and mixed precision (mixed_float16) each off and on, then the input
# pipeline against what each model consumes and the DCGAN scaling sweep (with peak GPU memory).
# Needs only the installed package and its embedded data (no network): it uses $PYTHON when
# set (a path, or a name found on PATH), else .venv/bin/python when the checkout has one, else
# python3. Writes benchmarks/RESULTS-gpu-*.md and prints them. Run from the repository root:
# `make bench-gpu` or `bash benchmarks/gpu.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# A bare name (PYTHON=python3.11) is looked up on PATH; one that is not there stops the run
# rather than falling back to another Python.
if ! resolved="$(command -v "$PYTHON")" || [ ! -x "$resolved" ]; then
  echo "benchmarks/gpu.sh: PYTHON=$PYTHON is neither an executable file nor a command on PATH" >&2
  exit 1
fi
PYTHON="$resolved"
export TF_CPP_MIN_LOG_LEVEL=2

# Without a GPU every figure below would be a CPU figure under a GPU file name. Exit 3: no GPU;
# any other failure (no TensorFlow, a traceback) has said why and stops the script.
status=0
"$PYTHON" - <<'PY' || status=$?
import sys
try:
    import tensorflow as tf
except ImportError:
    print(
        f"benchmarks/gpu.sh: this Python ({sys.executable}) has no TensorFlow; set PYTHON to "
        "one with TensorFlow and medgen_tf installed",
        file=sys.stderr,
    )
    sys.exit(2)
gpus = tf.config.list_physical_devices("GPU")
print("GPUs:", [g.name for g in gpus] or "none")
sys.exit(0 if gpus else 3)
PY
if [ "$status" != 0 ]; then
  [ "$status" = 3 ] || exit "$status"
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
