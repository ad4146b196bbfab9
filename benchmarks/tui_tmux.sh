#!/usr/bin/env bash
# Drive the real terminal app in tmux, keyboard only, as a new user would:
#   1. `workbench` -> train the names model with the default setup -> predict "Dostoevsky" (top-3),
#      counting every key press (typing the name is not counted);
#   2. a run started with `workbench train` in another pane is opened in the app and watched live,
#      paused and resumed from the app;
#   3. a run started from the app keeps training after the app is closed and the tmux session
#      (the "SSH connection") is killed.
# Prints what `tmux capture-pane` shows at each point.
#
# usage: benchmarks/tui_tmux.sh            (needs tmux, the names data in $WORKBENCH_DATA_DIR or ../shared/data)
# env:   WORKBENCH (the workbench command), KEEP=1 keeps the temporary runs folder
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
WB=${WORKBENCH:-workbench}
DATA=${WORKBENCH_DATA_DIR:-$HERE/../shared/data}
DATA=$(cd "$DATA" && pwd)
WORK=$(mktemp -d)
RUNS=$WORK/runs
S=wbtui$$
ENV="env WORKBENCH_RUNS_DIR=$RUNS WORKBENCH_DATA_DIR=$DATA WORKBENCH_KEYS=$WORK/no-keys.toml TERM=xterm-256color"
KEYS=0
SEQUENCE=()

cleanup() {
  tmux kill-session -t "$S" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

press() {  # press KEY... : send named keys to the app pane and count them
  for key in "$@"; do
    tmux send-keys -t "$S:app" "$key"
    KEYS=$((KEYS + 1))
    SEQUENCE+=("$key")
    echo "  [key $KEYS] $key"
    sleep 0.3
  done
}

type_text() {  # type literal text (not counted as key presses)
  tmux send-keys -t "$S:app" -l "$1"
  SEQUENCE+=("\"$1\"")
  echo "  [typed] $1"
}

capture() {  # capture [WINDOW]
  tmux capture-pane -p -t "$S:${1:-app}"
}

wait_for() {  # wait_for PATTERN TIMEOUT [WINDOW]
  local deadline=$((SECONDS + $2))
  while ! capture "${3:-app}" | grep -qE "$1"; do
    if [ $SECONDS -gt $deadline ]; then
      echo "timed out waiting for /$1/; the screen shows:"
      capture "${3:-app}"
      exit 1
    fi
    sleep 0.2
  done
}

show() {
  echo "----- capture-pane ($1) -----"
  capture "${2:-app}"
  echo "-----"
}

echo "== 1. from \`workbench\` to a trained names model and a prediction =="
tmux new -d -s "$S" -x 100 -y 30 -n app "cd $WORK && exec bash --norc --noprofile"
sleep 1
start=$(date +%s.%N)
tmux send-keys -t "$S:app" "$ENV $WB; sleep 600" Enter
wait_for "Dataset" 20
painted=$(date +%s.%N)
python3 -c "print(f'first paint {$painted - $start:.2f} s after typing the command (Python start, imports, first frame)')"
show "the app opens on the setup screen"
press t
wait_for "RUNNING" 60
sleep 6
show "training, a few seconds in"
wait_for "FINISHED" 600
show "training finished"
press p
wait_for "names / gru" 60
type_text "Dostoevsky"
wait_for "Dostoevsky →" 20
sleep 0.5
show "prediction for Dostoevsky"
echo "key presses: $KEYS  sequence: ${SEQUENCE[*]}"

echo
echo "== 2. attach to a run started with \`workbench train\` in another pane =="
tmux new-window -d -t "$S" -n cli "cd $WORK && $ENV $WB train --dataset names --set epochs=15; sleep 600"
press F4
wait_for "running" 60
show "runs browser lists the command-line run"
press Enter
wait_for "RUNNING.*epoch" 60
sleep 3
show "the command-line run, watched live in the app"
press Space
wait_for "PAUSED" 20
show "paused from the app"
show "the command-line pane" cli
press Space
wait_for "RUNNING" 20
wait_for "FINISHED" 300
show "the command-line run finished"
show "the command-line pane" cli

echo
echo "== 3. a run started in the app survives closing the app and losing the terminal =="
press F2
wait_for "Dataset" 10
press t
wait_for "RUNNING.*epoch" 120
press C-q
sleep 1
tmux kill-session -t "$S"
echo "app closed and tmux session killed (SIGHUP to everything in it)"
sleep 5
$ENV $WB runs
echo "waiting for it to finish..."
for _ in $(seq 1 300); do
  if ! $ENV $WB runs | grep -qE "running|starting"; then break; fi
  sleep 2
done
$ENV $WB runs
