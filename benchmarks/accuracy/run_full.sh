#!/usr/bin/env bash
# The full studies in the order the committed results were made (one run at a time,
# one torch thread; resumable: rerunning skips finished runs and resumes a partial one):
# per seed, every study's equal-epoch runs, then its equal-wall-clock runs (calibrated
# on seed 0). Usage: nohup benchmarks/accuracy/run_full.sh > outputs/accuracy/full.log 2>&1 &
set -u
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
STUDIES=${STUDIES:-"ns2d swe cylinder darcy ns2d_superres cylinder_gap"}
for seed in 0 1 2; do
  for study in $STUDIES; do
    if [ "$study" = cylinder_gap ] && [ "$seed" = 2 ]; then continue; fi  # two seeds
    echo "=== $(date -u +%FT%TZ) $study seed $seed"
    "$PY" -m benchmarks.accuracy "$study" --seeds "$seed" --budgets epochs
    if [ "$study" != cylinder_gap ]; then
      "$PY" -m benchmarks.accuracy "$study" --seeds "$seed" --budgets time
    fi
  done
done
echo "=== $(date -u +%FT%TZ) all done"
