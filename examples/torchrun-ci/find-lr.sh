#!/usr/bin/env bash
# The lr under torchrun, for CI: exit 0 with the lr on stdout, 3 when the sweep gave no usable answer, 1 on a failure.
#   LR=$(bash find-lr.sh SPEC OUT_DIR [NPROC])    e.g. LR=$(bash find-lr.sh spec.yaml "lrfind-out/ci-$GITHUB_RUN_ID" 8)
# torchrun exits 1 whenever a rank exits non-zero, 3 ("no answer") included, so result.json tells the two apart:
# rank 0 writes it before any rank exits, with suggested_lr null when there is no answer.
set -u
spec=$1 out=$2 nproc=${3:-8}
if [ -e "$out/result.json" ]; then  # an earlier run's result must not pass for this one's
    echo "$out/result.json exists already: give each run a directory of its own" >&2
    exit 2
fi
torchrun --nproc_per_node="$nproc" -m lrfind_cli run "$spec" --out "$out" -q && exit 0  # the lr is on stdout
python - "$out/result.json" <<'PY'
import json
import sys

try:
    with open(sys.argv[1], encoding="utf-8") as fh:
        result = json.load(fh)
except OSError:
    sys.exit(1)  # no result: a rank failed (its error, prefixed [rank N], says why)
no_answer = result["suggested_lr"] is None and result["status"] != "interrupted"
sys.exit(3 if no_answer else 1)
PY
