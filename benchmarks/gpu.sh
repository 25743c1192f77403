#!/usr/bin/env bash
# The GPU path, checked and timed in one command (about 6 minutes on a T4, under 10):
#
#   bash benchmarks/gpu.sh                       # the original recipe, 1024/1024/2, on the embedded corpus
#   bash benchmarks/gpu.sh --corpus /path/to/hpd # on the Harry Potter books
#
# (a) trains 300 steps in fp32 and in the precision `auto` picks, on the same batches, and fails
#     when their losses part by more than 2%; (b) times one epoch of the study's loop
#     (benchmarks/reference.py), lmlib with identical maths and lmlib in `auto`: targets >= 3x and
#     >= 0.95x the study's loop; (c) peak GPU memory. Prints a table, writes
#     benchmarks/results/gpu.json, and exits non-zero when a check failed (benchmarks/gpu_check.py).
# Uses $PYTHON, else the project's .venv when its torch sees a GPU, else python3. Without a GPU it
# checks itself on the CPU (try --size 64x64x2 --steps 40); the speed targets then do not apply.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    PYTHON=.venv/bin/python
  fi
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
