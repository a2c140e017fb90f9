#!/bin/bash
# glyphs-on-places (64 px, Waterbirds-shaped) at the demo's size and length: segmenter teacher, ERM, TEA
# (every `tea distill` default but the epochs), each width 8 for 20 epochs.  Usage: scripts/glyphs_run.sh [OUT] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/glyphs}
S=${2:-0}
TEA=${TEA:-.venv/bin/tea}
DS=glyphs-on-places
T0=$(date +%s)
[ -f "$OUT/teacher/teacher.json" ] || $TEA train-teacher --dataset $DS --kind segmenter --width 8 --epochs 20 \
    --seg-epochs 15 --seed "$S" --out "$OUT/teacher" --no-progress
T1=$(date +%s)
[ -f "$OUT/erm/done" ] || { $TEA train --dataset $DS --width 8 --epochs 20 --seed "$S" --out "$OUT/erm" --no-progress \
    && touch "$OUT/erm/done"; }
T2=$(date +%s)
[ -f "$OUT/tea/done" ] || { $TEA distill --dataset $DS --teacher "$OUT/teacher" --width 8 --epochs 20 --seed "$S" \
    --out "$OUT/tea" --no-progress && touch "$OUT/tea/done"; }
T3=$(date +%s)
echo "TIMING teacher $((T1-T0)) s, erm $((T2-T1)) s, tea $((T3-T2)) s"
for r in teacher erm tea; do $TEA evaluate --model "$OUT/$r" --json "$OUT/$r/eval.json" | grep -v "^  source"; done
