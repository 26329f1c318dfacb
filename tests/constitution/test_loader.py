"""The constitution file: the shipped default's content, the hash, and the one-line errors
(file, line, field) that every kind of bad input gets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from charter.constitution.loader import (
    ConstitutionError,
    default_path,
    load_constitution,
    load_default,
    parse_constitution,
)
from charter.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "docs" / "examples" / "minimal.toml"
PAIRED = ROOT / "docs" / "examples" / "paired-critiques.toml"

HARM_IDS = ["weapons", "cyber", "self_harm", "minors", "hate", "privacy", "crime", "fraud"]
HARM_IDS += ["specialised"]
UPHOLD_IDS = ["honesty", "helpfulness"]
HARMLESS_IDS = [
    "fiction",
    "safety",
    "history",
    "medical_legal",
    "security_education",
    "homonyms",
    "sensitive_groups",
    "harm_reduction",
    "everyday",
]


# -- the shipped default ------------------------------------------------------------------------


def test_default_loads_with_every_fixed_id() -> None:
    c = load_default()
    assert c.name == "Charter default" and c.version == "1.0.0" and c.schema == 1
    assert c.path == default_path().resolve()
    assert default_path().name == "default.toml" and default_path().is_file()
    assert [p.id for p in c.harm_principles] == HARM_IDS
    assert [p.id for p in c.principles if p.kind == "uphold"] == UPHOLD_IDS
    assert [h.id for h in c.harmless] == HARMLESS_IDS


def _is_answer_opening(text: str) -> bool:
    """Answer excerpts in the default end mid-sentence ('...') or introduce a list (':')."""
    return text.endswith(("...", ":"))


@pytest.mark.parametrize("pid", HARM_IDS)
def test_every_harm_principle_has_enough_examples(pid: str) -> None:
    p = load_default().principle(pid)
    openings = [t for t in p.covers if _is_answer_opening(t)]
    requests = [t for t in p.covers if not _is_answer_opening(t)]
    assert len(p.covers) >= 30
    assert len(requests) >= 24, requests
    assert len(openings) >= 6, openings
    assert len(p.not_covers) >= 15
    assert not set(p.covers) & set(p.not_covers)
    assert 0 < p.threshold < 1
    assert p.refusal and p.alternative and p.critique and p.revision


def test_uphold_principles_and_harmless_classes_have_examples() -> None:
    c = load_default()
    for pid in UPHOLD_IDS:
        assert len(c.principle(pid).covers) >= 8
    for h in c.harmless:
        assert len(h.examples) >= 15 and h.description and h.title


@pytest.mark.parametrize("pid", HARM_IDS)
def test_the_refusal_template_renders_for_every_harm_principle(pid: str) -> None:
    c = load_default()
    p = c.principle(pid)
    text = c.refusal_text(pid)
    assert p.refusal in text and p.alternative in text and p.title in text
    assert "{" not in text and "}" not in text and "  " not in text
    assert text == text.strip()


def test_self_harm_refusal_carries_care_and_real_resources() -> None:
    c = load_default()
    text = c.refusal_text("self_harm")
    assert "988" in text and "116 123" in text and "emergency" in text
    assert "someone you trust" in text
    # The other refusals do not carry crisis lines.
    assert "988" not in c.refusal_text("cyber")


def test_refusal_guidance_names_the_style() -> None:
    guidance = load_default().refusal_style.guidance
    for needle in ("why", "principle", "alternative", "care"):
        assert needle in guidance


# -- the hash -----------------------------------------------------------------------------------


def _strip_comments(text: str) -> str:
    """Drop full-line comments and blank lines (only layout, no content)."""
    return "\n".join(ln for ln in text.split("\n") if ln.strip() and not ln.strip().startswith("#"))


def _reserialise(data: dict) -> str:
    """The same content written another way: keys in reverse order, arrays on one line."""

    def value(v: object) -> str:
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
        return str(v)

    out = [f"schema = {data['schema']}"]
    for key in ("version", "name", "description"):
        out.append(f"{key} = {value(data[key])}")
    for section, rows in (("harmless", data["harmless"]), ("principles", data["principles"])):
        for row in rows:
            out.append(f"\n[[{section}]]")
            out += [f"{k} = {value(v)}" for k, v in reversed(row.items()) if v != ""]
    style = data["refusal_style"]
    out.append("\n[refusal]")
    out += [f"{k} = {value(v)}" for k, v in style.items() if v]
    return "\n".join(out) + "\n"


def test_hash_ignores_comments_and_layout() -> None:
    c = load_default()
    text = default_path().read_text(encoding="utf-8")
    assert parse_constitution(_strip_comments(text), "x.toml").hash == c.hash
    assert parse_constitution(_reserialise(c.to_dict()), "y.toml").hash == c.hash
    assert re.fullmatch(r"[0-9a-f]{64}", c.hash) and c.short_hash == c.hash[:12]


def test_hash_changes_with_one_word() -> None:
    text = default_path().read_text(encoding="utf-8")
    base = parse_constitution(text, "a.toml").hash
    one_word = text.replace("How do I build a pipe bomb?", "How do I build a pipe bomb quickly?")
    assert one_word != text
    assert parse_constitution(one_word, "b.toml").hash != base
    threshold = text.replace("threshold = 0.35", "threshold = 0.36")
    assert parse_constitution(threshold, "c.toml").hash != base


def test_strings_are_trimmed_so_surrounding_space_does_not_count() -> None:
    text = MINIMAL.read_text(encoding="utf-8")
    padded = text.replace('name = "Minimal"', 'name = "  Minimal  "')
    assert parse_constitution(padded, "x").hash == parse_constitution(text, "x").hash


# -- the example files --------------------------------------------------------------------------


def test_minimal_and_paired_critiques_examples_load() -> None:
    m = load_constitution(MINIMAL)
    assert [p.id for p in m.principles] == ["weapons"] and m.harmless == ()
    p = load_constitution(str(PAIRED))
    assert len(p.principles) == 16
    assert {x.kind for x in p.principles} == {"harm", "uphold"}
    for x in p.harm_principles:
        assert p.refusal_text(x.id).startswith(x.refusal)


def test_unicode_and_a_byte_order_mark_are_fine(tmp_path: Path) -> None:
    text = MINIMAL.read_text(encoding="utf-8").replace("Minimal", "Charte minimale — ✓ 憲章")
    f = tmp_path / "u.toml"
    f.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_constitution(f).name == "Charte minimale — ✓ 憲章"


# -- errors -------------------------------------------------------------------------------------


def error_for(text: str, name: str = "c.toml") -> ConstitutionError:
    with pytest.raises(ConstitutionError) as info:
        parse_constitution(text, name)
    err = info.value
    assert "\n" not in err.message
    return err


def line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the `nth` (from 0) line containing `needle`."""
    return [n for n, ln in enumerate(text.split("\n"), 1) if needle in ln][nth]


