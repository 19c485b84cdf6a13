#!/usr/bin/env bash
# Total-variation denoising with the general QP layer (`optnet-qp-tv`, paper section 5.3) on
# one CUDA GPU, in at most ~8 minutes, from the repository root:
#
#   OUT=/some/dir bash experiments/gpu_denoise.sh
#
# Stages (each capped by `timeout`; a capped training run keeps its finished epochs: the log
# and the checkpoints are written every epoch):
#   1. tv: the TV baseline at lam = LAM (21: the grid's choice, docs/experiments.md), test MSE
#   2. qp: optnet-qp-tv, the chosen training (docs/experiments.md): z = (x, t), Q, p = W(y-c)+p0,
#      G, h all learned from the exact TV start, Adam lr 2e-4, cosine to 0 over EPOCHS (20)
#      epochs, batch 100, 9000 training signals, center 54.5; epoch 0 is TV itself
#   3. qp_long: the same with LONG_EPOCHS (60) epochs, cosine over the epochs or over the
#      time left (whichever ends first), if at least MIN_LONG seconds are left for it
#   4. compare: test MSE table and example plot of tv, qp (and qp_long)
#
# Needs: CUDA, python3 with torch and numpy (matplotlib optional: without it no PNG; tqdm
# optional). It installs the library and experiments/ first (experiments/gpu_env.sh) and runs
# `optnet denoise`. No data to carry: the signals are generated (seed 0), the same as on the
# CPU.
# Writes into $OUT: denoise.log (everything printed: device, versions, each stage's JSON
#   lines and wall time), qp.jsonl and qp_long.jsonl (one record per epoch: train_mse,
#   test_mse, seconds, lr, moved_<parameter>), tv.jsonl, qp.pt and qp_best.pt (the last and the
#   lowest-test-MSE epoch), qp_long.pt, qp_curves.png and qp_long_curves.png (MSE per epoch
#   against the TV line), compare.json, examples.png, summary.json.
# Environment overrides (for a CPU smoke test: DEVICE=cpu SMALL="--n-train 200 --n-test 100"
#   EPOCHS=1 LONG_EPOCHS=1 TOTAL=120 DTYPE=float32): DEVICE (cuda), DTYPE (float64), LAM (21),
#   LR (2e-4), EPOCHS (20), LONG_EPOCHS (60), TOTAL (450 s for the whole script), T_MAIN
#   (240: the time limit of stage 2), MIN_LONG (60), MARGIN (45 s per run on top of its time
#   limit: start-up and the last epoch's test pass), SMALL (extra train options), PYTHON.
# Exit status: 0 when qp.pt was written.
set -u
cd "$(dirname "$0")/.."
: "${OUT:=/tmp/gpu_denoise_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-float64}
LAM=${LAM:-21}
LR=${LR:-2e-4}
EPOCHS=${EPOCHS:-20}
LONG_EPOCHS=${LONG_EPOCHS:-60}
TOTAL=${TOTAL:-450}
T_MAIN=${T_MAIN:-240}
MIN_LONG=${MIN_LONG:-60}
MARGIN=${MARGIN:-45}
SMALL=${SMALL:-}
WORK=$(mktemp -d)
LOG="$OUT/denoise.log"
source experiments/gpu_env.sh
gpu_env > "$LOG" 2>&1 || { cat "$LOG"; exit 1; }
PY=$PYTHON

left() { echo $((START + TOTAL - SECONDS)); }

denoise() {  # denoise NAME CAP ARGS...: one `optnet denoise` command under `timeout CAP`
    local name=$1 cap=$2
    shift 2
    echo "=== $name at $((SECONDS - START)) s (cap $cap s): denoise $*"
    local t0=$SECONDS
    timeout "$cap" optnet denoise "$@"
    echo "=== $name: exit $? after $((SECONDS - t0)) s"
}

