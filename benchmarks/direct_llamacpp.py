"""The in-process baseline: llama-cpp-python called directly, with no HTTP in between.

`charter serve` promises decode speed within 10% of this; docs/benchmarks.md compares the two.
Usage: python benchmarks/direct_llamacpp.py [--model PATH] [--runs 8] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# Import the prompt and the percentile code from the package even when it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _machine import ForeignLoad  # noqa: E402

from charter.bench import SEED, build_prompt, summarize  # noqa: E402
from charter.models import embedded_model_path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def one_run(llm, prompt: str, max_tokens: int, cold: bool) -> dict:
    """Stream one chat completion; time the first content chunk and the decode after it."""
    if cold:
        llm.reset()  # forget the KV cache: the whole prompt is evaluated again
    start = time.perf_counter()
    first = last = None
    chunks = 0
    finish = None
    for part in llm.create_chat_completion(
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        temperature=0,
        max_tokens=max_tokens,
        seed=SEED,
    ):
        choice = part["choices"][0]
        if choice["delta"].get("content"):
            last = time.perf_counter()
            if first is None:
                first = last
            chunks += 1
        finish = choice.get("finish_reason") or finish
    end = time.perf_counter()
    decode_s = (last - first) if first is not None and last is not None else 0.0
    return {
        "ttft": (first - start) if first is not None else None,
        "e2e": end - start,
        "output_tokens": chunks,
        "finish_reason": finish,
        "decode_tok_s": (chunks - 1) / decode_s if chunks > 1 and decode_s > 0 else None,
        # The HTTP bench's definition: (e2e - ttft) / (n_out - 1), so the end of the stream
        # counts too.
        "tpot": (end - first) / (chunks - 1) if first is not None and chunks > 1 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="GGUF path (default: embedded SmolLM2)")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=50)
    parser.add_argument("--n-threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument(
        "--cold",
        action="store_true",
        help="reset the KV cache before each run (by default the chat template's shared "
        "prefix is reused, as one Llama behind a server does)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "direct_llamacpp.json")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    import llama_cpp

    model = args.model or str(embedded_model_path())
    t0 = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=model, n_ctx=args.n_ctx, n_threads=args.n_threads, verbose=False
    )
    load_s = time.perf_counter() - t0
    # The same prompts, in the same order, as `run_bench` sends: request 0 is the warm-up.
    prompts = [build_prompt(args.prompt_tokens, n) for n in range(args.runs + 1)]
    prompt_tokens = len(llm.tokenize(prompts[1].encode(), add_bos=False))

    one_run(llm, prompts[0], args.max_tokens, args.cold)  # warm-up, not counted
    with ForeignLoad() as load:
        runs = [one_run(llm, p, args.max_tokens, args.cold) for p in prompts[1:]]

    decode = [r["decode_tok_s"] for r in runs if r["decode_tok_s"] is not None]
    result = {
        "settings": {
            "model": model,
            "runs": args.runs,
            "max_tokens": args.max_tokens,
            "prompt_tokens": args.prompt_tokens,
            "prompt_tokens_measured": prompt_tokens,
            "n_threads": args.n_threads,
            "n_ctx": args.n_ctx,
            "temperature": 0,
            "seed": SEED,
            "cold": args.cold,
            "llama_cpp_python": llama_cpp.__version__,
        },
        "environment": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            "loadavg_1m_before": round(load_before, 2),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "machine_load": load.report(),
        "load_s": round(load_s, 4),
        "ttft_ms": summarize(r["ttft"] for r in runs if r["ttft"] is not None),
        "e2e_ms": summarize(r["e2e"] for r in runs),
        "tpot_ms": summarize(r["tpot"] for r in runs if r["tpot"] is not None),
        "decode_tok_s_mean": round(statistics.fmean(decode), 2) if decode else None,
        "mean_output_tokens": statistics.fmean(r["output_tokens"] for r in runs),
        "runs_detail": runs,
    }

    print(
        f"model {Path(model).name}  load {load_s * 1000:.0f} ms  "
        f"prompt {prompt_tokens} tok (+ chat template)  max_tokens {args.max_tokens}"
    )
    print(
        f"{'runs':>5} {'TTFT p50':>9} {'TTFT p99':>9} {'TPOT p50':>9} {'e2e p50':>8} "
        f"{'decode tok/s':>13} {'out tok':>8}"
    )
    print(
        f"{args.runs:>5} {result['ttft_ms']['p50']:>9.1f} {result['ttft_ms']['p99']:>9.1f} "
        f"{result['tpot_ms']['p50']:>9.1f} {result['e2e_ms']['p50']:>8.0f} "
        f"{result['decode_tok_s_mean'] or 0:>13.1f} "
        f"{result['mean_output_tokens']:>8.1f}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"other programs used {result['machine_load']['foreign_share']:.0%} of the CPU meanwhile")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
