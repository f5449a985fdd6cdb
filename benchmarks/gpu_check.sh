#!/usr/bin/env bash
# GPU check: the tests that need CUDA, then the overhead benchmark on the GPU. About five minutes.
# Run from the repository root on a machine with a CUDA GPU:  bash benchmarks/gpu_check.sh [OUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check-out}}"
mkdir -p "$out"
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py=python3

"$py" - <<'PY' | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
PY

echo "== tests that need CUDA"
LRFIND_REQUIRE_CUDA=1 timeout 240 "$py" -m pytest -q -m cuda tests 2>&1 | tee "$out/pytest-cuda.txt"
tests=${PIPESTATUS[0]}

echo "== single-process lrfind run on the GPU"
timeout 120 "$py" -m lrfind_cli run configs/resnet.yaml --device cuda --set precision=bf16 --json --out "$out/resnet" \
    > "$out/resnet.json" 2> "$out/resnet.err"
run=$?

echo "== torchrun, one process on the GPU (NCCL)"
timeout 120 "$py" -m torch.distributed.run --standalone --nproc_per_node=1 -m lrfind_cli run configs/tiny.yaml --device cuda -q \
    --out "$out/torchrun" > "$out/torchrun.txt" 2>&1
ddp=$?

echo "== overhead benchmark on the GPU"
timeout 300 "$py" benchmarks/overhead.py --device cuda --reps 5 --write "$out/benchmarks.md" 2>&1 | tee "$out/overhead.txt"
bench=${PIPESTATUS[0]}

echo "tests=$tests run=$run torchrun=$ddp bench=$bench" | tee "$out/status.txt"
[ "$tests" -eq 0 ] && [ "$run" -eq 0 ] && [ "$ddp" -eq 0 ] && [ "$bench" -eq 0 ]
