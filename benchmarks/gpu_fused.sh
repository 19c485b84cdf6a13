#!/usr/bin/env bash
# GPU run for issue 6 (session 2): the fused Triton kernel and the batched solver, side by side
# with qpth, on the lent H100. From the repository root (carry .whl; results under $OUT):
#
#   bash benchmarks/gpu_fused.sh
#
#   1. GPU tests: tests/test_cuda.py, tests/test_cuda_graph_twin.py, tests/test_fused.py.
#   2. `optnet bench` at the issue-6 target cases (optnet, qpth): n = m = 10, 100, 500,
#      B = 1, 128, float64; n = m = 100, B = 1024, float32.
#   3. `optnet bench` for small problems (optnet, optnet-fused, qpth): n = m = 10, 32, 64,
#      B = 1, 128, 1024, float64 and float32 (the first fused call of a shape compiles).
# Every stage has a hard time limit. Writes bench_targets*, bench_fused*, gpu_fused.log.
set -uo pipefail
OUT="${OUT:-runs/gpu_fused}"
mkdir -p "$OUT"
{
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl >/dev/null 2>&1 || echo "WARNING: wheel install failed"
    export PYTHONPATH="$PWD/src:/tmp/site" PYTHONUNBUFFERED=1
    nvidia-smi -L; date -u
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
    timeout -s KILL 150 python3 -m pytest -q tests/test_cuda.py tests/test_cuda_graph_twin.py \
        tests/test_fused.py 2>&1 | tail -15
    timeout -s KILL 170 python3 -m optnet.bench --device cuda --dtype float64 --sizes 10,100,500 \
        --batches 1,128 --neq 0 --solvers optnet,qpth --repeats 5 --cap 20 \
        --out "$OUT/targets64" 2>&1 | grep -v "^\s*$" | tail -16
    timeout -s KILL 60 python3 -m optnet.bench --device cuda --dtype float32 --sizes 100 \
        --batches 1024 --neq 0 --solvers optnet,qpth --repeats 5 --cap 20 \
        --out "$OUT/targets32" 2>&1 | grep -v "^\s*$" | tail -5
    timeout -s KILL 200 python3 -m optnet.bench --device cuda --dtype float64,float32 \
        --sizes 10,32,64 --batches 1,128,1024 --neq 0 --solvers optnet,optnet-fused,qpth \
        --repeats 5 --cap 60 --out "$OUT/fused" 2>&1 | grep -v "^\s*$" | tail -60
    date -u
} 2>&1 | tee "$OUT/gpu_fused.log"
