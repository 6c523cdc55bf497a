#!/usr/bin/env bash
# The prepared GPU check (make gpu-check): speed against baselines and every training path on CUDA, <= 8 minutes
# on one GPU; writes gpu_check_gpu.json and gpu_check_gpu.txt into $OUT (the device machine's output folder) or
# benchmarks/results/. Prepare once where there is network: make gpu-assets (wheels of hydra-core, omegaconf and
# antlr4 into .whl/, the GPT-2 tokenizer files and WikiText-2's validation text into .gpu_check/; both git-ignored
# and carried with the working tree). Arguments go to benchmarks/gpu_check.py (e.g. --quick, --parts gpt2).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import hydra, omegaconf" 2>/dev/null; then
    ls .whl/*.whl >/dev/null || { echo "error: hydra-core is missing and .whl/ holds no wheels (make gpu-wheels)" >&2; exit 2; }
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dllabs-site .whl/*.whl
    export PYTHONPATH=/tmp/dllabs-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONWARNINGS=ignore
exec "$PYTHON" benchmarks/gpu_check.py --out "${OUT:-benchmarks/results}" "$@"
