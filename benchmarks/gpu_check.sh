#!/usr/bin/env bash
# GPU check, one prepared script for a lent GPU: about 3 minutes expected on one H200, every part bounded by a timeout,
# 295 s in all. Run from anywhere; it works in the repository root:
#   bash benchmarks/gpu_check.sh [OUT_DIR]             on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --dry-run [OUT_DIR]   on a CPU: toy sizes, Gloo; runs every part of this script
# Parts: (1) the tests marked cuda; (2) the main job's cost breakdown, fp32 and bf16, from result.json's `timing` and
# `memory` blocks ("n/a" where a key is missing); (3) benchmarks/overhead.py at 100+ steps: the overhead table against
# a bare loop, a ~100M-parameter transformer in bf16 whose step dominates, peak device and host memory against the bare
# loop; (4) FSDP from the spec under torchrun with NCCL (one GPU: world size 1, which checks the NCCL path and the
# exact restore of every shard, not the memory saving of sharding). OUT_DIR/report.md collects the numbers.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = "--dry-run" ]; then
    dry=1
    shift
fi
out="${1:-${OUT:-gpu-check-out}}"
mkdir -p "$out"
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's lrfind_cli and tests, installed or not

# The causal LM of the FSDP run: 34M parameters (8 blocks of width 512, an 8192-token vocabulary), in bf16.
lm=(--set model.kwargs.vocab_size=8192 --set model.kwargs.dim=512 --set model.kwargs.depth=8 --set model.kwargs.heads=8
    --set model.kwargs.max_len=256 --set data.kwargs.vocab_size=8192 --set data.kwargs.seq_len=256
    --set data.kwargs.num_samples=2048 --set data.batch_size=16 --set precision=bf16)
if [ "$dry" -eq 1 ]; then
    device=cpu
    require=0
    main=(--set data.kwargs.num_samples=64 --set data.kwargs.height=8 --set data.kwargs.width=8 --set data.batch_size=8
          --set sweep.num_iter=20)
    bench=(--dry-run)
    lm=(--set model.kwargs.max_len=16 --set data.kwargs.seq_len=16 --set data.kwargs.num_samples=64 --set data.batch_size=4
        --set precision=bf16 --set sweep.num_iter=20)
    limit=(600 600 600 600)  # guards only: a busy CPU is slow
else
    device=cuda
    require=1
    main=()
    bench=(--device cuda --reps 4 --mlp-reps 11 --mlp-steps 300 --resnet-steps 100 --transformer-steps 100 --breakdown-reps 1)
    limit=(45 30 150 40)  # seconds: tests, each main-job run, benchmark (about 100 expected), FSDP run: 295 in all
fi
report="$out/report.md"
: > "$report"

echo "== device" | tee -a "$report"
"$py" - "$device" <<'PY' | tee -a "$report"
import sys

import torch

print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if sys.argv[1] == "cuda" and torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
PY

echo "== (1) tests that need CUDA"
LRFIND_REQUIRE_CUDA=$require timeout "${limit[0]}" "$py" -m pytest -q -p no:cacheprovider -m cuda tests 2>&1 \
    | tee "$out/pytest-cuda.txt"
tests=${PIPESTATUS[0]}
echo "tests marked cuda: exit $tests ($(tail -n 1 "$out/pytest-cuda.txt"))" >> "$report"

echo "== (2) the main job, fp32 and bf16"
main_codes=()
for precision in fp32 bf16; do
    timeout "${limit[1]}" "$py" -m lrfind_cli run configs/resnet.yaml --device "$device" --set "precision=$precision" ${main[@]+"${main[@]}"} \
        --out "$out/main-$precision" -q > "$out/main-$precision.txt" 2> "$out/main-$precision.err"
    code=$?
    [ "$dry" -eq 1 ] && [ "$code" -eq 3 ] && code=0  # toy sizes may leave the curve without an answer: it ran
    main_codes+=("$code")
