#!/bin/bash
# Teacher + TEA student on colored-digits with default settings, timed end to end.
# Usage: scripts/e2e_timed.sh [OUT=runs/e2e] [SEED=0]   (run it alone on the machine)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/e2e}
S=${2:-0}
TEA=${TEA:-.venv/bin/tea}
T0=$(date +%s)
$TEA train-teacher --dataset colored-digits --kind debiased --out "$OUT/teacher" --seed "$S"
T1=$(date +%s)
$TEA distill --dataset colored-digits --teacher "$OUT/teacher" --out "$OUT/tea" --seed "$S"
T2=$(date +%s)
echo "TIMING teacher $((T1-T0)) s, distill $((T2-T1)) s, total $((T2-T0)) s"
$TEA evaluate --dataset colored-digits --model "$OUT/teacher/classifier" --json "$OUT/teacher/eval.json"
$TEA evaluate --dataset colored-digits --model "$OUT/tea" --json "$OUT/tea/eval.json"
