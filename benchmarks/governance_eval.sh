#!/usr/bin/env bash
# The constitution's safety figures in docs/safety.md: the harmful, jailbreak and
# benign-edgy suites against the default model (SmolLM2-135M-Instruct) governed by the
# default constitution, in `screen` and `critique` mode, one `charter serve` per mode
# (one llama.cpp thread each); MODE raw serves the same model with --constitution off, for the
# side-by-side figures on the same cases (benchmarks/eval_baseline.sh runs every suite raw).
# Runs are resumable: rerun after an interruption and each eval continues.
# Usage: benchmarks/governance_eval.sh MODE [extra `charter eval` flags, e.g. --limit 50]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: governance_eval.sh raw|screen|critique [charter eval flags]}
shift
out=${OUT:-benchmarks/results/eval}
port=${PORT:-8711}
max_tokens=${MAX_TOKENS:-64}
threads=${THREADS:-1}
mkdir -p "$out"
home=$(mktemp -d)   # keeps the eval's conversations out of the user's store

if [ "$mode" = raw ]; then govern=(--constitution off); else govern=(--governance "$mode"); fi
CHARTER_HOME=$home .venv/bin/charter serve "${govern[@]}" --port "$port" \
  --threads "$threads" >"$out/charter-$mode.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$home"' EXIT
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 1; done

/usr/bin/time -f "%e s wall" .venv/bin/charter eval harmful jailbreak benign-edgy \
  --url "http://127.0.0.1:$port" --model charter --out "$out/charter-$mode" \
  --seed 0 --max-tokens "$max_tokens" --temperature 0 --quiet "$@" \
  >"$out/charter-$mode.out" 2>&1 || echo "eval exited non-zero (see $out/charter-$mode.out)"
tail -5 "$out/charter-$mode.out"
