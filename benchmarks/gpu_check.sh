#!/usr/bin/env bash
# `make gpu-check`: the checks that need a GPU, in one script meant to finish within 8 minutes on
# one H200, writing everything under results/gpu/ (GPU_OUT):
#
#   1. tests    pytest -k "kernel or triton" tests/ops: every backend of every op against its
#               reference, Triton natively in float32 and bfloat16 (tests/ops/test_backends.py),
#               and the op-specific Triton tests.                                 limit 120 s
#   2. kernels  the kernels benchmark (`make kernels-bench`'s runner) at lengths 1K-16K with
#               peers: results/gpu/kernels/kernels.{json,md}.                     limit 130 s
#   3. speed    `lra-bench speed` (what `make speed` runs) for GPU_SPEED_MODELS at 1K-16K,
#               batch 32: results/gpu/speed/.                                      limit 190 s
#
# (GPU_LIMITS="120 130 190" sets the three limits in seconds.) steps.log gets each step's exit
# status, wall time and limit; <step>.log its output. A step
# that fails or runs out of time is recorded and the next one runs; the script exits non-zero
# if any failed. Each step writes its results as it goes, so a timed-out step keeps what it had.
#
# Python: GPU_PYTHON, else .venv/bin/python, else python3, the first whose torch sees a GPU
# (the lent H200 machine's python3 has a CUDA torch and Triton; `make setup` pins the CPU torch
# build, so its .venv is no use there). Packages that python lacks (hydra-core, omegaconf) are
# installed into .gpu-site/ from .gpu-wheels/ (`make gpu-wheels` fills it on a machine with
# network; carry it to a machine without) or else from PyPI.
#
# Duration: estimated, not measured (no GPU was lent while it was written): about 1.5 min of
# tests (mostly Triton compiling), 1-2 min of kernels, 3 min of speed (25 fresh processes at
# ~5 s start-up + steps), within the limits above plus ~20 s of set-up: under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${GPU_OUT:-results/gpu}
MODELS=${GPU_SPEED_MODELS:-s4d,transformer,mamba,gla,mamba2}
LENGTHS=1024,2048,4096,8192,16384
read -r TESTS_LIMIT KERNELS_LIMIT SPEED_LIMIT <<<"${GPU_LIMITS:-120 130 190}"

python_with_cuda() {
    local candidate
    for candidate in ${GPU_PYTHON:-} .venv/bin/python python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! PY=$(python_with_cuda); then
    echo "gpu-check needs a CUDA GPU and a python whose torch sees it; none found" \
        "(tried GPU_PYTHON='${GPU_PYTHON:-}', .venv/bin/python, python3)." >&2
    echo "On a GPU machine: install a CUDA build of torch (README, 'GPU install'), or set GPU_PYTHON." >&2
    exit 2
fi

export PYTHONPATH="$PWD:$PWD/.gpu-site${PYTHONPATH:+:$PYTHONPATH}"
NEEDED='import hydra, omegaconf, pandas, matplotlib, pytest, triton, einops'
if ! "$PY" -c "$NEEDED" 2>/dev/null; then
    pins=$(grep -E '^(hydra-core|omegaconf)==' requirements.txt | tr '\n' ' ')
    if [ -d .gpu-wheels ]; then
        "$PY" -m pip install --quiet --no-index --no-deps --target .gpu-site .gpu-wheels/*.whl
    else
        # shellcheck disable=SC2086
        "$PY" -m pip install --quiet --target .gpu-site $pins
    fi
    "$PY" -c "$NEEDED" || { echo "gpu-check: cannot import what the checks need ($NEEDED)" >&2; exit 2; }
fi

mkdir -p "$OUT"
LOG="$OUT/steps.log"
{
    echo "# gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    "$PY" - <<'PYTHON'
import sys, torch, triton
print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"triton {triton.__version__}, {torch.cuda.get_device_name()}")
PYTHON
} >"$LOG"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true

failed=0
step() {  # step NAME LIMIT_SECONDS COMMAND...: run it under a time limit, log status and time
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    local status=ok
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=timeout; elif [ $rc -ne 0 ]; then status=failed; fi
    [ "$status" = ok ] || failed=1
    printf '%-8s %-8s rc=%-3s wall=%4ss limit=%ss\n' "$name" "$status" "$rc" "$(($(date +%s) - start))" "$limit" | tee -a "$LOG"
}

xdist=()
"$PY" -c 'import xdist' 2>/dev/null && xdist=(-n 4)  # compile Triton kernels in parallel
step tests "$TESTS_LIMIT" "$PY" -m pytest -q -p no:cacheprovider "${xdist[@]}" -k "kernel or triton" tests/ops
step kernels "$KERNELS_LIMIT" "$PY" benchmarks/kernels/run.py --out "$OUT/kernels" --warmup 2 --repeats 5 \
    --budget-seconds $((KERNELS_LIMIT - 20)) --note "gpu-check (benchmarks/gpu_check.sh)"
step speed "$SPEED_LIMIT" "$PY" -m lra_bench speed --models "$MODELS" --lengths "$LENGTHS" --batch 32 \
    --warmup 1 --steps 3 --timeout 60 --out "$OUT/speed"
echo "total $SECONDS s" | tee -a "$LOG"
exit $failed