qp_train() {  # qp_train NAME EPOCHS TIME_LIMIT: the chosen optnet-qp-tv training
    denoise "$1" $(($3 + MARGIN)) train --model optnet-qp-tv --device "$DEVICE" --dtype "$DTYPE" \
        --lam "$LAM" --lr "$LR" --lr-schedule cosine --epochs "$2" --time-limit "$3" $SMALL \
        --out "$WORK/$1"
}

START=$SECONDS
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch',
        torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
    echo "cpu cores: $(nproc); DEVICE=$DEVICE DTYPE=$DTYPE LAM=$LAM LR=$LR EPOCHS=$EPOCHS" \
        "LONG_EPOCHS=$LONG_EPOCHS TOTAL=$TOTAL T_MAIN=$T_MAIN SMALL=$SMALL"

    denoise tv 60 train --model tv --device "$DEVICE" --dtype "$DTYPE" --lam "$LAM" $SMALL \
        --out "$WORK/tv"

    # Stage 2 gets T_MAIN seconds, or less so that 60 s remain for compare and copying.
    main=$(( $(left) - MARGIN - 60 ))
    [ "$main" -gt "$T_MAIN" ] && main=$T_MAIN
    if [ "$main" -ge 30 ]; then
        qp_train qp "$EPOCHS" "$main"
    else
        echo "=== qp: skipped, only $main s left for it"
    fi

    long=$(( $(left) - MARGIN - 60 ))
    if [ "$long" -ge "$MIN_LONG" ]; then
        qp_train qp_long "$LONG_EPOCHS" "$long"
    else
        echo "=== qp_long: skipped, only $long s left for it (MIN_LONG $MIN_LONG)"
    fi

    checkpoints=("$WORK/tv/model.pt")
    for name in qp qp_long; do
        [ -f "$WORK/$name/model.pt" ] && checkpoints+=("$WORK/$name/model.pt")
    done
    cap=$(( $(left) > 20 ? $(left) : 20 ))
    denoise compare "$cap" compare --device "$DEVICE" --out "$WORK/compare" \
        --checkpoint "${checkpoints[@]}"

    for name in tv qp qp_long; do
        cp "$WORK/$name/history.jsonl" "$OUT/$name.jsonl" 2>/dev/null
    done
    cp "$WORK/qp/model.pt" "$OUT/qp.pt" 2>/dev/null || echo "=== no qp checkpoint"
    cp "$WORK/qp/best.pt" "$OUT/qp_best.pt" 2>/dev/null
    cp "$WORK/qp_long/model.pt" "$OUT/qp_long.pt" 2>/dev/null
    cp "$WORK/qp/curves.png" "$OUT/qp_curves.png" 2>/dev/null
    cp "$WORK/qp_long/curves.png" "$OUT/qp_long_curves.png" 2>/dev/null
    cp "$WORK/compare/compare.json" "$WORK/compare/examples.png" "$OUT/" 2>/dev/null

    "$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
summary = {}
for name in ("tv", "qp", "qp_long"):
    path = out / f"{name}.jsonl"
    if not path.exists():
        continue
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    epochs = [r for r in rows if "epoch" in r]
    if not epochs:
        continue
    trained = [r for r in epochs if r["epoch"] >= 1]
    per_epoch = None
    if len(trained) >= 2:
        per_epoch = (trained[-1]["seconds"] - trained[0]["seconds"]) / (len(trained) - 1)
    summary[name] = {
        "epochs": epochs[-1]["epoch"],
        "test_mse_epoch0": epochs[0]["test_mse"],
        "test_mse_last": epochs[-1]["test_mse"],
        "test_mse_best": min(r["test_mse"] for r in epochs),
        "train_mse_last": epochs[-1]["train_mse"],
        "seconds_per_epoch": per_epoch,
        "unsolved": sum(r.get("unsolved", 0) for r in epochs),
        "test_mse_per_epoch": [round(r["test_mse"], 4) for r in epochs],
    }
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
EOF
    rm -rf "$WORK"
    echo "=== done after $((SECONDS - START)) s"
} 2>&1 | tee -a "$LOG"
[ -f "$OUT/qp.pt" ]  # the exit status: 0 when the optnet-qp-tv checkpoint came out
