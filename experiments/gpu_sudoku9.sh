#!/usr/bin/env bash
# 9x9 Sudoku with OptNet on one GPU, in at most ~9 minutes, from the repository root:
#
#   OUT=/some/dir bash experiments/gpu_sudoku9.sh
#
# Stages (each capped by `timeout`, so the script ends within ~8.8 minutes however slow a
# stage is; a capped training run keeps its finished epochs: logs and checkpoints are written
# every epoch):
#   1. generate N (10000) seeded 9x9 puzzles with unique solutions, 31 to 41 givens (SATNet's
#      difficulty), on every CPU core: 8500 train, 500 validation, 1000 test
#   2. optnet, init "solutions": A from the directions in which the training solutions do not
#      vary (learned from the solutions alone, the number of rows too), epoch 0 logged, then
#      fine-tuned by gradient descent (lr 1e-4) for ~40 s
#   3. the conv baseline (the paper's 10 x 512) for ~45 s
#   4. optnet, init "rand" (the paper's): A learned by gradient descent alone, for all the
#      time left (~280 s), cosine learning rate from 0.03
#   5. `optnet sudoku report`: `optnet sudoku eval --split test` of each run's best checkpoint
#      (by validation); sudoku9.pt = the OptNet one with the lowest validation strict error
#
# Needs: CUDA, python3 with torch (matplotlib and tqdm optional: without matplotlib no PNG).
# It installs the library and experiments/ first (experiments/gpu_env.sh) and runs
# `optnet sudoku`.
# Writes into $OUT (6 files): sudoku9.log (everything printed: device, versions, each stage),
#   sudoku9.jsonl (every run's per-epoch records, tagged with "run"), summary.json (the eval
#   of each run's best checkpoint on the test split, and which run sudoku9.pt is),
#   sudoku9_error.png (validation and test error of every run), optnet_rand_error.png (the
#   "rand" run's curves, with its training error), sudoku9.pt.
# Environment overrides (for a CPU smoke test: DEVICE=cpu N=60 EPOCHS=1 ...): DEVICE (cuda),
#   N (10000), EPOCHS (200: the time limits end the runs first), BATCH (100), DTYPE (float32),
#   T_SOLUTIONS, T_CONV, T_RAND (training seconds: 40, 45, what is left), TOTAL (525 s for
#   the whole script), MARGIN (60 s per run on top of its training time), CONV_DEPTH (10),
#   CONV_WIDTH (512), WORKERS (every core), PYTHON (python3).
# Exit status: 0 when sudoku9.pt was written.
set -u
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
N=${N:-10000}
EPOCHS=${EPOCHS:-200}
BATCH=${BATCH:-100}
DTYPE=${DTYPE:-float32}
T_SOLUTIONS=${T_SOLUTIONS:-40}
T_CONV=${T_CONV:-45}
T_RAND=${T_RAND:-600}  # cut to what is left: about 280 s when the earlier stages run as planned
MIN_RAND=${MIN_RAND:-120}
CONV_DEPTH=${CONV_DEPTH:-10}
CONV_WIDTH=${CONV_WIDTH:-512}
OUT=${OUT:-/tmp/gpu_sudoku9_out}
RUNS=$(mktemp -d)
DATA=$RUNS/sudoku9
mkdir -p "$OUT"
source experiments/gpu_env.sh
gpu_env > "$OUT/sudoku9.log" 2>&1 || { cat "$OUT/sudoku9.log"; exit 1; }
TOTAL=${TOTAL:-525}  # seconds for the whole script: every stage's cap is cut to fit in it
# Startup (imports, CUDA context, data loading) and the evaluation of the last epoch come on
# top of a run's --time-limit: its `timeout` allows MARGIN seconds more.
MARGIN=${MARGIN:-60}

left() { echo $((START + TOTAL - SECONDS)); }

train() {  # train NAME SECONDS RESERVE ARGS...: a time-limited run leaving RESERVE s after it
  local name=$1 seconds=$2 reserve=$3
  shift 3
  local cap=$(( $(left) - reserve ))
  if [ "$cap" -lt $((MARGIN + 10)) ]; then
    echo "=== $name: skipped, only $cap s left for it"
    return
  fi
  [ "$seconds" -gt $((cap - MARGIN)) ] && seconds=$((cap - MARGIN))
  echo "=== $name: sudoku train $* (time limit $seconds s, cap $cap s) at $((SECONDS - START)) s"
  local begin=$SECONDS
  timeout "$cap" optnet sudoku train --board 3 --device "$DEVICE" \
    --data "$DATA" --val-fraction 0.05 --epochs "$EPOCHS" --time-limit "$seconds" \
    --out "$RUNS/$name" "$@"
  echo "=== $name: exit $? after $((SECONDS - begin)) s"
}

START=$SECONDS
{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0], 'torch',
    torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
  echo "cpu cores: $(nproc); N=$N EPOCHS=$EPOCHS BATCH=$BATCH DTYPE=$DTYPE DEVICE=$DEVICE"

  echo "=== generate at $((SECONDS - START)) s"
  timeout 60 optnet sudoku generate --board 3 --n "$N" --givens 31,41 --seed 0 \
    --out "$DATA" ${WORKERS:+--workers "$WORKERS"}
  echo "=== generate: exit $?"

  if [ -f "$DATA/features.pt" ]; then
    # RESERVE: what the later stages need at least (their runs, and 60 s to collect); the
    # last run, optnet "rand", gets all the time that is left.
    train optnet_solutions "$T_SOLUTIONS" $((T_CONV + 2 * MARGIN + MIN_RAND + 60)) \
      --model optnet --dtype "$DTYPE" --init solutions --eval-initial --lr 1e-4 \
      --batch-size "$BATCH"
    train conv "$T_CONV" $((MARGIN + MIN_RAND + 60)) --model conv --depth "$CONV_DEPTH" \
      --width "$CONV_WIDTH" --batch-size "$BATCH"
    train optnet_rand "$T_RAND" 60 --model optnet --dtype "$DTYPE" --init rand --lr 0.03 \
      --lr-schedule cosine --batch-size "$BATCH"
  fi

  echo "=== collect at $((SECONDS - START)) s"
  timeout $(( $(left) > 10 ? $(left) : 10 )) optnet sudoku report "$RUNS" "$DATA" "$OUT" \
    --device "$DEVICE"
  echo "=== collect: exit $?"
  cp "$RUNS/optnet_rand/optnet_error.png" "$OUT/optnet_rand_error.png" 2>/dev/null \
    || echo "=== no optnet_rand plot"
  rm -rf "$RUNS"
  echo "=== done after $((SECONDS - START)) s"
} 2>&1 | tee -a "$OUT/sudoku9.log"
[ -f "$OUT/sudoku9.pt" ]  # the exit status: 0 when an OptNet checkpoint came out
