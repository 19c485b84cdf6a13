#!/usr/bin/env bash
# The denoising table of the OptNet paper (section 5.3) on one CUDA GPU, float64 QPs.
#
# Run from the repository root:  OUT=/some/folder bash benchmarks/gpu_denoise_classify.sh
# Needs python3 with torch+CUDA and numpy; matplotlib and tqdm are optional (without
# matplotlib there is no examples.png). It installs the library and experiments/ first
# (experiments/gpu_env.sh) and runs `optnet denoise`. No data to carry: the signals are
# generated (seed 0).
# The classification runs are cheap and run on CPU (see docs/experiments.md).
#
# Time: about 7 minutes (each step has a time limit; the sum of the limits is 455 s).
# Writes under $OUT (8 files):
#   log.txt           everything printed, with the device and versions
#   tv.jsonl          the lambda grid (0..100 step 1, all 9000 training signals) + test MSE
#   fc.jsonl, optnet-tv.jsonl, optnet.jsonl   one JSON line per epoch (test_mse, seconds, ...)
#   compare.json      test MSE of the four final checkpoints
#   examples.png      four test signals: noisy, truth and each model's output
#   optnet-tv.pt      the learned-from-TV checkpoint (D, lambda, history)
set -u
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
WORK=$(mktemp -d)
LOG="$OUT/log.txt"
source experiments/gpu_env.sh
gpu_env > "$LOG" 2>&1 || { cat "$LOG"; exit 1; }
PY=$PYTHON
DEVICE=${DEVICE:-cuda}
# For a dry run elsewhere: DEVICE=cpu GRID="0 40 20" SMALL="--n-train 100 --n-test 30" EPOCHS=2
GRID=${GRID:-0 100 1}
SMALL=${SMALL:-}
EPOCHS=${EPOCHS:-100}

denoise() { # denoise SECONDS args...
    local limit=$1
    shift
    local t0=$SECONDS
    timeout "$limit" optnet denoise "$@" >> "$LOG" 2>&1
    local rc=$?
    echo "# rc=$rc wall=$((SECONDS - t0)) s: denoise $*" >> "$LOG"
    return $rc
}

{
    date -u
    nvidia-smi -L
    "$PY" -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
} >> "$LOG" 2>&1

# 1. TV baseline: lambda on the integer grid 0..100, all training signals in one batch.
denoise 170 train --model tv --device "$DEVICE" --batch-size 9000 --lambda-grid $GRID $SMALL --out "$WORK/tv"
LAM=$("$PY" - "$WORK/tv/history.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if "lambda" in line]
print(min(rows, key=lambda r: r["train_mse"])["lambda"])
EOF
)
if [ ! -f "$WORK/tv/model.pt" ]; then # the grid ran out of time: use the best lambda seen
    echo "# grid incomplete; TV with the best lambda seen, $LAM" >> "$LOG"
    cp "$WORK/tv/history.jsonl" "$WORK/tv-grid.jsonl"
    denoise 20 train --model tv --device "$DEVICE" --lam "$LAM" $SMALL --out "$WORK/tv"
    cat "$WORK/tv-grid.jsonl" "$WORK/tv/history.jsonl" > "$WORK/tv/merged.jsonl"
    mv "$WORK/tv/merged.jsonl" "$WORK/tv/history.jsonl"
fi

# 2. The learned models (checkpoints are saved every epoch; --time-limit ends them cleanly).
denoise 55 train --model fc --device "$DEVICE" $SMALL --epochs "$EPOCHS" --time-limit 40 --out "$WORK/fc"
denoise 115 train --model optnet-tv --device "$DEVICE" $SMALL --lam "$LAM" --epochs "$EPOCHS" --time-limit 90 \
    --out "$WORK/optnet-tv"
# Pure OptNet with l1 weight 1e-3 on sum|D_ij|: the CLI default 0.1 drives D to 0 on CPU
# (docs/experiments.md), 1e-3 lets it learn.
denoise 75 train --model optnet --device "$DEVICE" $SMALL --epochs "$EPOCHS" --time-limit 55 \
    --l1 1e-3 --out "$WORK/optnet"

# 3. The table and the example plot.
denoise 40 compare --device "$DEVICE" --out "$WORK/compare" --checkpoint \
    "$WORK/fc/model.pt" "$WORK/tv/model.pt" "$WORK/optnet/model.pt" "$WORK/optnet-tv/model.pt"

for kind in tv fc optnet-tv optnet; do
    cp "$WORK/$kind/history.jsonl" "$OUT/$kind.jsonl" 2>/dev/null
done
cp "$WORK/compare/compare.json" "$WORK/compare/examples.png" "$OUT/" 2>/dev/null
cp "$WORK/optnet-tv/model.pt" "$OUT/optnet-tv.pt" 2>/dev/null
rm -rf "$WORK"
echo "# done" >> "$LOG"
