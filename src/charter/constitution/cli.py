"""`charter constitution show | validate | diff`: read, check and compare constitution files.

Editing a constitution changes what the assistant refuses, so an operator needs to see what
a file says (`show`), know before deploying that it loads (`validate`, exit 2 and the one-line
error when it does not) and see what an edit changed in meaning rather than in text (`diff`,
by principle id and field, ignoring comments and layout). The diff is a library function,
`constitution_diff`, so tests and other tools can use it without the CLI.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import click

from charter.constitution.loader import (
    ConstitutionError,
    advice,
    load_constitution,
    load_default,
)
from charter.constitution.schema import Constitution

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Fields of a principle or harmless class that hold examples: diffed as sets, not as text.
_LISTS = ("covers", "not_covers", "examples")


def open_constitution(name: str | None) -> Constitution:
    """`name` as the CLI takes it: a TOML file, or None / "default" for the shipped one."""
    if name is None or name == "default":
        return load_default()
    return load_constitution(name)


@click.group("constitution", context_settings=CONTEXT)
def constitution_group() -> None:
    """Read, check and compare constitution files (the principles that govern answers).

    FILE may be a TOML file or 'default' (the constitution shipped with Charter).
    See docs/constitution.md for the format.
    """


# -- show -------------------------------------------------------------------------------------


@constitution_group.command("show", context_settings=CONTEXT)
@click.argument("file", required=False, metavar="[FILE]")
@click.option("--json", "as_json", is_flag=True, help="Print the whole content as JSON.")
def show_cmd(file: str | None, as_json: bool) -> None:
    """Print a constitution: name, version, hash, principles and harmless classes.

    Without FILE, the shipped default."""
    c = open_constitution(file)
    if as_json:
        data = c.to_dict()
        data["hash"] = c.hash
        data["path"] = str(c.path) if c.path else None
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(f"{c.name} {c.version}")
    click.echo(f"hash:   {c.short_hash}")
    click.echo(f"path:   {c.path}")
    click.echo(f"schema: {c.schema}")
    if c.description:
        click.echo(f"\n{c.description}")
    click.echo(f"\nPrinciples ({len(c.principles)}, {len(c.harm_principles)} screened):")
    width = max(len(p.id) for p in c.principles)
    for p in c.principles:
        threshold = f"{p.threshold:.2f}" if p.kind == "harm" else "-"
        click.echo(f"  {p.id:<{width}}  {p.kind:<6}  {threshold:>4}  {p.title}")
        indent = " " * (width + 4)
        click.echo(textwrap.fill(p.statement, 96, initial_indent=indent, subsequent_indent=indent))
        click.echo(
            f"  {'':<{width}}  examples: {len(p.covers)} covers, {len(p.not_covers)} not_covers"
        )
    if c.harmless:
        click.echo(f"\nHarmless classes ({len(c.harmless)}):")
        width = max(len(h.id) for h in c.harmless)
        for h in c.harmless:
            click.echo(f"  {h.id:<{width}}  {h.title} ({len(h.examples)} examples)")
    click.echo(f"\nRefusal template: {c.refusal_style.template}")


# -- validate ---------------------------------------------------------------------------------


@constitution_group.command("validate", context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def validate_cmd(files: tuple[str, ...]) -> None:
    """Check that each FILE loads; exit 2 with the first problem when one does not.

    Every file is checked; valid ones print `FILE: ok (...)`."""
    failed: list[ConstitutionError] = []
    for name in files:
        try:
            c = open_constitution(name)
        except ConstitutionError as exc:
            failed.append(exc)
            continue
        click.echo(
            f"{name}: ok ({c.name} {c.version}, {_plural(len(c.principles), 'principle')}, "
            f"hash {c.short_hash})"
        )
        for line in advice(c):
            click.echo(f"{name}: warning: {line}", err=True)
    if len(failed) == 1:
        raise failed[0]
    if failed:
        raise ConstitutionError(
            f"{len(failed)} of {len(files)} files are invalid: "
            + "; ".join(exc.message for exc in failed),
            problems=[p for exc in failed for p in exc.problems],
        )


# -- diff -------------------------------------------------------------------------------------


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _change(old: Any, new: Any) -> dict[str, Any]:
    return {"old": old, "new": new}


def _fields_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Changed fields of two principles (or harmless classes) with the same id."""
    out: dict[str, Any] = {}
    for key in old:
        if key == "id" or old[key] == new.get(key):
            continue
        if key in _LISTS:
            before, after = set(old[key]), set(new[key])
            added = [x for x in new[key] if x not in before]
            removed = [x for x in old[key] if x not in after]
            out[key] = {
                "added": added,
                "removed": removed,
                # Same examples in another order: no example changed, but the hash does.
                "reordered": not added and not removed,
            }
        else:
            out[key] = _change(old[key], new[key])
    return out