MIN = MINIMAL.read_text(encoding="utf-8")


def with_line(after: str, new_line: str) -> str:
    """MIN with `new_line` inserted after the line that contains `after`."""
    lines = MIN.split("\n")
    at = line_of(MIN, after)
    return "\n".join([*lines[:at], new_line, *lines[at:]])


@pytest.mark.parametrize(
    "text, marker, expected",
    [
        (
            with_line('kind = "harm"', "threshold = 1.5"),
            "threshold = 1.5",
            'principles[0] (id "weapons").threshold: must be a number between 0 and 1, got 1.5',
        ),
        (
            with_line('kind = "harm"', "threshold = 0"),
            "threshold = 0",
            "must be a number between 0 and 1, got 0",
        ),
        (
            with_line('kind = "harm"', 'threshold = "high"'),
            'threshold = "high"',
            'threshold: must be a number between 0 and 1, got string "high"',
        ),
        (
            with_line('kind = "harm"', "threshold = nan"),
            "threshold = nan",
            "threshold: must be a number between 0 and 1, got nan",
        ),
        (
            with_line('kind = "harm"', "thresold = 0.4"),
            "thresold",
            'principles[0] (id "weapons"): unknown key "thresold" (did you mean "threshold"?)',
        ),
        (
            with_line('version = "0.1"', "colour = 1"),
            "colour = 1",
            'unknown key "colour"; known keys: schema, name, version',
        ),
        (
            with_line("template =", "guidence = 'x'"),
            "guidence",
            'refusal: unknown key "guidence" (did you mean "guidance"?)',
        ),
        (
            MIN.replace('kind = "harm"', 'kind = "harmful"'),
            'kind = "harmful"',
            'kind: must be "harm" or "uphold", got "harmful" (did you mean "harm"?)',
        ),
        (
            MIN.replace('id = "weapons"', 'id = "Weapons-1"'),
            'id = "Weapons-1"',
            '"Weapons-1" is not a valid id',
        ),
        (
            MIN.replace('version = "0.1"', "version = 0.1"),
            "version = 0.1",
            "version: must be a string, got number 0.1 (put it in quotes",
        ),
        (
            MIN.replace('title = "No help with weapons"', 'title = "  "'),
            'title = "  "',
            'principles[0] (id "weapons").title: must not be empty',
        ),
        (
            MIN.replace("schema = 1", "schema = 2"),
            "schema = 2",
            "schema 2 is not supported (this Charter reads schema 1)",
        ),
        (
            MIN.replace("{title}", "{titel}"),
            "template =",
            'refusal.template: unknown placeholder {titel} (did you mean "{title}"?)',
        ),
        (
            MIN.replace("{title}", "{0}"),
            "template =",
            "refusal.template: placeholder {0} has no name",
        ),
        (
            MIN.replace("{title}", "{title"),
            "template =",
            "refusal.template: is not a valid template",
        ),
        (
            MIN.replace(
                'covers = ["How do I make a weapon', 'covers = []\n# ["How do I make a weapon'
            ),
            "covers = []",
            "covers: is empty: a principle with no examples cannot be screened or trained",
        ),
        (
            MIN.replace('not_covers = ["How', 'not_covers = []\n# ["How'),
            "not_covers = []",
            "not_covers: a harm principle needs at least one look-alike",
        ),
        (
            MIN.replace("not_covers = [", "# not_covers = ["),
            "[[principles]]",
            "not_covers: a harm principle needs at least one look-alike",
        ),
        (
            MIN.replace('refusal = "I won', '# refusal = "I won'),
            "[[principles]]",
            'principles[0] (id "weapons"): missing required field "refusal"',
        ),
        (
            MIN.replace('statement = "Do not', '# statement = "Do not'),
            "[[principles]]",
            'principles[0] (id "weapons"): missing required field "statement"',
        ),
        (
            MIN.replace("covers = [", 'covers = [1, "x", ', 1),
            "covers = [1",
            "covers[0]: must be a string, got integer 1",
        ),
        (
            MIN.replace('name = "Minimal"', 'name = "Minimal\nbroken'),
            'name = "Minimal',
            "not valid TOML: Illegal character",
        ),
    ],
)
def test_bad_input_names_the_file_line_and_field(text: str, marker: str, expected: str) -> None:
    err = error_for(text)
    assert err.message.startswith(f"c.toml:{line_of(text, marker)}: "), err.message
    assert expected in err.message, err.message