done
"$py" - "$out" <<'PY' | tee -a "$report"
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
timing = ["startup_s", "snapshot_s", "first_step_s", "steady_step_s", "restore_s", "suggest_s"]
memory = ["peak_host_bytes", "peak_device_bytes", "snapshot_bytes"]
print("\nThe main job (`lrfind run configs/resnet.yaml`): seconds, and bytes in MiB\n")
print("| precision | steps | duration_s | " + " | ".join(timing + memory) + " |")
print("|---" * (3 + len(timing) + len(memory)) + "|")
for precision in ("fp32", "bf16"):
    path = out / f"main-{precision}" / "result.json"
    if not path.exists():
        print(f"| {precision} | no result.json: see main-{precision}.err |")
        continue
    doc = json.loads(path.read_text())
    cells = [doc.get("num_steps"), doc.get("duration_s")]
    cells += [(doc.get("timing") or {}).get(key) for key in timing]
    cells += [None if (doc.get("memory") or {}).get(key) is None else doc["memory"][key] / 2**20 for key in memory]
    print(f"| {precision} | " + " | ".join("n/a" if c is None else f"{c:.4g}" for c in cells) + " |")
PY

echo "== (3) overhead against a bare loop, the 100M transformer, peak memory"
timeout "${limit[2]}" "$py" benchmarks/overhead.py "${bench[@]}" --write "$report" 2>&1 | tee "$out/overhead.txt"
bench_code=${PIPESTATUS[0]}

echo "== (4) FSDP from the spec, torchrun with one process ($([ "$dry" -eq 1 ] && echo Gloo on the CPU || echo NCCL))"
mkdir -p "$out/fsdp-record"
timeout "${limit[3]}" "$py" -m torch.distributed.run --standalone --nproc_per_node=1 -m lrfind_cli run configs/transformer-lm.yaml \
    --device "$device" "${lm[@]}" --set distributed.strategy=fsdp --set 'distributed.shard=[TransformerEncoderLayer]' \
    --set optimizer.name=tests.fsdp_probe:RecordingAdam --set "optimizer.kwargs.record_to=$out/fsdp-record" \
    --out "$out/fsdp" -q > "$out/fsdp.txt" 2>&1
launcher=$?  # 1 also when the run ends without an answer (every rank exits 3): result.json says which
"$py" - "$out" <<'PY' | tee -a "$report"
import json
import sys
from pathlib import Path

import torch

out = Path(sys.argv[1])
record = out / "fsdp-record" / "rank0.pt"
if not record.exists():
    print("\nFSDP: no record of the shards (see fsdp.txt)")
    sys.exit(1)
seen = torch.load(record, weights_only=False)
first, last, end = seen["first"], seen["last"], seen["exit"]
restored = all(torch.equal(a, b) for a, b in zip(first["params"], end["params"])) and all(s == {} for s in end["state"])
trained = any(not torch.equal(a, b) for a, b in zip(first["params"], last["params"]))
doc = json.loads((out / "fsdp" / "result.json").read_text())
params = sum(p.numel() for p in first["params"])
print(f"\nFSDP, world size {doc['world_size']} ({doc['device']}): {params / 1e6:.1f}M parameters in {len(first['params'])} "
      f"tensors of kind {', '.join(sorted(set(first['kinds'])))}, {doc['num_steps']} steps in {doc['duration_s']:.2f} s "
      f"({doc['status']}), suggested_lr {doc['suggested_lr']}; trained: {trained}, every shard restored bit-exactly: {restored}")
print(f"timing: {doc.get('timing', 'n/a')}; memory: {doc.get('memory', 'n/a')}")
sys.exit(0 if restored and trained and doc["status"] != "interrupted" else 1)
PY
fsdp=${PIPESTATUS[0]}

status="tests=$tests main_fp32=${main_codes[0]} main_bf16=${main_codes[1]} bench=$bench_code fsdp=$fsdp (launcher $launcher)"
echo "$status" | tee -a "$report" > "$out/status.txt"
echo "== report: $report"
cat "$report"
for code in "$tests" "${main_codes[@]}" "$bench_code" "$fsdp"; do
    [ "$code" -eq 0 ] || exit 1
done
