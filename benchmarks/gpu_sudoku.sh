#!/usr/bin/env bash
# The Sudoku experiment on GPUs, run from the repository root on the GPU machine:
#
#   bash benchmarks/gpu_sudoku.sh          one GPU: OptNet float32 and float64, the conv and
#                                          fc baselines, 20 epochs each on the paper's 4x4
#                                          data, then `optnet sudoku eval` of each checkpoint
#                                          on the 1000 test puzzles
#   bash benchmarks/gpu_sudoku.sh ddp      all visible GPUs: OptNet float64 data-parallel
#                                          (DDP over NCCL, global batch 150) for 20 epochs
#
# Needs: the paper's features.pt and labels.pt in .gpu_data/sudoku4/ (a git-ignored folder
#        carried with the working tree; this script copies nothing itself), CUDA, python3 with
#        torch (matplotlib and tqdm optional: without matplotlib there are no PNGs). It
#        installs the library and experiments/ first (experiments/gpu_env.sh) and runs
#        `optnet sudoku`.
# Writes into $OUT (flat, at most 8 files):
#   single: sudoku_gpu.log (everything printed, device and versions), optnet_float32.jsonl,
#           optnet_float64.jsonl, conv.jsonl, fc.jsonl (per-epoch records),
#           optnet_float64_error.png, conv_error.png, summary.json (eval on the test split)
#   ddp:    sudoku_gpu_ddp.log, optnet_ddp.jsonl, optnet_ddp_error.png, summary_ddp.json
# Time: every command is capped by `timeout`: single mode at most 120+150+90+40 s of training
#       and 4 x 15 s of eval (7.8 min); ddp mode at most 240 + 15 s. A capped training run
#       keeps the epochs it finished (the logs are written every epoch).
set -u
cd "$(dirname "$0")/.."
MODE=${1:-single}
DATA=.gpu_data/sudoku4
OUT=${OUT:-/tmp/gpu_sudoku_out}
RUNS=$(mktemp -d)
mkdir -p "$OUT"
SUFFIX=$([ "$MODE" = ddp ] && echo _ddp || echo "")
LOG="$OUT/sudoku_gpu$SUFFIX.log"
source experiments/gpu_env.sh
gpu_env > "$LOG" 2>&1 || { cat "$LOG"; exit 1; }

train() {  # train NAME SECONDS ARGS...: one time-capped training run
  local name=$1 seconds=$2
  shift 2
  echo "=== $name: sudoku train $*"
  local start=$SECONDS
  timeout "$seconds" optnet sudoku train --device cuda --data "$DATA" --epochs 20 \
    --out "$RUNS/$name" "$@"
  echo "=== $name: exit $? after $((SECONDS - start)) s"
}

evaluate() {  # evaluate NAME... : eval each run's checkpoint on the test split -> summary
  local summary=$OUT/summary$SUFFIX.json sep=""
  echo "{" > "$summary"
  for name in "$@"; do
    local checkpoint
    checkpoint=$(ls "$RUNS/$name"/*.pt 2>/dev/null | head -n 1)
    if [ -z "$checkpoint" ]; then echo "=== $name: no checkpoint"; continue; fi
    local result
    result=$(timeout 15 optnet sudoku eval --checkpoint "$checkpoint" --data "$DATA" \
      --split test --device cuda --json | tail -n 1)
    echo "=== eval $name (test split): $result"
    if [ -n "$result" ]; then
      printf '%s  "%s": %s' "$sep" "$name" "$result" >> "$summary"
      sep=$',\n'
    fi
  done
  printf '\n}\n' >> "$summary"
}

collect() {  # collect NAME: copy the run's JSON lines log into $OUT as NAME.jsonl
  cp "$RUNS/$1"/*.jsonl "$OUT/$1.jsonl" 2>/dev/null || echo "=== $1: no log"
}

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch',
    torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
  if [ ! -f "$DATA/features.pt" ] || [ ! -f "$DATA/labels.pt" ]; then
    echo "missing $DATA/features.pt or $DATA/labels.pt: carry the paper's files there"
  elif [ "$MODE" = ddp ]; then
    train optnet_ddp 240 --model optnet --dtype float64 --distributed
    evaluate optnet_ddp
    collect optnet_ddp
    cp "$RUNS/optnet_ddp/optnet_error.png" "$OUT/optnet_ddp_error.png" 2>/dev/null
  else
    train optnet_float32 120 --model optnet --dtype float32
    train optnet_float64 150 --model optnet --dtype float64
    train conv 90 --model conv
    train fc 40 --model fc
    evaluate optnet_float32 optnet_float64 conv fc
    for name in optnet_float32 optnet_float64 conv fc; do collect "$name"; done
    cp "$RUNS/optnet_float64/optnet_error.png" "$OUT/optnet_float64_error.png" 2>/dev/null
    cp "$RUNS/conv/conv_error.png" "$OUT/conv_error.png" 2>/dev/null
  fi
  date -u +"%Y-%m-%dT%H:%M:%SZ"
} >> "$LOG" 2>&1
rm -rf "$RUNS"
tail -n 60 "$LOG"
