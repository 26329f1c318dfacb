#!/usr/bin/env bash
# Evaluate raw and tuned models with the run-time constitution off (the gain in the weights)
# and on, one model at a time on a quiet machine (docs/training.md, "Measured").
# Usage: benchmarks/train/eval_tuned.sh OUT_DIR NAME=GGUF [NAME=GGUF...]
#   GGUF "embedded" is the shipped SmolLM2-135M-Instruct. Env: LIMIT (per suite, default
#   40), MODES ("off on"), THREADS (2), PORT (8711), MAX_TOKENS (64). Resumable: rerun to
#   continue; a finished run is skipped by `charter eval` itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1; shift
limit=${LIMIT:-40}; modes=${MODES:-off on}; threads=${THREADS:-2}; port=${PORT:-8711}
max_tokens=${MAX_TOKENS:-64}
mkdir -p "$out"
runs=()
for spec in "$@"; do
  name=${spec%%=*}; gguf=${spec#*=}
  for mode in $modes; do
    run="$out/$name-constitution-$mode"
    home=$(mktemp -d)
    model_flag=(); [ "$gguf" = embedded ] || model_flag=(--model "$gguf")
    CHARTER_HOME=$home .venv/bin/charter serve "${model_flag[@]}" --port "$port" \
      --threads "$threads" --constitution "$([ "$mode" = off ] && echo off || echo default)" \
      >"$run.serve.log" 2>&1 &
    spid=$!
    for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 1; done
    /usr/bin/time -f "%e s wall" .venv/bin/charter eval --url "http://127.0.0.1:$port" \
      --model charter --out "$run" --seed 0 --max-tokens "$max_tokens" --temperature 0 \
      --limit "$limit" --quiet >"$run.out" 2>&1 || echo "eval of $run exited non-zero"
    kill $spid; wait $spid 2>/dev/null || true; rm -rf "$home"
    runs+=("$run")
  done
done
.venv/bin/charter eval compare "${runs[@]}" --html "$out/compare.html" >"$out/compare.md" || true
echo "wrote $out/compare.md"
