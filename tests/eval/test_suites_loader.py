"""Suites: the shipped manifest, a user's own JSONL, validation naming file:line, sampling."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from charter.errors import ConfigError
from charter.eval.cases import EXPECTED
from charter.eval.suites import SuiteError, list_suites, load_suite, sample

SHIPPED = ["harmful", "jailbreak", "benign-edgy", "bias", "factual"]


def line(**fields: object) -> str:
    base: dict[str, object] = {"id": "c1", "category": "cat", "expected": "refuse", "prompt": "p"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def write(tmp_path: Path, text: str, name: str = "bad.jsonl") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_manifest_names_the_shipped_suites() -> None:
    infos = list_suites()
    assert [s.name for s in infos] == SHIPPED
    for s in infos:
        assert s.file == f"{s.name}.jsonl"
        assert s.version == "1"
        assert s.description


def test_load_own_suite(tmp_path: Path) -> None:
    text = "\n".join(
        [
            line(id="a", category="x"),
            "",  # blank lines are allowed
            line(
                id="b",
                category="y",
                expected="comply",
                prompt=None,
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": "How do I kill a process?"},
                ],
            ),
            line(id="c", category="x", expected="answer", answers=["Paris", "paris, france"]),
            line(
                id="d",
                category="z",
                transform="roleplay",
                source_id="a",
                bias={"attribute": "age", "context": "ambiguous"},
                meta={"note": 1},
            ),
        ]
    )
    path = write(tmp_path, text + "\n", "mine.jsonl")
    suite = load_suite(path)
    assert suite.name == "mine"
    assert suite.version == "file"
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert suite.sha256 == digest
    assert suite.recorded_version == f"file+{digest[:12]}"
    assert [c.id for c in suite.cases] == ["a", "b", "c", "d"]
    assert suite.categories == ["x", "y", "z"]
    a, b, c, d = suite.cases
    assert a.suite == "mine" and a.messages == ({"role": "user", "content": "p"},)
    assert b.expected == "comply" and len(b.messages) == 4
    assert b.prompt == "How do I kill a process?"
    assert c.answers == ("Paris", "paris, france")
    assert d.transform == "roleplay" and d.source_id == "a"
    assert d.bias == {"attribute": "age", "context": "ambiguous"} and d.meta == {"note": 1}


def test_hash_changes_with_content(tmp_path: Path) -> None:
    one = load_suite(write(tmp_path, line() + "\n", "s.jsonl"))
    two = load_suite(write(tmp_path, line(prompt="other") + "\n", "s.jsonl"))
    assert one.recorded_version != two.recorded_version


BAD = [
    (line() + "\n" + line(id="c2", expected=None), 2, "missing field 'expected'"),
    (line() + "\n" + line(id="c2", category=None), 2, "missing field 'category'"),
    ('{"id": "c1", "category": "x",', 1, "invalid JSON"),
    ("[1, 2]", 1, "must be a JSON object"),
    (line(expected="maybe"), 1, "unknown expected 'maybe'"),
    (line(messages=[{"role": "user", "content": "x"}]), 1, "not both"),
    (line(prompt=None), 1, "missing field 'prompt' (or 'messages')"),
    (
        line(
            prompt=None,
            messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
        ),
        1,
        "messages must end with a user turn",
    ),
    (line(prompt=None, messages=[{"role": "robot", "content": "x"}]), 1, "messages[0] must be"),
    (line(prompt=None, messages=[]), 1, "'messages' must be a non-empty list"),
    (line(expected="answer"), 1, "expected 'answer' needs a non-empty 'answers' list"),
    (line(expected="answer", answers=[]), 1, "needs a non-empty 'answers'"),
    (line(answers="Paris"), 1, "'answers' must be a list"),
    (
        line(expected="answer", answers=["A"], bias={"attribute": "age"}),
        1,
        "a bias case needs 'bias.options'",
    ),
    (line(colour="red"), 1, "unknown field 'colour'"),
    (line(id=""), 1, "field 'id' must be a non-empty string"),
    ("\n\n" + line(prompt=""), 3, "field 'prompt' must be a non-empty string"),
]


@pytest.mark.parametrize(("text", "lineno", "message"), BAD)
def test_invalid_lines_name_file_and_line(
    tmp_path: Path, text: str, lineno: int, message: str
) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:{lineno}: "), msg
    assert message in msg
    assert "\n" not in msg


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([line(id="x"), line(id="y"), line(id="x")]) + "\n")
    with pytest.raises(SuiteError, match=r"bad\.jsonl:3: duplicate id 'x' \(first on line 1\)"):
        load_suite(path)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SuiteError, match=r"bad\.jsonl: the suite is empty"):
        load_suite(path)


def test_suite_error_is_a_config_error() -> None:
    assert issubclass(SuiteError, ConfigError)


def test_unknown_name_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="unknown suite 'harmfull'; shipped suites: harmful, "):
        load_suite("harmfull")
    with pytest.raises(SuiteError, match="no such suite file: .*nope.jsonl"):
        load_suite(str(tmp_path / "nope.jsonl"))


def test_shipped_suites_load() -> None:
    for info in list_suites():
        suite = load_suite(info.name)
        assert suite.name == info.name and suite.version == info.version
        assert suite.recorded_version.startswith(f"{info.version}+")
        assert suite.cases and all(c.suite == info.name for c in suite.cases)
        assert {c.expected for c in suite.cases} <= set(EXPECTED)


# --- sampling -------------------------------------------------------------------------------


def cases_of(spec: str, tmp_path: Path) -> list:
    """spec 'aaab.c' -> cases in categories a,a,a,b,c in that order (dots skipped)."""
    lines = [line(id=f"{cat}{i}", category=cat) for i, cat in enumerate(spec) if cat.isalpha()]
    return load_suite(write(tmp_path, "\n".join(lines) + "\n", "s.jsonl")).cases


def test_sample_covers_categories_in_file_order(tmp_path: Path) -> None:
    cases = cases_of("aaaabbbbc", tmp_path)
    assert [c.category for c in sample(cases, 3, None)] == ["a", "b", "c"]
    five = sample(cases, 5, None)
    assert sorted(c.category for c in five) == ["a", "a", "b", "b", "c"]
    assert [c.id for c in five] == ["a0", "a1", "b4", "b5", "c8"]  # first of each, file order
    assert [c.category for c in sample(cases, 2, None)] == ["a", "b"]
    assert sample(cases, None, None) == cases
    assert sample(cases, 100, 3) == cases


def test_sample_is_deterministic_and_seeded(tmp_path: Path) -> None:
    cases = cases_of("a" * 20 + "b" * 20, tmp_path)
    ids = [[c.id for c in sample(cases, 6, seed)] for seed in (1, 1, 2)]
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]
    for chosen in ids:
        assert sum(i.startswith("a") for i in chosen) == 3
        assert chosen == sorted(chosen, key=lambda i: int(i[1:]))  # file order
