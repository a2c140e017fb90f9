#!/usr/bin/env bash
# The new benchmarks on one GPU, many runs at once (issues #17, #18, #20): the step-cost benchmark on the GPU,
# then, in parallel,
#   glyphs-on-places at the demo's size (CNN width 8, 20 epochs) for seeds 0 and 1: segmenter teacher, ERM, and
#     TEA students: every `tea distill` default, and one change each (both classes' maps, 4x the learning rate,
#     40 epochs, the teacher's head copied — the last a diagnostic, never a default);
#   phantom-xrays at the same size for seeds 0 and 1: segmenter teacher (lung masks), ERM, TEA, TEA input maps only;
#   the real setting on glyphs-on-places at 64 px: segmenter + ResNet-50 teacher, ResNet-18 ERM and TEA students.
# Every training is cut at LIMIT seconds (its best checkpoint so far is evaluated) and every run is evaluated.
# The runs go to WORK; OUT receives the timeline, the step-cost tables and one archive of the small files.
# Usage: scripts/gpu_new_benchmarks.sh OUT WORK [ACCEL] [LIMIT_S] [EXTRA...]
#   (EXTRA goes to every training: e.g. --limit 32 --epochs 1 to try the script on a CPU)
set -u
OUT=$1; WORK=$2; ACCEL=${3:-cuda}; LIMIT=${4:-400}; shift 4 || shift $#
EXTRA=("$@")
cd "$(dirname "$0")/.."
mkdir -p "$OUT" "$WORK"
. scripts/gpu_env.sh
run() {  # NAME COMMAND...: train under the time limit, then evaluate whatever checkpoint it left
  local name=$1; shift
  stamp "start $name"
  timeout "$LIMIT" "${TEA[@]}" "$@" --out "$WORK/$name" --accelerator "$ACCEL" --no-progress "${EXTRA[@]}" \
    >"$WORK/$name.log" 2>&1
  stamp "end $name (exit $?)"
  OMP_NUM_THREADS=2 "${TEA[@]}" evaluate --model "$WORK/$name" --json "$WORK/$name.eval.json" \
    >"$WORK/$name.eval.txt" 2>&1 || echo "evaluate failed" >>"$WORK/$name.eval.txt"
}
if [ "$ACCEL" = cuda ] && [ "${BENCH:-1}" = 1 ]; then
  "${TEA[@]}" bench step-cost --accelerator cuda --rounds 5 --json "$OUT/bench-32x64.json" >"$OUT/bench.txt" 2>&1
  "${TEA[@]}" bench step-cost --accelerator cuda --rounds 5 --batch 128 --size 128 \
    --json "$OUT/bench-128x128.json" >>"$OUT/bench.txt" 2>&1
  stamp "bench done"
fi
demo_size=(--width 8 --epochs 20)
glyphs() {  # SEED
  local s=$1 d=glyphs-on-places
  run "glyphs-s$s-teacher" train-teacher --dataset $d --kind segmenter "${demo_size[@]}" --seg-epochs 15 --seed "$s"
  run "glyphs-s$s-erm" train --dataset $d "${demo_size[@]}" --seed "$s" &
  local dist=(distill --dataset $d --teacher "$WORK/glyphs-s$s-teacher" "${demo_size[@]}" --seed "$s")
  run "glyphs-s$s-tea" "${dist[@]}" &
  run "glyphs-s$s-tea-all" "${dist[@]}" --classes all &
  run "glyphs-s$s-tea-lr4" "${dist[@]}" --lr 8e-3 &
  run "glyphs-s$s-tea-40ep" "${dist[@]}" --epochs 40 &
  run "glyphs-s$s-tea-copyhead" "${dist[@]}" --copy-head &
  wait
}
xrays() {  # SEED
  local s=$1 d=phantom-xrays
  run "xrays-s$s-teacher" train-teacher --dataset $d --kind segmenter "${demo_size[@]}" --seg-epochs 15 --seed "$s"
  run "xrays-s$s-erm" train --dataset $d "${demo_size[@]}" --seed "$s" &
  local dist=(distill --dataset $d --teacher "$WORK/xrays-s$s-teacher" "${demo_size[@]}" --seed "$s")
  run "xrays-s$s-tea" "${dist[@]}" &
  run "xrays-s$s-tea-input" "${dist[@]}" --feature-weight 0 &
  wait
}
resnets() {
  local d=glyphs-on-places
  run resnet50-teacher train-teacher --dataset $d --kind segmenter --model resnet50 --epochs 20 --seg-epochs 15
  run resnet18-erm train --dataset $d --model resnet18 --epochs 20 &
  run resnet18-tea distill --dataset $d --teacher "$WORK/resnet50-teacher" --model resnet18 --epochs 20 &
  wait
}
glyphs 0 & glyphs 1 & xrays 0 & xrays 1 & resnets &
wait
stamp "all done"
# what comes back (at most 16 MiB a file): the logs, evaluations and run summaries, and the CNN runs' checkpoints
(cd "$WORK" && find . -name '*.json' -o -name '*.log' -o -name '*.txt' -o -name '*.safetensors' ! -path './resnet*' \
  | tar -czf "$OUT/runs.tar.gz" -T -)
ls -la "$OUT/runs.tar.gz"
cat "$OUT/timeline.txt"
