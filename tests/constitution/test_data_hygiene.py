"""The screens' training texts and the evaluation suites stay apart.

The screens learn from the constitution's own examples (covers, not_covers, harmless
examples); the evaluation suites that measure the governed assistant are written by a
different author in separate files. If a training text were (nearly) an evaluation prompt,
the evaluation would measure memory, not generalisation. The suites are read here only
through charter.eval's own loader, and a failure names the case id and the constitution
text, never the evaluation prompt.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import pytest

from charter.constitution.loader import load_default
from charter.eval.suites import list_suites, load_suite

#: Character 5-gram Jaccard similarity at or above which two texts count as near-duplicates.
NEAR = 0.8


def normalise(text: str) -> str:
    """Case, punctuation and whitespace folded away (NFKC first)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def grams(text: str, n: int = 5) -> frozenset[str]:
    t = normalise(text)
    if len(t) <= n:
        return frozenset([t])
    return frozenset(t[i : i + n] for i in range(len(t) - n + 1))


def training_texts() -> list[str]:
    c = load_default()
    texts = [t for p in c.principles for t in (*p.covers, *p.not_covers)]
    texts += [t for h in c.harmless for t in h.examples]
    return list(dict.fromkeys(texts))


def eval_prompts() -> list[tuple[str, str]]:
    """(suite:case id, text) for every user message of every case of every shipped suite."""
    out = []
    for info in list_suites():
        suite = load_suite(info.name)
        for case in suite.cases:
            for m in case.messages:
                if m["role"] == "user" and m["content"].strip():
                    out.append((f"{suite.name}:{case.id}", m["content"]))
    return out


@pytest.fixture(scope="module")
def corpora() -> tuple[list[str], list[tuple[str, str]]]:
    train, prompts = training_texts(), eval_prompts()
    assert len(train) > 500 and len(prompts) > 100  # both really loaded
    return train, prompts


def max_similarity(train: list[str], prompts: list[tuple[str, str]]) -> tuple[float, str, str]:
    """The highest character-5-gram Jaccard between any training text and any prompt:
    (similarity, training text, case id). An inverted index over the prompts' grams keeps
    it to the pairs that share at least one gram."""
    prompt_grams = [grams(text) for _, text in prompts]
    index: dict[str, list[int]] = {}
    for j, g in enumerate(prompt_grams):
        for x in g:
            index.setdefault(x, []).append(j)
    best = (0.0, "", "")
    for text in train:
        g = grams(text)
        shared = Counter(j for x in g for j in index.get(x, ()))
        for j, inter in shared.items():
            sim = inter / (len(g) + len(prompt_grams[j]) - inter)
            if sim > best[0]:
                best = (sim, text, prompts[j][0])
    return best


def test_grams_and_normalise() -> None:
    assert normalise("  How do I  BAKE bread?!") == "how do i bake bread"
    a, b = grams("How do I bake bread?"), grams("how do i bake bread")
    assert a == b
    sim, text, case = max_similarity(["How do I bake bread?"], [("s:1", "HOW do I bake bread")])
    assert sim == 1.0 and case == "s:1"
    sim, _, _ = max_similarity(["How do I bake bread?"], [("s:1", "Write a poem about rain.")])
    assert sim < 0.2


def test_no_training_text_is_an_eval_prompt(
    corpora: tuple[list[str], list[tuple[str, str]]],
) -> None:
    train, prompts = corpora
    by_norm = {normalise(text): case for case, text in prompts}
    clashes = [(t, by_norm[normalise(t)]) for t in train if normalise(t) in by_norm]
    assert not clashes, f"constitution texts that are eval prompts: {clashes[:5]}"


def test_no_training_text_nearly_duplicates_an_eval_prompt(
    corpora: tuple[list[str], list[tuple[str, str]]],
) -> None:
    train, prompts = corpora
    sim, text, case = max_similarity(train, prompts)
    print(f"\nmax character-5-gram Jaccard, constitution text vs eval prompt: {sim:.3f}")
    assert sim < NEAR, f"{text!r} is a near-duplicate ({sim:.2f}) of eval case {case}"