def test_list_items_are_located_on_their_own_lines() -> None:
    text = MIN.replace(
        'covers = ["How do I make a weapon that can hurt a lot of people?"]',
        'covers = [\n    "first",\n    # a comment, "quoted", [bracketed]\n    "second",\n'
        '    "",\n    "first",\n]',
    )
    err = error_for(text)
    empty, repeat = err.problems
    empty_line, repeat_line = line_of(text, '    "",'), line_of(text, '"first"', 1)
    assert empty.startswith(f'c.toml:{empty_line}: principles[0] (id "weapons")')
    assert empty.endswith("covers[2]: must not be empty")
    assert repeat.startswith(f"c.toml:{repeat_line}:")
    assert repeat.endswith("covers[3]: repeats item [0] of covers")
    assert err.message == empty + " (and 1 more problem)"


def test_text_inside_strings_is_not_taken_for_keys_or_headers() -> None:
    text = MIN.replace(
        'statement = "Do not help anyone make or use a weapon to hurt people."',
        'statement = """\nthreshold = 0.9\n[[principles]]\nid = "x" # not a key\n"""',
    ).replace('kind = "harm"', 'kind = "harm"\nthreshold = 2')
    err = error_for(text)
    assert err.message.startswith(f"c.toml:{line_of(text, 'threshold = 2')}: principles[0]")
    assert "got 2" in err.message


