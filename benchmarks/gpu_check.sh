#!/usr/bin/env bash
# GPU check: the figures docs/performance.md asks for, on a machine with one or more CUDA GPUs.
#
#   benchmarks/gpu_check.sh --data-dir ../shared/data            # on the GPU machine (about 8 minutes)
#   benchmarks/gpu_check.sh --data-dir ../shared/data --cpu-smoke # the same steps, tiny, on the CPU (about 1 minute)
#   benchmarks/gpu_check.sh --dry-run                             # print the commands only
#
# Steps, each printing its figures:
#   1. one names epoch (names GRU, dataset defaults)                 goal: under 2 s of training
#   2. five minutes of tiny Shakespeare (3-layer LSTM 512, batch 64, seq 256, precision auto)
#                                                                    goal: validation loss <= 1.47 nats/char
#   3. samples/s of the same LSTM for 100 steps in fp32, bf16 and fp16
#   4. with 2+ GPUs: one names epoch under `torchrun --nproc_per_node 2`
# Exit status: 0 all ran and every goal was met; 1 a step failed; 3 all ran but a goal was missed.
# Environment: PYTHON (default python), KEEP=1 keeps the run folders (they go to a temporary folder).
set -euo pipefail

PYTHON=${PYTHON:-python}
DATA_DIR=${WORKBENCH_DATA_DIR:-}
MODE=gpu
DRY_RUN=0
while [ $# -gt 0 ]; do
    case "$1" in
        --data-dir) DATA_DIR=$2; shift 2 ;;
        --data-dir=*) DATA_DIR=${1#*=}; shift ;;
        --cpu-smoke) MODE=cpu; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
if [ "${KEEP:-0}" != 1 ]; then trap 'rm -rf "$WORK"' EXIT; fi
MISSED=0

if [ "$MODE" = gpu ]; then
    DEVICE=cuda
    NAMES_SETS=()
    LSTM_SETS=(--set model.hidden_size=512 --set model.num_layers=3 --set model.embedding_dim=128
               --set model.dropout=0.2 --set batch_size=64 --set data.seq_len=256 --set lr=0.002)
    SHAKESPEARE_MINUTES=5
    PRECISION_LIMIT=6400   # windows: 100 steps of 64
    GPUS=$($PYTHON -c 'import torch; print(torch.cuda.device_count())')
    if [ "$DRY_RUN" = 0 ] && [ "$GPUS" -lt 1 ]; then
        echo "gpu_check.sh: error: no CUDA GPU visible to torch (run with --cpu-smoke to check the script on a CPU)" >&2
        exit 1
    fi
else
    DEVICE=cpu
    NAMES_SETS=(--set limit=2000)
    LSTM_SETS=(--set model.hidden_size=32 --set model.num_layers=1 --set model.embedding_dim=16
               --set batch_size=16 --set data.seq_len=32 --set threads=1)
    SHAKESPEARE_MINUTES=0.2
    PRECISION_LIMIT=320
    GPUS=0
fi
DATA_ARGS=()
if [ -n "$DATA_DIR" ]; then DATA_ARGS=(--data-dir "$DATA_DIR"); fi
echo "gpu_check: mode $MODE, device $DEVICE, $GPUS GPU(s), data ${DATA_DIR:-downloaded}, runs in $WORK"
if [ "$DRY_RUN" = 0 ]; then
    $PYTHON -c 'import torch; print("torch", torch.__version__, "| CUDA", torch.version.cuda, "|",
        ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "no GPU")'
fi

# train NAME DATASET [ARGS...]: one `workbench train` into $WORK/NAME (a nonzero exit fails the check).
train() {
    local name=$1 dataset=$2; shift 2
    local cmd=("$PYTHON" -m workbench train --dataset "$dataset" --device "$DEVICE" "${DATA_ARGS[@]}"
               --run-dir "$WORK/$name" --quiet "$@")
    echo "+ ${cmd[*]}"
    if [ "$DRY_RUN" = 1 ]; then return 0; fi
    "${cmd[@]}"
}

