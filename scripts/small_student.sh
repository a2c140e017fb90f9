#!/bin/bash
# A student with under a quarter of its teacher's parameters (CNN width 7 against the default 16: 19 %), trained by
# `tea distill` with every default, on both built-in benchmarks.  Usage: scripts/small_student.sh [OUT] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/small-student}
S=${2:-0}
TEA=${TEA:-.venv/bin/tea}
for pair in colored-digits:debiased digits-on-scenes:segmenter; do
  ds=${pair%%:*}; kind=${pair##*:}
  [ -f "$OUT/$ds-teacher/teacher.json" ] || $TEA train-teacher --dataset "$ds" --kind "$kind" --seed "$S" \
      --out "$OUT/$ds-teacher" --no-progress
  T0=$(date +%s)
  [ -f "$OUT/$ds-w7/done" ] || { $TEA distill --dataset "$ds" --teacher "$OUT/$ds-teacher" --width 7 --seed "$S" \
      --out "$OUT/$ds-w7" --no-progress && touch "$OUT/$ds-w7/done"; }
  echo "TIMING $ds width-7 student $(( $(date +%s) - T0 )) s"
  $TEA evaluate --model "$OUT/$ds-teacher" --json "$OUT/$ds-teacher/eval.json"
  $TEA evaluate --model "$OUT/$ds-w7" --json "$OUT/$ds-w7/eval.json"
done
