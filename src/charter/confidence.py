"""How sure the model was of its answer, from the per-token log-probabilities.

Each token's probability and entropy come from the backend; this module sums them up for the
trace (mean and minimum probability, the least certain spans) so a reader sees at a glance
which words the model was guessing.
"""

from __future__ import annotations

import math
from typing import Any

#: A token below this probability counts as uncertain (it starts or extends a weak span).
LOW_PROBABILITY = 0.5
MAX_SPANS = 3


def summarize(tokens: list[tuple[int, str, dict[str, Any]]]) -> dict[str, Any] | None:
    """Summarise `(char_offset, text, logprobs entry)` triples; None when there are none.

    Returns {"tokens", "mean_prob", "min_prob", "mean_entropy", "least_certain": [{"text",
    "offset", "min_prob"}]}: spans are runs of consecutive tokens under LOW_PROBABILITY,
    weakest first; when no token is that low, the single least likely token.
    """
    if not tokens:
        return None
    probs = [math.exp(lp["logprob"]) for _, _, lp in tokens]
    entropies = [lp["entropy"] for _, _, lp in tokens if lp.get("entropy") is not None]
    spans: list[dict[str, Any]] = []
    run: list[int] = []
    for i, p in enumerate([*probs, 1.0]):  # the sentinel closes a final run
        if p < LOW_PROBABILITY and i < len(tokens):
            run.append(i)
            continue
        if run:
            start = run[0]
            spans.append(
                {
                    "text": "".join(tokens[j][1] for j in run),
                    "offset": tokens[start][0],
                    "min_prob": round(min(probs[j] for j in run), 4),
                }
            )
            run = []
    if not spans:
        i = min(range(len(probs)), key=probs.__getitem__)
        spans = [{"text": tokens[i][1], "offset": tokens[i][0], "min_prob": round(probs[i], 4)}]
    spans.sort(key=lambda s: s["min_prob"])
    return {
        "tokens": len(tokens),
        "mean_prob": round(sum(probs) / len(probs), 4),
        "min_prob": round(min(probs), 4),
        "mean_entropy": round(sum(entropies) / len(entropies), 4) if entropies else None,
        "least_certain": spans[:MAX_SPANS],
    }