def _items_diff(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, Any]:
    """Principles (or harmless classes) added, removed and changed, matched by id."""
    a = {x["id"]: x for x in old}
    b = {x["id"]: x for x in new}
    changed = {i: _fields_diff(a[i], b[i]) for i in a if i in b and a[i] != b[i]}
    common_a = [i for i in a if i in b]
    common_b = [i for i in b if i in a]
    return {
        "added": [i for i in b if i not in a],
        "removed": [i for i in a if i not in b],
        "changed": changed,
        "order_changed": common_a != common_b,
    }


def constitution_diff(a: Constitution, b: Constitution) -> dict[str, Any]:
    """What changed in meaning from `a` to `b`: metadata, principles and harmless classes by
    id (fields, thresholds, examples added and removed), and the refusal style."""
    da, db = a.to_dict(), b.to_dict()
    meta = {
        k: _change(da[k], db[k])
        for k in ("name", "version", "description", "schema")
        if da[k] != db[k]
    }
    refusal = {
        k: _change(da["refusal_style"][k], db["refusal_style"][k])
        for k in da["refusal_style"]
        if da["refusal_style"][k] != db["refusal_style"][k]
    }
    return {
        "a": {"path": str(a.path) if a.path else None, "hash": a.hash},
        "b": {"path": str(b.path) if b.path else None, "hash": b.hash},
        "equal": a.hash == b.hash,
        "metadata": meta,
        "principles": _items_diff(da["principles"], db["principles"]),
        "harmless": _items_diff(da["harmless"], db["harmless"]),
        "refusal": refusal,
    }


def _short(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, float) else f"{value:g}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_diff(d: dict[str, Any], name_a: str, name_b: str) -> list[str]:
    """The diff as lines a person reads top to bottom."""
    lines = [f"a: {name_a}  hash {d['a']['hash'][:12]}", f"b: {name_b}  hash {d['b']['hash'][:12]}"]
    if d["equal"]:
        return [*lines, "no differences"]
    for key, ch in d["metadata"].items():
        lines.append(f"{key}: {_short(ch['old'])} -> {_short(ch['new'])}")
    for section, noun in (("principles", "principle"), ("harmless", "harmless class")):
        s = d[section]
        for i in s["added"]:
            lines.append(f"+ {noun} {i} added")
        for i in s["removed"]:
            lines.append(f"- {noun} {i} removed")
        for i, fields in s["changed"].items():
            lines.append(f"~ {noun} {i} changed: {', '.join(fields)}")
            for key, ch in fields.items():
                if key in _LISTS:
                    if ch["reordered"]:
                        lines.append(f"    {key}: same examples, new order")
                        continue
                    lines.append(
                        f"    {key}: {len(ch['added'])} added, {len(ch['removed'])} removed"
                    )
                    lines += [f"      + {_short(x)}" for x in ch["added"]]
                    lines += [f"      - {_short(x)}" for x in ch["removed"]]
                elif key == "threshold":
                    lines.append(f"    threshold: {ch['old']:g} -> {ch['new']:g}")
                else:  # prose: both versions in full, one per line
                    lines += [f"    {key}:", f"      - {ch['old']}", f"      + {ch['new']}"]
        if s["order_changed"]:
            lines.append(f"  {section}: order changed")
    for key, ch in d["refusal"].items():
        lines.append(f"refusal {key} changed: {_short(ch['old'])} -> {_short(ch['new'])}")
    return lines


@constitution_group.command("diff", context_settings=CONTEXT)
@click.argument("file_a", metavar="A")
@click.argument("file_b", metavar="B")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
def diff_cmd(file_a: str, file_b: str, as_json: bool) -> None:
    """What changed in meaning from constitution A to B (comments and layout are ignored).

    Exits 0 whether or not they differ; 2 when a file is invalid."""
    a, b = open_constitution(file_a), open_constitution(file_b)
    d = constitution_diff(a, b)
    if as_json:
        click.echo(json.dumps(d, indent=2, ensure_ascii=False))
        return
    for line in format_diff(d, file_a, file_b):
        click.echo(line)
