#!/usr/bin/env bash
# The original recipe on a GPU: the original training loop vs lmlib (mixed precision,
# fused cuDNN kernels), a few epochs each on the same data. One command:
#
#   bash benchmarks/gpu.sh                 # 1024/1024/2, 3 epochs of the default corpus
#   bash benchmarks/gpu.sh --epochs 5 --corpus /path/to/harry_potter
#
# Uses $PYTHON, else the project's .venv when its torch sees a GPU, else python3.
# Prints seconds per epoch, tokens/s, peak GPU memory and the ratio; writes
# benchmarks/results/gpu_compare.json. Without a GPU it runs on the CPU (try --size 64x64x2).
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
exec "$PYTHON" benchmarks/gpu_compare.py "$@"
