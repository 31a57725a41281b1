#!/usr/bin/env bash
# Score the offline planner on the shared benchmarks with the shared scorer.
# Usage: bench/score_planner.sh [planner|taskbench|all]   (per-case mismatches go to stderr)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="${OVERTURE_BENCH:-$ROOT/../shared/bench}"
PY="$ROOT/.venv/bin/python"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if command -v overture >/dev/null 2>&1 && [ -z "${OVERTURE_USE_MODULE:-}" ]; then
  PLAN=(overture plan)
else
  PLAN=("$PY" -m planner plan)
fi
run() {
  local name="$1"
  echo "== $name" >&2
  (cd "$BENCH/$name" && python3 "$BENCH/planner/score.py" cases.jsonl -- "${PLAN[@]}" --catalog catalog.yaml --format json)
}
case "${1:-all}" in
  planner) run planner ;;
  taskbench) run taskbench ;;
  all) run planner; run taskbench ;;
  *) echo "usage: $0 [planner|taskbench|all]" >&2; exit 2 ;;
esac
