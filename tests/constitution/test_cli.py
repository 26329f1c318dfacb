"""`charter constitution show | validate | diff`, as a user runs them: output, exit codes,
and invalid files as one line on stderr without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from charter.cli import main
from charter.constitution.cli import constitution_diff
from charter.constitution.loader import default_path, load_constitution, load_default

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "docs" / "examples" / "minimal.toml"
PAIRED = ROOT / "docs" / "examples" / "paired-critiques.toml"
DEFAULT_TEXT = default_path().read_text(encoding="utf-8")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["constitution", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def edited(tmp_path: Path) -> str:
    """The default with a new version, a threshold, one example removed and one added,
    a reworded statement, a new principle and a harmless class removed."""
    text = DEFAULT_TEXT.replace('version = "1.0.0"', 'version = "1.1.0"')
    text = text.replace(
        "threshold = 0.5\nrefusal = \"I won't write malware",
        "threshold = 0.55\nrefusal = \"I won't write malware",
    )
    text = text.replace('    "How do I kill a zombie process in Linux?",\n', "")
    text = text.replace(
        '    "How do I build a pipe bomb?",\n',
        '    "How do I build a pipe bomb?",\n    "How can I build a bomb in my shed?",\n',
    )
    text = text.replace("Do not write malware, and", "Never write malware, and")
    text = text[: text.index('[[harmless]]\nid = "everyday"')]
    text += (
        '[[principles]]\nid = "animals"\ntitle = "Animal welfare"\nstatement = "Do not help '
        'hurt animals."\nkind = "harm"\ncritique = "c"\nrevision = "r"\n'
        'covers = ["how do I hurt a cat"]\nnot_covers = ["how do I pet a cat"]\n'
        'refusal = "I won\'t help hurt animals."\n'
    )
    return write(tmp_path, "edited.toml", text)


# -- show -------------------------------------------------------------------------------------


def test_show_prints_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    c = load_default()
    rc, out, _ = run(capsys, "show")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "Charter default 1.0.0"
    assert f"hash:   {c.short_hash}" in lines and f"path:   {c.path}" in lines
    for p in c.principles:
        row = next(ln for ln in lines if ln.split()[:1] == [p.id])
        assert p.kind in row and p.title in row
        assert (f"{p.threshold:.2f}" in row) == (p.kind == "harm")
    assert "examples: 34 covers, 18 not_covers" in out  # weapons
    assert "Harmless classes (9):" in out and "everyday" in out
    rc, same, _ = run(capsys, "show", "default")
    assert rc == 0 and same == out


def test_show_json_is_the_content_plus_hash(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "show", str(MINIMAL), "--json")
    assert rc == 0
    data = json.loads(out)
    c = load_constitution(MINIMAL)
    assert data.pop("hash") == c.hash
    assert data.pop("path") == str(MINIMAL.resolve())
    assert data == json.loads(json.dumps(c.to_dict()))


def test_show_of_an_invalid_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.toml", DEFAULT_TEXT.replace("threshold = 0.35", "threshold = 3.5"))
    rc, out, err = run(capsys, "show", bad)
    assert rc == 2 and out == ""
    assert err.startswith(f"charter: error: {bad}:") and err.count("\n") == 1
    assert 'principles[3] (id "minors").threshold: must be a number between 0 and 1, got 3.5' in err


# -- validate ---------------------------------------------------------------------------------


def test_validate_prints_ok_lines(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "validate", str(MINIMAL), str(PAIRED), "default")
    assert rc == 0
    # Too few examples to screen well: minimal's one harm principle, paired-critiques' four.
    warned = [line.split(": warning: principle ")[0] for line in err.splitlines()]
    assert warned == [str(MINIMAL)] + [str(PAIRED)] * 4
    assert all("give it at least 8 and 4" in line for line in err.splitlines())
    m, p, d = (load_constitution(MINIMAL), load_constitution(PAIRED), load_default())
    assert out.splitlines() == [
        f"{MINIMAL}: ok (Minimal 0.1, 1 principle, hash {m.short_hash})",
        f"{PAIRED}: ok (Paired critiques 0.1.0, 16 principles, hash {p.short_hash})",
        f"default: ok (Charter default 1.0.0, 11 principles, hash {d.short_hash})",
    ]


def test_validate_reports_an_invalid_file_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.toml", MINIMAL.read_text().replace('kind = "harm"', 'kind = "evil"'))
    rc, out, err = run(capsys, "validate", str(MINIMAL), bad)
    assert rc == 2
    assert out.startswith(f"{MINIMAL}: ok (")  # the good file is still reported
    kind_line = 1 + MINIMAL.read_text().split("\n").index('kind = "harm"')
    assert err.splitlines()[-1] == (
        f'charter: error: {bad}:{kind_line}: principles[0] (id "weapons").kind: must be '
        '"harm" or "uphold", got "evil"'
    )
    missing = str(tmp_path / "missing.toml")
    rc, _, err = run(capsys, "validate", bad, missing)
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("charter: error: 2 of 2 files are invalid: ")
    assert f"{missing}: no such constitution file" in err


def test_validate_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.toml", "schema = 2\n")
    p = subprocess.run(
        [sys.executable, "-m", "charter", "constitution", "validate", bad],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and p.stdout == ""
    assert "Traceback" not in p.stderr
    assert p.stderr.splitlines() == [
        f"charter: error: {bad}:1: schema 2 is not supported (this Charter reads schema 1)"
    ]


# -- diff -------------------------------------------------------------------------------------


def test_diff_of_equal_constitutions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_comments = "\n".join(ln for ln in DEFAULT_TEXT.split("\n") if not ln.strip().startswith("#"))
    copy = write(tmp_path, "copy.toml", no_comments)
    rc, out, _ = run(capsys, "diff", "default", copy)
    h = load_default().short_hash
    assert rc == 0
    assert out.splitlines() == [f"a: default  hash {h}", f"b: {copy}  hash {h}", "no differences"]


def test_diff_names_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = edited(tmp_path)
    rc, out, _ = run(capsys, "diff", str(default_path()), b)
    assert rc == 0
    lines = out.splitlines()
    assert lines[1] == f"b: {b}  hash {load_constitution(b).short_hash}"
    assert 'version: "1.0.0" -> "1.1.0"' in lines
    assert "+ principle animals added" in lines
    assert "- harmless class everyday removed" in lines
    assert "~ principle cyber changed: statement, not_covers, threshold" in lines
    assert "    threshold: 0.5 -> 0.55" in lines
    assert "    not_covers: 0 added, 1 removed" in lines
    assert '      - "How do I kill a zombie process in Linux?"' in lines
    assert "~ principle weapons changed: covers" in lines
    assert "    covers: 1 added, 0 removed" in lines
    assert any(ln.startswith("      + Never write malware") for ln in lines)
    assert "no differences" not in out


def test_diff_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = edited(tmp_path)
    rc, out, _ = run(capsys, "diff", "default", b, "--json")
    assert rc == 0
    d = json.loads(out)
    assert d["equal"] is False
    assert d["a"]["hash"] == load_default().hash and d["b"]["hash"] == load_constitution(b).hash
    assert d["metadata"] == {"version": {"old": "1.0.0", "new": "1.1.0"}}
    assert d["principles"]["added"] == ["animals"] and d["principles"]["removed"] == []
    cyber = d["principles"]["changed"]["cyber"]
    assert cyber["threshold"] == {"old": 0.5, "new": 0.55}
    assert cyber["not_covers"] == {
        "added": [],
        "removed": ["How do I kill a zombie process in Linux?"],
        "reordered": False,
    }
    assert d["principles"]["changed"]["weapons"]["covers"]["added"] == [
        "How can I build a bomb in my shed?"
    ]
    assert d["harmless"]["removed"] == ["everyday"] and d["refusal"] == {}


def test_diff_sees_refusal_template_and_reordering(tmp_path: Path) -> None:
    text = MINIMAL.read_text()
    a = load_constitution(write(tmp_path, "a.toml", text))
    two = text.replace(
        'not_covers = ["How do I make a bath bomb',
        'not_covers = ["Where can I see fireworks?", "How do I make a bath bomb',
    )
    swapped = two.replace(
        '["Where can I see fireworks?", "How do I make a bath bomb for my sister\'s birthday?"]',
        '["How do I make a bath bomb for my sister\'s birthday?", "Where can I see fireworks?"]',
    ).replace("({title}.)", "[{title}]")
    b = load_constitution(write(tmp_path, "b.toml", two))
    c = load_constitution(write(tmp_path, "c.toml", swapped))
    d = constitution_diff(b, c)
    assert d["principles"]["changed"]["weapons"]["not_covers"]["reordered"] is True
    assert d["refusal"]["template"]["new"] == "{refusal} [{title}] {alternative}"
    assert constitution_diff(a, a)["equal"] is True


def test_diff_with_an_invalid_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run(capsys, "diff", "default", str(tmp_path))
    assert rc == 2 and out == ""
    assert err == f"charter: error: {tmp_path}: is a directory, not a constitution file\n"
