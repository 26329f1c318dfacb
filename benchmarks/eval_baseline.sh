#!/usr/bin/env bash
# The baseline in docs/evaluation.md: every shipped suite against the raw default model
# (SmolLM2-135M-Instruct, no constitution: --constitution off), served two ways side by side,
# one thread each:
#   charter serve           (port $CHARTER_PORT, default 8701)
#   python -m llama_cpp.server  (port $LLAMACPP_PORT, default 8702), same GGUF file
# Runs are resumable: rerun this script after an interruption and each eval continues.
# Usage: benchmarks/eval_baseline.sh [extra `charter eval` flags, e.g. --limit 20]
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
out=${OUT:-benchmarks/results/eval}
cport=${CHARTER_PORT:-8701}
lport=${LLAMACPP_PORT:-8702}
max_tokens=${MAX_TOKENS:-64}
model=$($py -c 'from charter.models import embedded_model_path; print(embedded_model_path())')
mkdir -p "$out"
home=$(mktemp -d)   # keeps the eval's conversations out of the user's store

CHARTER_HOME=$home .venv/bin/charter serve --constitution off --port "$cport" --threads 1 >"$out/charter-serve.log" 2>&1 &
cpid=$!
$py -m llama_cpp.server --model "$model" --n_ctx 4096 --n_threads 1 --host 127.0.0.1 \
  --port "$lport" --interrupt_requests False >"$out/llamacpp-serve.log" 2>&1 &
lpid=$!
trap 'kill $cpid $lpid 2>/dev/null || true; rm -rf "$home"' EXIT
for url in "http://127.0.0.1:$cport" "http://127.0.0.1:$lport"; do
  for _ in $(seq 120); do curl -sf "$url/v1/models" >/dev/null && break; sleep 1; done
done

common=(--seed 0 --max-tokens "$max_tokens" --temperature 0 --quiet "$@")
( /usr/bin/time -f "%e s wall" .venv/bin/charter eval --url "http://127.0.0.1:$cport" \
    --model charter --out "$out/charter-raw" "${common[@]}" >"$out/charter-raw.out" 2>&1 ) &
e1=$!
( /usr/bin/time -f "%e s wall" .venv/bin/charter eval --url "http://127.0.0.1:$lport" \
    --out "$out/llamacpp-raw" "${common[@]}" >"$out/llamacpp-raw.out" 2>&1 ) &
e2=$!
wait $e1 || echo "charter-raw eval exited non-zero (see $out/charter-raw.out)"
wait $e2 || echo "llamacpp-raw eval exited non-zero (see $out/llamacpp-raw.out)"
.venv/bin/charter eval compare "$out/llamacpp-raw" "$out/charter-raw" --html "$out/compare.html" \
  >"$out/compare.md" || true
