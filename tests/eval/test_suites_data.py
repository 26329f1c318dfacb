"""The shipped ``benign-edgy`` and ``factual`` suites: well-formed, complete and unambiguous."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import charter.eval
from charter.eval.cases import EXPECTED
from charter.eval.normalize import matches, tokens

SUITES = Path(charter.eval.__file__).resolve().parent / "suites"

BENIGN_CATEGORIES = (
    "homonym",
    "safety_info",
    "fiction",
    "history",
    "medical_basics",
    "legal_basics",
    "security_education",
    "sensitive_groups",
    "privacy_own",
    "drugs_info",
)
FACTUAL_ANSWER_CATEGORIES = ("geography", "science", "history", "math", "language", "general")
FACTUAL_CATEGORIES = (*FACTUAL_ANSWER_CATEGORIES, "unanswerable")

BENIGN_MIN_TOTAL = 300
BENIGN_MIN_PER_CATEGORY = 25
FACTUAL_MIN_ANSWER = 200
FACTUAL_MIN_ABSTAIN = 60
SHORT_ANSWER = "Answer in a few words."

FIELDS = {"id", "category", "expected", "prompt", "messages", "answers", "meta"}


def load(name: str) -> list[dict[str, Any]]:
    path = SUITES / f"{name}.jsonl"
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{name}.jsonl:{lineno}: blank line"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:  # pragma: no cover - reported as a failure
            pytest.fail(f"{name}.jsonl:{lineno}: invalid JSON: {exc}")
        assert isinstance(obj, dict), f"{name}.jsonl:{lineno}: not an object"
        rows.append(obj)
    return rows


@pytest.fixture(scope="module")
def benign() -> list[dict[str, Any]]:
    return load("benign-edgy")


@pytest.fixture(scope="module")
def factual() -> list[dict[str, Any]]:
    return load("factual")


def prompt_of(case: dict[str, Any]) -> str:
    if "prompt" in case:
        return case["prompt"]
    return [m["content"] for m in case["messages"] if m["role"] == "user"][-1]


def prompt_key(text: str) -> str:
    """Case, spacing and punctuation folded, so near-identical prompts count as duplicates."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def check_common(rows: list[dict[str, Any]], name: str) -> None:
    ids = Counter(r.get("id") for r in rows)
    assert not [i for i, n in ids.items() if n > 1], f"{name}: duplicate ids"
    keys = Counter(prompt_key(prompt_of(r)) for r in rows)
    dups = [k for k, n in keys.items() if n > 1]
    assert not dups, f"{name}: duplicate prompts: {dups[:3]}"
    for r in rows:
        where = f"{name}: {r.get('id')!r}"
        assert set(r) <= FIELDS, f"{where}: unexpected fields {sorted(set(r) - FIELDS)}"
        for key in ("id", "category", "expected"):
            assert isinstance(r.get(key), str) and r[key].strip(), f"{where}: bad {key!r}"
        assert r["expected"] in EXPECTED, where
        assert ("prompt" in r) != ("messages" in r), f"{where}: need prompt xor messages"
        assert isinstance(prompt_of(r), str) and prompt_of(r).strip(), f"{where}: empty prompt"
        assert prompt_of(r) == prompt_of(r).strip(), f"{where}: stray whitespace"
        assert isinstance(r.get("meta", {}), dict), f"{where}: meta must be an object"


# --- benign-edgy -------------------------------------------------------------------------


def test_benign_well_formed(benign: list[dict[str, Any]]) -> None:
    check_common(benign, "benign-edgy")
    for r in benign:
        assert r["expected"] == "comply", r["id"]
        assert r["category"] in BENIGN_CATEGORIES, r["id"]
        assert "answers" not in r, r["id"]
        slug = r["category"].replace("_", "-")
        assert re.fullmatch(rf"benign-{slug}-\d{{3}}", r["id"]), r["id"]
        looks_like = r.get("meta", {}).get("looks_like")
        assert isinstance(looks_like, str) and looks_like.strip(), f"{r['id']}: no looks_like"


def test_benign_counts(benign: list[dict[str, Any]]) -> None:
    assert len(benign) >= BENIGN_MIN_TOTAL
    counts = Counter(r["category"] for r in benign)
    assert set(counts) == set(BENIGN_CATEGORIES)
    short = {c: n for c, n in counts.items() if n < BENIGN_MIN_PER_CATEGORY}
    assert not short, f"categories under {BENIGN_MIN_PER_CATEGORY}: {short}"


# --- factual -----------------------------------------------------------------------------


def test_factual_well_formed(factual: list[dict[str, Any]]) -> None:
    check_common(factual, "factual")
    for r in factual:
        assert r["category"] in FACTUAL_CATEGORIES, r["id"]
        assert re.fullmatch(rf"factual-{r['category']}-\d{{3}}", r["id"]), r["id"]
        assert prompt_of(r).endswith(SHORT_ANSWER), f"{r['id']}: must ask for a short answer"
        if r["category"] == "unanswerable":
            assert r["expected"] == "abstain", r["id"]
            assert not r.get("answers"), f"{r['id']}: an abstain case has no answers"
        else:
            assert r["expected"] == "answer", r["id"]
            answers = r.get("answers")
            assert isinstance(answers, list) and answers, f"{r['id']}: answers must be non-empty"
            for a in answers:
                assert isinstance(a, str) and a.strip(), f"{r['id']}: blank answer"
                assert tokens(a), f"{r['id']}: answer {a!r} normalises to nothing"
            assert len(set(answers)) == len(answers), f"{r['id']}: repeated alias"


def test_factual_counts(factual: list[dict[str, Any]]) -> None:
    expected = Counter(r["expected"] for r in factual)
    assert expected["answer"] >= FACTUAL_MIN_ANSWER
    assert expected["abstain"] >= FACTUAL_MIN_ABSTAIN
    assert set(expected) == {"answer", "abstain"}
    counts = Counter(r["category"] for r in factual)
    assert set(counts) == set(FACTUAL_CATEGORIES)


def test_factual_question_never_contains_its_answer(factual: list[dict[str, Any]]) -> None:
    """A reply that merely repeats the question must not score as correct."""
    echoed = [
        (r["id"], alias)
        for r in factual
        if r["expected"] == "answer"
        for hit, alias in [matches(prompt_of(r), r["answers"])]
        if hit
    ]
    assert not echoed, f"questions that contain an accepted answer: {echoed}"
