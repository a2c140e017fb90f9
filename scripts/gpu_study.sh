#!/usr/bin/env bash
# Longer convergence runs, many at once, on one GPU (issue #6: "run the best recipes at larger scale").
# Usage: scripts/gpu_study.sh PLAN TEACHER_DIR WORK_DIR [ACCEL] [EPOCHS_150] [TIME_LIMIT_S] [EXTRA...]
# PLAN: variants (one run per variant, seed 0, plus seeds 1-2 of the default) or seeds (more seeds
# of the best variants).
# Every run is `tea study convergence` with one variant; each writes VARIANT/curve.partial.csv after
# every epoch, so a run stopped by the time limit still leaves its curve.
set -u
PLAN=$1; TEACHER=$2; W=$3; ACCEL=${4:-cuda}; E=${5:-150}; LIMIT=${6:-440}; shift 6 || true
EXTRA=("$@")
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
TEA=(python3 -c 'import sys; from teakit.cli import main; sys.exit(main())')
mkdir -p "$W"
run() {  # NAME VARIANT EPOCHS SEED
  timeout "$LIMIT" "${TEA[@]}" study convergence --dataset colored-digits --teacher "$TEACHER" \
    --out "$W/$1" --variants "$2" --epochs "$3" --seed "$4" --accelerator "$ACCEL" --no-progress "${EXTRA[@]}" \
    >"$W/$1.log" 2>&1
  echo "$1 exit $?" >>"$W/exits.txt"
}
# smoke: one epoch; stop at once if the stack does not run here
timeout 120 "${TEA[@]}" study convergence --dataset colored-digits --teacher "$TEACHER" --out "$W/smoke" \
  --variants default --epochs 1 --accelerator "$ACCEL" --no-progress "${EXTRA[@]}" >"$W/smoke.log" 2>&1 \
  || { tail -40 "$W/smoke.log"; exit 3; }
tail -2 "$W/smoke.log"
if [ "$PLAN" = seeds ]; then
  for s in 1 2 3 4 5; do run "adam-3e-3-s$s" adam-3e-3 "$E" "$s" & done
  for s in 1 2; do run "pair-s$s" pair "$E" "$s" & run "width-32-s$s" width-32 $((E * 2)) "$s" & done
  for s in 3 4; do run "default-s$s" default "$E" "$s" & done
  wait; cat "$W/exits.txt"; exit 0
fi
L=$((E * 10 / 3))   # the long runs: 500 epochs when E = 150
run default-s0 default "$E" 0 & run default-s1 default "$E" 1 & run default-s2 default "$E" 2 &
run default-long default "$L" 0 & run pair-long pair $((E * 2)) 0 & run pair-s0 pair "$E" 0 &
run head-copied head-copied "$E" 0 & run width-32 width-32 $((E * 2)) 0 & run no-batchnorm no-batchnorm "$E" 0 &
run adam-3e-3 adam-3e-3 "$E" 0 & run batch-32 batch-32 "$E" 0 & run mse mse "$E" 0 &
run wide-eps wide-eps "$E" 0 & run adamw adamw "$E" 0 &
wait
cat "$W/exits.txt"
