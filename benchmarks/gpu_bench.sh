#!/usr/bin/env bash
# GPU benchmarks for docs/benchmarks.md; run on the GPU machine from the repository root:
#
#   bash benchmarks/gpu_bench.sh        (carry: .whl and .gpu_data; results under $OUT)
#
#   0. the GPU tests (`pytest -m gpu tests`: every test marked gpu, e.g. the graphed and
#      batched backends against the CPU), a summary of their outcome.
#   0b. accuracy: `optnet bench accuracy` (optnet vs qpth on known solutions, float64 and
#      float32; writes accuracy.jsonl, accuracy.md).
#   1. `optnet bench` (speed): optnet vs qpth 0.0.18 on CUDA over the paper's grid n in
#      {10,50,100,500}, m = n, no equalities, B in {1,128,1024}, float64 and float32; then the
#      cases docs/benchmarks.md compares, again as their own tables.
#   1b. the Sudoku OptNet's QP step (4x4 B = 150, 9x9 B = 32, float32), optnet vs qpth:
#      `optnet bench sudoku-step` (writes sudoku_step.txt).
#   2. `optnet bench maros-meszaros` on CUDA: float64 at the high/mid/low tiers, then float32
#      at low.
#
# The `optnet` commands come from installing the library, experiments/ and benchmarks/
# (editable, no dependencies: experiments/gpu_env.sh), with the carried wheels.
# Needs .whl/ (qpth 0.0.18, cvxpy 1.7.5 and the cvxpy dependencies the image lacks: osqp,
# clarabel, scs, cffi, pycparser) and .gpu_data/maros_meszaros/ (62 .mat files, opt_costs.json).
# Writes to $OUT (STAGES picks which): accuracy.jsonl, accuracy.md, bench_cuda.jsonl,
# bench_cuda.png, bench_cuda_table.txt, sudoku_step.txt, maros_cuda_float64.jsonl,
# maros_cuda_float64_table.txt, maros_cuda_float32.jsonl, maros_cuda_float32_table.txt and
# gpu_bench.log (everything printed).
# Time: at most 2 + 7.5 minutes: each stage stops starting new work at its --budget, and
# `timeout` stops it hard behind that. STAGES picks stages (default "tests,accuracy,bench,sudoku";
# "bench,maros" is the 7.5-minute run behind docs/benchmarks.md); SOLVERS the peers of stage 1.
# Smoke test on a CPU (OPTNET_ENV=.venv installs into the repository's virtual environment):
#   OPTNET_ENV=.venv DEVICE=cpu STAGES=bench,maros SIZES=5 BATCHES=1,4 \
#   MM_PROBLEMS=HS21,HS35 MM_DATA=../shared/data/maros_meszaros bash benchmarks/gpu_bench.sh
set -uo pipefail
source experiments/gpu_env.sh
OUT="${OUT:-runs/gpu_bench}"
DEVICE="${DEVICE:-cuda}"
SIZES="${SIZES:-10,50,100,500}"
BATCHES="${BATCHES:-1,128,1024}"
SOLVERS="${SOLVERS:-optnet,qpth}"
STAGES="${STAGES:-tests,accuracy,bench,sudoku}"
BENCH_BUDGET="${BENCH_BUDGET:-240}"
MM_PROBLEMS="${MM_PROBLEMS:-}"
MM="${MM_DATA:-.gpu_data/maros_meszaros}"
mkdir -p "$OUT"

run_all() {
    ls .whl/*.whl >/dev/null 2>&1 || echo "WARNING: no .whl/: qpth is reported as not installed"
    gpu_env || return 1
    export PYTHONUNBUFFERED=1
    nvidia-smi -L 2>/dev/null || true
    python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)"
    date -u

    if [[ ",$STAGES," == *",tests,"* ]]; then
        echo "=== 0. GPU tests ==="
        timeout -s KILL 240 python3 -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tail -15
    fi

    if [[ ",$STAGES," == *",accuracy,"* ]]; then
        echo "=== 0b. accuracy on known solutions: optnet vs qpth on $DEVICE ==="
        timeout 150 optnet bench accuracy --device "$DEVICE" \
            --sizes 30x40x6,100x100x10 --batch 128 --out "$OUT"
    fi

    if [[ ",$STAGES," == *",bench,"* ]]; then
        echo "=== 1. speed: $SOLVERS on $DEVICE ==="
        timeout $((BENCH_BUDGET + 50)) optnet bench speed --device "$DEVICE" \
            --dtype float64,float32 --sizes "$SIZES" --batches "$BATCHES" --neq 0 \
            --solvers "$SOLVERS" --repeats 5 --cap 20 --budget "$BENCH_BUDGET" --clarabel-checks 2 \
            --out "$OUT"

        echo "=== the cases docs/benchmarks.md compares ==="
        python3 - "$OUT/bench_$DEVICE.jsonl" <<'PY'
import sys
from optnet_benchmarks.report import speed_tables
from optnet_experiments.json_lines import read_json_lines
targets = {(100, 128, "float64"), (500, 128, "float64"), (100, 1024, "float32")}
targets |= {(n, b, "float64") for n in (10, 32) for b in (1, 128)}
rows = [r for r in read_json_lines(sys.argv[1]) if (r["n"], r["batch"], r["dtype"]) in targets]
print(speed_tables(rows))
PY
    fi

    if [[ ",$STAGES," == *",sudoku,"* ]]; then
        echo "=== 1b. the Sudoku QP step: optnet vs qpth on $DEVICE ==="
        timeout 120 optnet bench sudoku-step --device "$DEVICE" | tee "$OUT/sudoku_step.txt"
    fi

    if [[ ",$STAGES," != *",maros,"* ]]; then
        :
    elif [ -d "$MM" ]; then
        echo "=== 2a. Maros-Meszaros float64, high/mid/low ==="
        timeout 150 optnet bench maros-meszaros --data "$MM" --device "$DEVICE" \
            --dtype float64 --tiers high,mid,low --max-iter 200 --budget 120 \
            --problems "$MM_PROBLEMS" --out "$OUT"
        echo "=== 2b. Maros-Meszaros float32, low ==="
        timeout 60 optnet bench maros-meszaros --data "$MM" --device "$DEVICE" \
            --dtype float32 --tiers low --max-iter 200 --budget 45 \
            --problems "$MM_PROBLEMS" --out "$OUT"
    else
        echo "no $MM: Maros-Meszaros skipped"
    fi
    date -u
}

run_all 2>&1 | tee "$OUT/gpu_bench.log"