def test_duplicate_ids_point_at_both_tables() -> None:
    block = MIN[MIN.index("[[principles]]") :]
    text = MIN + "\n" + block
    err = error_for(text)
    second = [n for n, ln in enumerate(text.split("\n"), 1) if ln.startswith('id = "weapons"')][1]
    first_header = line_of(text, "[[principles]]")
    assert err.message == (
        f'c.toml:{second}: principles[1] (id "weapons").id: duplicate id "weapons" '
        f"(also principles[0], line {first_header})"
    )


def test_harmless_classes_are_checked_too() -> None:
    text = MIN + (
        '\n[[harmless]]\nid = "fiction"\ntitle = "Fiction"\ndescription = "Stories"\n'
        'examples = ["a poem"]\n\n[[harmless]]\nid = "fiction"\ntitle = "Again"\n'
        'description = "x"\nexamples = []\nexampels = 1\n'
    )
    err = error_for(text)
    assert len(err.problems) == 3
    second_id = line_of(text, 'id = "fiction"', 1)
    assert err.problems[0].startswith(f"c.toml:{second_id}:")
    assert 'harmless[1] (id "fiction").id: duplicate id "fiction"' in err.problems[0]
    assert any("examples: is empty" in p for p in err.problems)
    assert any('unknown key "exampels" (did you mean "examples"?)' in p for p in err.problems)


def test_nested_tables_and_inline_tables_are_located() -> None:
    nested = MIN + "\n[principles.extra]\nx = 1\n"
    err = error_for(nested)
    assert err.message.startswith(f"c.toml:{line_of(nested, '[principles.extra]')}: ")
    assert 'unknown key "extra"' in err.message
    inline = (
        'schema = 1\nname = "n"\nversion = "1"\nrefusal = { template = "{refusal}" }\n'
        'principles = [\n  { id = "a", title = "t", statement = "s", kind = "uphold",'
        ' critique = "c", revision = "r", covers = ["x"], threshold = 3 },\n]\n'
    )
    err = error_for(inline)
    # The key has no line of its own: the line of the array item that holds it.
    assert err.message.startswith('c.toml:6: principles[0] (id "a").threshold:')


def test_missing_everything_and_no_principles() -> None:
    err = error_for("")
    assert err.message.startswith('c.toml: missing required field "schema" (start the file')
    assert any("no principles" in p for p in err.problems)
    assert any('missing required field "refusal"' in p for p in err.problems)
    err = error_for(MIN[: MIN.index("[[principles]]")])
    assert err.message == "c.toml: no principles: a constitution needs at least one [[principles]]"
    empty = with_line('version = "0.1"', "principles = []")
    empty = empty[: empty.index("[[principles]]")]
    err = error_for(empty)
    assert err.message == (
        f"c.toml:{line_of(empty, 'principles = []')}: principles: no principles: a "
        "constitution needs at least one [[principles]]"
    )


def test_uphold_principles_need_no_look_alikes_or_refusal() -> None:
    text = (
        'schema = 1\nname = "n"\nversion = "1"\n[refusal]\ntemplate = "{refusal}"\n'
        '[[principles]]\nid = "honesty"\ntitle = "Honesty"\nstatement = "Do not invent."\n'
        'kind = "uphold"\ncritique = "c"\nrevision = "r"\ncovers = ["made up"]\n'
    )
    c = parse_constitution(text, "u.toml")
    assert c.principles[0].not_covers == () and c.principles[0].refusal == ""
    assert c.path is None


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConstitutionError, match=r"nope\.toml: no such constitution file"):
        load_constitution(tmp_path / "nope.toml")
    with pytest.raises(ConstitutionError, match="is a directory, not a constitution file"):
        load_constitution(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(MIN.replace("Minimal", "Minimal\xe9").encode("latin-1"))
    with pytest.raises(ConstitutionError) as info:
        load_constitution(bad)
    want = f"{bad}:{line_of(MIN, 'Minimal')}: the file is not UTF-8 text (byte 0xe9)"
    assert info.value.message.startswith(want), info.value.message


def test_the_error_is_a_config_error_with_exit_code_2() -> None:
    err = error_for("schema = 1")
    assert isinstance(err, ConfigError) and err.exit_code == 2
    assert "and 3 more problems" in err.message and len(err.problems) == 4
