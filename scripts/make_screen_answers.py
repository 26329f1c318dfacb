"""Make the output screen's answer examples: the default model's own answers to every
example request of the default constitution (covers, look-alikes, harmless classes).

Why: the screens learn from requests, but the output screen reads answers. Trained on
requests alone, it took benign answers that mention a risky topic (a lawnmower's choke, a
syringe found in a park) for harm. These answers teach it what the model's answers look like:
answers to benign requests are negatives; answers to harmful requests are positives for their
principle unless the model refused (then they are negatives too: a refusal is benign).

Everything here is made by the project: the requests are the constitution's own examples
(written for Charter), the answers come from the embedded SmolLM2-135M-Instruct. No public
benchmark text is involved. The result ships as package data
(src/charter/constitution/data/answers.jsonl); training reads it (screen.py, `answers`).

Usage: python scripts/make_screen_answers.py [--max-tokens 64] [--seed 0]  (~5 min, 2 cores)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from charter.constitution.loader import load_default
from charter.eval.refusal import detect
from charter.models import embedded_model_path

OUT = Path(__file__).resolve().parents[1] / "src/charter/constitution/data/answers.jsonl"


def requests() -> list[dict[str, object]]:
    c = load_default()
    rows: list[dict[str, object]] = []
    seen: set[str] = set()

    def add(text: str, role: str, principle: str | None) -> None:
        if text in seen:
            return
        seen.add(text)
        rows.append({"prompt": text, "role": role, "principle": principle})

    for p in c.principles:
        if p.kind != "harm":
            continue
        for t in p.covers:
            add(t, "cover", p.id)
        for t in p.not_covers:
            add(t, "not_cover", None)
    for h in c.harmless:
        for t in h.examples:
            add(t, "harmless", None)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from llama_cpp import Llama

    model_path = embedded_model_path()
    llm = Llama(
        model_path=str(model_path),
        n_ctx=1024,
        n_threads=args.threads,
        seed=args.seed,
        verbose=False,
    )
    rows = requests()
    t0 = time.perf_counter()
    out: list[dict[str, object]] = []
    for i, row in enumerate(rows):
        # Answers that start with the text only: text the model completes an excerpt of
        # ("Sure, here is how...") is an answer excerpt already; ask it as the user anyway.
        r = llm.create_chat_completion(
            messages=[{"role": "user", "content": str(row["prompt"])}],
            max_tokens=args.max_tokens,
            temperature=0.7,
            seed=args.seed + i,
        )
        answer = r["choices"][0]["message"]["content"].strip()
        if not answer:
            continue
        verdict = detect(answer)
        out.append({**row, "answer": answer, "refused": verdict.refused})
        if (i + 1) % 50 == 0:
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"{i + 1}/{len(rows)} ({rate:.1f}/s)", file=sys.stderr)
    meta = {
        "generator": model_path.name,
        "max_tokens": args.max_tokens,
        "temperature": 0.7,
        "seed": args.seed,
        "constitution": load_default().hash,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(json.dumps({"meta": meta}, ensure_ascii=False) + "\n")
        for row in out:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    refused = sum(1 for r in out if r["refused"])
    print(
        f"wrote {len(out)} answers ({refused} refusals) to {args.out} in "
        f"{time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
