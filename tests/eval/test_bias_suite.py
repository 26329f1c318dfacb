"""The shipped ``bias`` suite: equal to a fresh build, well-formed, and balanced."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from charter.eval import build_bias
from charter.eval.build_bias import ATTRIBUTES, UNKNOWN_PHRASES, build_cases, render

SUITE = Path(build_bias.__file__).resolve().parent / "suites" / "bias.jsonl"
ID_RE = re.compile(
    r"^bias-(?P<attr>[a-z_]+)-(?P<num>\d{2})-(?P<ctx>amb|dis)-(?P<pol>neg|nonneg)-(?P<order>ab|ba)$"
)


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    return [json.loads(line) for line in SUITE.read_text(encoding="utf-8").splitlines()]


def test_committed_file_equals_fresh_build() -> None:
    assert SUITE.read_text(encoding="utf-8") == render(build_cases()), (
        "bias.jsonl is stale: run `python -m charter.eval.build_bias`"
    )


def test_build_is_deterministic_and_main_writes_out(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "bias.jsonl"
    assert build_bias.main(["--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render(build_cases()) == render(build_cases())


def test_size_and_attributes(cases: list[dict]) -> None:
    assert 320 <= len(cases) <= 450
    counts = Counter(c["category"] for c in cases)
    assert set(counts) == set(ATTRIBUTES)
    assert all(n >= 32 for n in counts.values()), counts
    templates = Counter(c["meta"]["template"] for c in cases)
    per_attr = Counter(t.rsplit("-", 1)[0] for t in templates)
    assert all(per_attr[a] >= 6 for a in ATTRIBUTES), per_attr


def test_ids_unique_and_well_formed(cases: list[dict]) -> None:
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids))
    for c in cases:
        m = ID_RE.match(c["id"])
        assert m, c["id"]
        b = c["bias"]
        assert m["attr"] == c["category"] == b["attribute"]
        assert c["meta"]["template"] == f"{m['attr']}-{m['num']}"
        assert m["ctx"] == b["context"][:3]
        assert m["pol"] == {"negative": "neg", "nonnegative": "nonneg"}[b["polarity"]]
        assert m["order"] == c["meta"]["order"]


def test_every_case_is_consistent(cases: list[dict]) -> None:
    for c in cases:
        b = c["bias"]
        cid = c["id"]
        assert list(c) == ["id", "category", "expected", "prompt", "answers", "bias", "meta"]
        assert c["expected"] == "answer"
        opts = b["options"]
        assert list(opts) == ["A", "B", "C"], cid
        assert len(set(opts.values())) == 3, cid
        assert b["answer"] in opts and b["biased"] in opts and b["unknown"] in opts, cid
        assert c["answers"] == [b["answer"], opts[b["answer"]]], cid
        assert opts[b["unknown"]] in UNKNOWN_PHRASES, cid
        assert sum(v in UNKNOWN_PHRASES for v in opts.values()) == 1, cid
        assert b["biased"] != b["unknown"], cid
        if b["context"] == "ambiguous":
            assert b["answer"] == b["unknown"], cid
        else:
            assert b["context"] == "disambiguated", cid
            assert b["answer"] != b["unknown"], cid
        assert b["polarity"] in ("negative", "nonnegative"), cid


def test_prompt_format(cases: list[dict]) -> None:
    for c in cases:
        lines = c["prompt"].split("\n")
        opts = c["bias"]["options"]
        assert len(lines) == 6, c["id"]
        assert lines[1].startswith("Question: ") and lines[1].endswith("?"), c["id"]
        assert lines[2:5] == [f"{k}) {v}" for k, v in opts.items()], c["id"]
        assert lines[5] == "Answer with the letter of the correct option."
        context = lines[0].lower()
        # Both people are named in the context, in the order the options list them.
        people = [v.lower() for v in opts.values() if v not in UNKNOWN_PHRASES]
        found = [re.search(rf"\b{re.escape(p.removeprefix('the '))}\b", context) for p in people]
        assert all(found), c["id"]
        positions = [m.start() for m in found if m]
        assert positions == sorted(positions), c["id"]
        if c["bias"]["context"] == "ambiguous":
            # Nothing refers back to either person by name: the text never says who.
            assert not any(re.search(rf"\b{re.escape(p)}\b", context) for p in people), c["id"]
        assert "{" not in c["prompt"] and "}" not in c["prompt"], c["id"]


def test_disambiguated_context_extends_the_ambiguous_one(cases: list[dict]) -> None:
    by_id = {c["id"]: c for c in cases}
    for c in cases:
        if c["bias"]["context"] != "disambiguated":
            continue
        amb = by_id[c["id"].replace("-dis-", "-amb-")]
        amb_ctx = amb["prompt"].split("\n")[0]
        dis_ctx = c["prompt"].split("\n")[0]
        assert dis_ctx.startswith(amb_ctx + " ") and len(dis_ctx) > len(amb_ctx), c["id"]
        # Both questions of one order share the same text.
        twin = by_id[c["id"].replace("-neg-", "-nonneg-")] if "-neg-" in c["id"] else None
        if twin is not None:
            assert twin["prompt"].split("\n")[0] == dis_ctx


def test_polarity_context_and_order_balanced_per_attribute(cases: list[dict]) -> None:
    for attr in ATTRIBUTES:
        mine = [c for c in cases if c["category"] == attr]
        combos = Counter(
            (c["bias"]["context"], c["bias"]["polarity"], c["meta"]["order"]) for c in mine
        )
        assert len(combos) == 8, (attr, combos)
        assert len(set(combos.values())) == 1, (attr, combos)


def test_stereotype_consistent_and_counter_balanced(cases: list[dict]) -> None:
    for attr in ATTRIBUTES:
        dis = [
            c for c in cases if c["category"] == attr and c["bias"]["context"] == "disambiguated"
        ]
        by_kind = Counter(
            (c["bias"]["answer"] == c["bias"]["biased"], c["bias"]["polarity"], c["meta"]["order"])
            for c in dis
        )
        assert len(by_kind) == 8, (attr, by_kind)
        assert len(set(by_kind.values())) == 1, (attr, by_kind)


def test_biased_option_follows_polarity(cases: list[dict]) -> None:
    """The stereotype picks group ``a`` for a negative question and group ``b`` otherwise, so
    the biased option flips between the two polarities of one context and order."""
    by_id = {c["id"]: c for c in cases}
    for c in cases:
        if "-neg-" not in c["id"]:
            continue
        twin = by_id[c["id"].replace("-neg-", "-nonneg-")]
        mine, theirs = c["bias"], twin["bias"]
        assert mine["options"][mine["biased"]] != theirs["options"][theirs["biased"]], c["id"]


def test_unknown_option_position_and_wording_vary(cases: list[dict]) -> None:
    for attr in ATTRIBUTES:
        mine = [c["bias"] for c in cases if c["category"] == attr]
        positions = Counter(b["unknown"] for b in mine)
        assert set(positions) == {"A", "B", "C"}
        assert max(positions.values()) - min(positions.values()) <= 1, (attr, positions)
        assert {b["options"][b["unknown"]] for b in mine} == set(UNKNOWN_PHRASES)
    answers = Counter(c["bias"]["answer"] for c in cases)
    assert max(answers.values()) < 0.4 * len(cases), answers


def test_loads_as_a_suite() -> None:
    suites = pytest.importorskip("charter.eval.suites")
    parse_suite = getattr(suites, "parse_suite", None)
    if parse_suite is None:
        pytest.skip("charter.eval.suites has no parse_suite")
    suite = parse_suite(SUITE.read_bytes(), name="bias", version="1", label="bias.jsonl")
    assert len(suite.cases) == len(SUITE.read_text(encoding="utf-8").splitlines())
    assert suite.categories == list(ATTRIBUTES)
    assert all(c.bias and c.expected == "answer" and c.answers for c in suite.cases)
