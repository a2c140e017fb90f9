#!/usr/bin/env bash
# The leave-one-benchmark-out runs of the 64-px benchmarks on one GPU (issue #22), all at once: for each
# benchmark, candidate and seed one `tea study lobo` call on that benchmark alone, at the demo's size
# (CNN width 8, 20 epochs), from the given teacher.  Each writes its run folder and score.json under
# WORK/lobo, which a later `tea study lobo` over every benchmark (same options, same --out) reuses: only that
# call makes the choices and reads test splits.  OUT receives the timeline and one archive per benchmark.
# Usage: scripts/gpu_lobo.sh OUT WORK TEACHERS CANDIDATES SEEDS BENCHMARKS [ACCEL] [LIMIT_S] [EXTRA...]
#   TEACHERS: a folder holding one `tea train-teacher` folder per benchmark, named after it;
#   CANDIDATES, SEEDS, BENCHMARKS: comma-separated; EXTRA goes to every call (e.g. --limit 32 --epochs 1)
set -u
OUT=$1; WORK=$2; TEACHERS=$3; CANDIDATES=$4; SEEDS=$5; BENCHMARKS=$6; ACCEL=${7:-cuda}; LIMIT=${8:-540}
shift 8 || shift $#
EXTRA=("$@")
cd "$(dirname "$0")/.."
mkdir -p "$OUT" "$WORK/logs"
. scripts/gpu_env.sh
one() {  # BENCHMARK CANDIDATE SEED
  local name="$1-$2-s$3"
  stamp "start $name"
  timeout "$LIMIT" "${TEA[@]}" study lobo --benchmarks "$1" --teachers "$1=$TEACHERS/$1" --candidates "$2" \
    --seeds "$3" --width 8 --epochs 20 --out "$WORK/lobo" --accelerator "$ACCEL" --no-progress "${EXTRA[@]}" \
    >"$WORK/logs/$name.log" 2>&1
  stamp "end $name (exit $?)"
}
for b in ${BENCHMARKS//,/ }; do
  for c in ${CANDIDATES//,/ }; do
    for s in ${SEEDS//,/ }; do one "$b" "$c" "$s" & done
  done
done
wait
stamp "all done"
for b in ${BENCHMARKS//,/ }; do
  tar -czf "$OUT/lobo-$b.tgz" -C "$WORK" "lobo/$b" logs
done
ls -la "$OUT" >>"$OUT/timeline.txt"
