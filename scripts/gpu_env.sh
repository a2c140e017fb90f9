# Sourced by scripts/gpu_*.sh from the repository root, with OUT set: the project's code on the path, one
# thread per process, `"${TEA[@]}"` to run the command line, and `stamp MESSAGE` to log to OUT/timeline.txt.
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
TEA=(python3 -c 'import sys; from teakit.cli import main; sys.exit(main())')
T0=$(date +%s)
stamp() { echo "$(( $(date +%s) - T0 )) s: $*" >>"$OUT/timeline.txt"; }