# figures RUN_DIR: the run's epochs (training seconds, samples/s) and best validation loss, from its files.
figures() {
    [ "$DRY_RUN" = 1 ] && return 0
    "$PYTHON" - "$1" <<'EOF'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
epochs = [e for e in map(json.loads, (run / "events.jsonl").read_text().splitlines()) if e.get("type") == "epoch"]
start = next(e for e in map(json.loads, (run / "events.jsonl").read_text().splitlines()) if e.get("type") == "start")
results = json.loads((run / "results.json").read_text())
first = epochs[0]
rates = sorted(e["samples_per_s"] for e in epochs)
valid = results["valid_metrics"].get("loss")
print(f"  device {start['device']}, precision {start['precision']}, {start['parameters']:,} parameters, "
      f"world size {start.get('world_size', 1)}")
print(f"  epochs {len(epochs)}, first epoch {first['seconds']:.2f} s of training, "
      f"samples/s median {rates[len(rates) // 2]:,.0f}, best validation loss {valid if valid is None else round(valid, 4)}")
print(f"FIGURES first_epoch_s={first['seconds']:.3f} samples_per_s={rates[len(rates) // 2]:.1f} "
      f"valid_loss={valid if valid is not None else 'nan'} state={results['state']}")
EOF
}

# goal LABEL VALUE OP LIMIT: print whether VALUE meets the goal (OP is < or <=).
goal() {
    [ "$DRY_RUN" = 1 ] && return 0
    if "$PYTHON" -c "import sys; v, l = float(sys.argv[1]), float(sys.argv[3]); sys.exit(0 if (v < l if sys.argv[2] == '<' else v <= l) else 1)" "$2" "$3" "$4"; then
        echo "GOAL met: $1 = $2 ($3 $4)"
    else
        echo "GOAL MISSED: $1 = $2 (goal $3 $4)"
        MISSED=1
    fi
}

value() { sed -n "s/.*$2=\([^ ]*\).*/\1/p" <<<"$1"; }

echo; echo "== 1. one names epoch"
train names names --set epochs=1 --set patience=0 "${NAMES_SETS[@]}"
OUT=$(figures "$WORK/names"); echo "$OUT"
goal "names epoch seconds" "$(value "$OUT" first_epoch_s)" "<" 2

echo; echo "== 2. tiny Shakespeare for $SHAKESPEARE_MINUTES minutes"
train shakespeare tinyshakespeare --arch char-lstm "${LSTM_SETS[@]}" --set max_minutes="$SHAKESPEARE_MINUTES" \
    --set epochs=1000 --set patience=0 --set precision=auto
OUT=$(figures "$WORK/shakespeare"); echo "$OUT"
if [ "$MODE" = gpu ]; then goal "tiny Shakespeare validation loss (nats/char)" "$(value "$OUT" valid_loss)" "<=" 1.47; fi

echo; echo "== 3. fp32 versus bf16 and fp16 (same LSTM, $PRECISION_LIMIT windows)"
for precision in fp32 bf16 fp16; do
    if train "precision-$precision" tinyshakespeare --arch char-lstm "${LSTM_SETS[@]}" --set epochs=1 \
        --set limit="$PRECISION_LIMIT" --set precision="$precision" --set data.valid_fraction=0.01; then
        if [ "$DRY_RUN" = 0 ]; then
            OUT=$(figures "$WORK/precision-$precision")
            echo "  $precision: $(value "$OUT" samples_per_s) samples/s"
        fi
    elif [ "$MODE" = cpu ]; then
        echo "  $precision: refused on this CPU (see the line above)"
    else
        echo "gpu_check.sh: error: precision=$precision failed on the GPU" >&2
        exit 1
    fi
done

echo; echo "== 4. two processes under torchrun"
if [ "$GPUS" -ge 2 ] || [ "$DRY_RUN" = 1 ]; then
    cmd=("$PYTHON" -m torch.distributed.run --standalone --nproc_per_node 2 -m workbench train --dataset names
         --device cuda "${DATA_ARGS[@]}" --run-dir "$WORK/names-2gpu" --quiet --set epochs=1 --set patience=0)
    echo "+ ${cmd[*]}"
    if [ "$DRY_RUN" = 0 ]; then
        "${cmd[@]}"
        figures "$WORK/names-2gpu"
    fi
else
    echo "  skipped: needs 2 or more GPUs ($GPUS here)"
fi

echo
if [ "$MISSED" = 1 ]; then echo "gpu_check: all steps ran; a goal was missed"; exit 3; fi
if [ "$DRY_RUN" = 1 ]; then echo "gpu_check: dry run, nothing was run"; exit 0; fi
echo "gpu_check: all steps ran; every goal checked was met"
