"""Read a constitution file (TOML, `schema = 1`) and validate all of it before anything uses it.

A constitution is edited by people, so every mistake must come back as one line that says
where it is and what is wrong: `FILE:LINE: principles[3] (id "cyber").threshold: must be a
number between 0 and 1, got 1.5`. tomllib gives values without positions, so `_Locator`
re-reads the text to find the line of each table, key and list item; TOML syntax errors keep
tomllib's own line and column. All problems are collected; the error names the first (in
file order) and counts the rest. The format is documented in docs/constitution.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import string
import tomllib
from pathlib import Path
from typing import Any

from charter.constitution.schema import (
    SCHEMA_VERSION,
    Constitution,
    HarmlessClass,
    Principle,
    RefusalStyle,
)
from charter.errors import ConfigError

#: The names `[refusal] template` may use (they are the arguments of `refusal_text`).
PLACEHOLDERS = ("title", "statement", "refusal", "alternative", "resources", "principle_id")

_ID = re.compile(r"[a-z][a-z0-9_]*\Z")
_DATA = Path(__file__).parent / "data"

Path_ = tuple[str | int, ...]


class ConstitutionError(ConfigError):
    """A constitution file is missing, unreadable, not TOML, or breaks the schema.

    `message` is the first problem as `FILE:LINE: FIELD: what is wrong` (plus how many more
    there are); `problems` lists every one, in file order."""

    def __init__(self, message: str, *, problems: list[str] | None = None):
        super().__init__(message, param="constitution")
        self.problems = problems or [message]


def default_path() -> Path:
    """The constitution shipped with Charter (src/charter/constitution/data/default.toml)."""
    return _DATA / "default.toml"


def load_default() -> Constitution:
    """The shipped constitution, validated like any user's file."""
    return load_constitution(default_path())


def load_constitution(path: str | Path) -> Constitution:
    """Read and validate the constitution at `path`; errors name the file as given."""
    p = Path(path).expanduser()
    shown = str(path)
    if p.is_dir():
        raise ConstitutionError(f"{shown}: is a directory, not a constitution file")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConstitutionError(f"{shown}: no such constitution file") from None
    except OSError as exc:
        raise ConstitutionError(f"{shown}: cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is harmless; drop it
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConstitutionError(
            f"{shown}:{line}: the file is not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
            "save it as UTF-8"
        ) from None
    return dataclasses.replace(parse_constitution(text, shown), path=p.resolve())


def parse_constitution(text: str, source: str) -> Constitution:
    """Validate TOML `text` as a constitution; `source` names it in errors (a file name).

    The result has `path=None`; `load_constitution` fills it in."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"at line (\d+)", msg)
        where = f"{source}:{m.group(1)}" if m else source
        raise ConstitutionError(f"{where}: not valid TOML: {msg}") from None
    return _Reader(source, _Locator(text)).read(data)


# -- where things are in the text -------------------------------------------------------------

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY_PART = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"\s*(\[\[|\[)\s*({_DOTTED})\s*\]\]?")
_KEYLINE = re.compile(rf"\s*({_DOTTED})\s*=")


def _key_parts(dotted: str) -> list[str]:
    parts = re.findall(_KEY_PART, dotted)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


class _Locator:
    """Line numbers (1-based) of tables, keys and list items, by path: ("principles", 3,
    "covers", 5) is the sixth item of `covers` in the fourth `[[principles]]` table.

    A small scanner over valid TOML (tomllib has already accepted the text): it follows
    strings, multi-line strings, comments and bracket depth, so text inside values is never
    taken for a header or a key."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path_, int] = {}
        counts: dict[tuple[str, ...], int] = {}
        table: Path_ = ()
        stack: list[str] = []  # the open [ and { of the value being read
        open_string: str | None = None  # the delimiter of an unfinished multi-line string
        array_key: Path_ | None = None  # the key whose array value is open
        item = -1
        expect_item = False
        for lineno, line in enumerate(text.split("\n"), start=1):
            i = 0
            if open_string is None and not stack:
                m = _HEADER.match(line)
                if m:
                    names = _key_parts(m.group(2))
                    resolved: list[str | int] = []
                    for n in range(1, len(names) + 1):
                        resolved.append(names[n - 1])
                        prefix = tuple(names[:n])
                        if n == len(names) and m.group(1) == "[[":
                            counts[prefix] = counts.get(prefix, -1) + 1
                            self.lines.setdefault(tuple(resolved), lineno)
                        if prefix in counts:
                            resolved.append(counts[prefix])
                    table = tuple(resolved)
                    self.lines.setdefault(table, lineno)
                    i = m.end()
                else:
                    k = _KEYLINE.match(line)
                    if k:
                        key = table + tuple(_key_parts(k.group(1)))
                        self.lines.setdefault(key, lineno)
                        array_key, item, expect_item = key, -1, False
                        i = k.end()
            while i < len(line):
                if open_string is not None:
                    end = line.find(open_string, i)
                    if end < 0:
                        break
                    if open_string == '"""' and _escaped(line, end):
                        i = end + 1
                        continue
                    i = end + 3
                    while i < len(line) and line[i] == open_string[0]:
                        i += 1  # up to two quotes may end the string's content
                    open_string = None
                    continue
                c = line[i]
                if c in " \t\r":
                    i += 1
                    continue
                if c == "#":
                    break
                if len(stack) == 1 and expect_item and c not in ",]" and array_key is not None:
                    item += 1
                    self.lines.setdefault(array_key + (item,), lineno)
                    expect_item = False
                if line.startswith('"""', i) or line.startswith("'''", i):
                    open_string = line[i : i + 3]
                    i += 3
                elif c == '"':
                    i += 1
                    while i < len(line) and line[i] != '"':
                        i += 2 if line[i] == "\\" else 1
                    i += 1
                elif c == "'":
                    end = line.find("'", i + 1)
                    i = len(line) if end < 0 else end + 1
                elif c in "[{":
                    stack.append(c)
                    expect_item = stack == ["["]
                    i += 1
                elif c in "]}":
                    stack.pop()
                    i += 1
                elif c == "," and stack == ["["]:
                    expect_item = True
                    i += 1
                else:
                    i += 1

    def line(self, path: Path_) -> int | None:
        """The line of `path`, else of the nearest enclosing thing that has one."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


def _escaped(line: str, at: int) -> bool:
    """Whether the character at `at` follows an odd number of backslashes."""
    n = 0
    while at - n - 1 >= 0 and line[at - n - 1] == "\\":
        n += 1
    return n % 2 == 1


# -- validation -------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    """A value as a person would name it in an error: `string "abc"`, `integer 3`."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        short = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{short}"'
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__  # dates and times


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f' (did you mean "{close[0]}"?)'
    return f"; known keys: {', '.join(known)}"


# Field kinds: "str" a non-empty string, "strs" an array of non-empty strings, "num" a number.
_TOP = {
    "schema": "int",
    "name": "str",
    "version": "str",
    "description": "str",
    "refusal": "table",
    "principles": "tables",
    "harmless": "tables",
}
_TOP_REQUIRED = ("schema", "name", "version", "refusal", "principles")
_REFUSAL = {"template": "str", "guidance": "str"}
_PRINCIPLE = {
    "id": "str",
    "title": "str",
    "statement": "str",
    "kind": "str",
    "critique": "str",
    "revision": "str",
    "covers": "strs",
    "not_covers": "strs",
    "threshold": "num",
    "refusal": "str",
    "alternative": "str",
    "resources": "str",
}
_PRINCIPLE_REQUIRED = ("id", "title", "statement", "kind", "critique", "revision", "covers")
_HARMLESS = {"id": "str", "title": "str", "description": "str", "examples": "strs"}

assert set(_PRINCIPLE) == {f.name for f in dataclasses.fields(Principle)}, "schema drifted"


class _Reader:
    """Turns parsed TOML into a Constitution, collecting every problem with its line."""

    def __init__(self, source: str, locator: _Locator) -> None:
        self.source = source
        self.loc = locator
        self.problems: list[tuple[int, int, str]] = []
        self.ids: dict[Path_, str] = {}

    # -- reporting ------------------------------------------------------------------------------
    def label(self, path: Path_) -> str:
        out = ""
        for n, part in enumerate(path):
            if isinstance(part, int):
                out += f"[{part}]"
                if path[: n + 1] in self.ids:
                    out += f' (id "{self.ids[path[: n + 1]]}")'
            else:
                out += ("." if out else "") + part
        return out

    def fail(self, path: Path_, message: str, *, at: Path_ | None = None) -> None:
        line = self.loc.line(at if at is not None else path)
        where = f"{self.source}:{line}" if line else self.source
        label = self.label(path)
        text = f"{where}: {label}: {message}" if label else f"{where}: {message}"
        self.problems.append((line or 0, len(self.problems), text))

    def raise_if_failed(self) -> None:
        if not self.problems:
            return
        ordered = [text for _, _, text in sorted(self.problems)]
        first, more = ordered[0], len(ordered) - 1
        if more:
            first += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConstitutionError(first, problems=ordered)

    # -- generic fields -------------------------------------------------------------------------
    def fields(
        self, data: dict[str, Any], path: Path_, spec: dict[str, str], required: tuple[str, ...]
    ) -> dict[str, Any]:
        """The valid known fields of one table; unknown keys, wrong types, empty strings and
        missing required fields are reported."""
        out: dict[str, Any] = {}
        known = list(spec)
        for key, value in data.items():
            if key not in spec:
                self.fail(path, f'unknown key "{key}"{_suggest(key, known)}', at=path + (key,))
                continue
            checked = self.value(path + (key,), spec[key], value)
            if checked is not None:
                out[key] = checked
        for key in required:
            if key not in data:
                self.fail(path, f'missing required field "{key}"')
        return out

    def value(self, path: Path_, kind: str, value: Any) -> Any:
        """`value` checked against `kind`; None (and a problem reported) when it is wrong."""
        if kind == "str":
            if not isinstance(value, str):
                hint = ' (put it in quotes: "...")' if isinstance(value, int | float) else ""
                self.fail(path, f"must be a string, got {_describe(value)}{hint}")
                return None
            if not value.strip():
                self.fail(path, "must not be empty (leave the key out if it has no value)")
                return None
            return value.strip()
        if kind == "strs":
            if not isinstance(value, list):
                self.fail(path, f"must be an array of strings, got {_describe(value)}")
                return None
            items: list[str] = []
            seen: dict[str, int] = {}
            ok = True
            for n, item in enumerate(value):
                if not isinstance(item, str):
                    self.fail(path + (n,), f"must be a string, got {_describe(item)}")
                    ok = False
                elif not item.strip():
                    self.fail(path + (n,), "must not be empty")
                    ok = False
                elif item.strip() in seen:
                    first = seen[item.strip()]
                    self.fail(path + (n,), f"repeats item [{first}] of {path[-1]}")
                    ok = False
                else:
                    seen[item.strip()] = n
                    items.append(item.strip())
            return tuple(items) if ok else None
        if kind == "num":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(path, f"must be a number between 0 and 1, got {_describe(value)}")
                return None
            return float(value)
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, f"must be an integer, got {_describe(value)}")
                return None
            return value
        if kind == "table":
            if not isinstance(value, dict):
                self.fail(path, f"must be a table ([{path[-1]}]), got {_describe(value)}")
                return None
            return value
        if kind == "tables":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                self.fail(
                    path, f"must be an array of tables ([[{path[-1]}]]), got {_describe(value)}"
                )
                return None
            return value
        raise AssertionError(kind)

    # -- the file -------------------------------------------------------------------------------
    def read(self, data: dict[str, Any]) -> Constitution:
        schema = data.get("schema")
        if "schema" in data and schema != SCHEMA_VERSION:
            if isinstance(schema, int) and not isinstance(schema, bool):
                self.fail(
                    (),
                    f"schema {schema} is not supported (this Charter reads schema "
                    f"{SCHEMA_VERSION})",
                    at=("schema",),
                )
            else:
                self.fail(
                    ("schema",), f"must be the integer {SCHEMA_VERSION}, got {_describe(schema)}"
                )
            self.raise_if_failed()
        top = self.fields(data, (), _TOP, ())
        for key in _TOP_REQUIRED:
            if key not in data:
                hint = {
                    "schema": f" (start the file with `schema = {SCHEMA_VERSION}`)",
                    "principles": "",
                }.get(key, "")
                if key == "principles":
                    self.fail((), "no principles: a constitution needs at least one [[principles]]")
                else:
                    self.fail((), f'missing required field "{key}"{hint}')
        refusal = self.refusal(top.get("refusal"))
        principles = self.principles(top.get("principles"))
        harmless = self.harmless(top.get("harmless", []))
        self.raise_if_failed()
        assert refusal is not None
        return Constitution(
            name=top["name"],
            version=top["version"],
            description=top.get("description", ""),
            principles=principles,
            harmless=harmless,
            refusal_style=refusal,
            schema=SCHEMA_VERSION,
        )

    def refusal(self, data: dict[str, Any] | None) -> RefusalStyle | None:
        if data is None:
            return None
        path: Path_ = ("refusal",)
        f = self.fields(data, path, _REFUSAL, ("template",))
        template = f.get("template")
        if template is None:
            return None
        if not self.template_ok(path + ("template",), template):
            return None
        return RefusalStyle(template=template, guidance=f.get("guidance", ""))

    def template_ok(self, path: Path_, template: str) -> bool:
        """Every placeholder is one of PLACEHOLDERS, and the template formats."""
        known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            self.fail(
                path, f"is not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
            )
            return False
        for _, field, _, _ in parsed:
            if field is None:
                continue
            base = re.split(r"[.\[]", field, maxsplit=1)[0]
            if base == "" or base.isdigit():
                self.fail(path, f"placeholder {{{field}}} has no name; use one of {known}")
                return False
            if base not in PLACEHOLDERS:
                close = difflib.get_close_matches(base, PLACEHOLDERS, n=1)
                hint = f' (did you mean "{{{close[0]}}}"?)' if close else ""
                self.fail(path, f"unknown placeholder {{{base}}}{hint}; known: {known}")
                return False
        try:
            template.format(**{p: "text" for p in PLACEHOLDERS})
        except (ValueError, AttributeError, IndexError, KeyError, TypeError) as exc:
            self.fail(path, f"does not format: {exc}")
            return False
        return True

    def principles(self, items: list[dict[str, Any]] | None) -> tuple[Principle, ...]:
        if items is None:
            return ()
        if not items:
            self.fail(
                ("principles",), "no principles: a constitution needs at least one [[principles]]"
            )
            return ()
        seen: dict[str, int] = {}
        out: list[Principle] = []
        for n, data in enumerate(items):
            path: Path_ = ("principles", n)
            pid = data.get("id")
            if isinstance(pid, str) and pid.strip():
                self.ids[path] = pid.strip()
            f = self.fields(data, path, _PRINCIPLE, _PRINCIPLE_REQUIRED)
            ok = self.check_id(path, f, seen)
            kind = f.get("kind")
            if kind is not None and kind not in ("harm", "uphold"):
                close = difflib.get_close_matches(kind, ["harm", "uphold"], n=1, cutoff=0.5)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                self.fail(path + ("kind",), f'must be "harm" or "uphold", got "{kind}"{hint}')
                ok = False
            threshold = f.get("threshold", 0.5)
            if "threshold" in f and not (0.0 < threshold < 1.0):  # also rejects nan
                self.fail(
                    path + ("threshold",),
                    f"must be a number between 0 and 1, got {data['threshold']}",
                )
                ok = False
            if "covers" in f and not f["covers"]:
                self.fail(
                    path + ("covers",),
                    "is empty: a principle with no examples cannot be screened or trained",
                )
                ok = False
            if kind == "harm":
                if "refusal" not in data:
                    self.fail(
                        path,
                        'missing required field "refusal": a harm principle says what it will '
                        "not do and why",
                    )
                    ok = False
                if "not_covers" not in data or f.get("not_covers") == ():
                    self.fail(
                        path + ("not_covers",),
                        "a harm principle needs at least one look-alike in not_covers (a benign "
                        "text near the line), or its screen learns to flag the whole topic",
                        at=path + ("not_covers",) if "not_covers" in data else path,
                    )
                    ok = False
            for m, text in enumerate(f.get("not_covers", ())):
                if text in f.get("covers", ()):
                    self.fail(
                        path + ("not_covers", m),
                        "is also in covers: an example cannot be both covered and not covered",
                    )
                    ok = False
            if ok and all(k in f for k in _PRINCIPLE_REQUIRED):
                out.append(
                    Principle(
                        id=f["id"],
                        title=f["title"],
                        statement=f["statement"],
                        kind=kind,
                        critique=f["critique"],
                        revision=f["revision"],
                        covers=f["covers"],
                        not_covers=f.get("not_covers", ()),
                        threshold=threshold,
                        refusal=f.get("refusal", ""),
                        alternative=f.get("alternative", ""),
                        resources=f.get("resources", ""),
                    )
                )
        return tuple(out)

    def harmless(self, items: list[dict[str, Any]] | None) -> tuple[HarmlessClass, ...]:
        if items is None:
            return ()
        seen: dict[str, int] = {}
        out: list[HarmlessClass] = []
        for n, data in enumerate(items):
            path: Path_ = ("harmless", n)
            hid = data.get("id")
            if isinstance(hid, str) and hid.strip():
                self.ids[path] = hid.strip()
            f = self.fields(data, path, _HARMLESS, tuple(_HARMLESS))
            ok = self.check_id(path, f, seen)
            if "examples" in f and not f["examples"]:
                self.fail(path + ("examples",), "is empty: a harmless class needs examples")
                ok = False
            if ok and all(k in f for k in _HARMLESS):
                out.append(HarmlessClass(f["id"], f["title"], f["description"], f["examples"]))
        return tuple(out)

    def check_id(self, path: Path_, f: dict[str, Any], seen: dict[str, int]) -> bool:
        ident = f.get("id")
        if ident is None:
            return False
        if not _ID.match(ident):
            self.fail(
                path + ("id",),
                f'"{ident}" is not a valid id: use lower-case letters, digits and _, '
                "starting with a letter",
            )
            return False
        if ident in seen:
            first = (path[0], seen[ident])
            line = self.loc.line(first)
            also = f"{path[0]}[{seen[ident]}]" + (f", line {line}" if line else "")
            self.fail(path + ("id",), f'duplicate id "{ident}" (also {also})')
            return False
        seen[ident] = int(path[1])
        return True


#: Fewer examples than these per harm principle make a weak screen (docs/constitution.md).
ADVISED_COVERS = 8
ADVISED_NOT_COVERS = 4


def advice(c: Constitution) -> list[str]:
    """Warnings about a valid constitution: harm principles with too few examples for the
    screen to learn the line from (it learns only from examples)."""
    out: list[str] = []
    for p in c.harm_principles:
        if len(p.covers) < ADVISED_COVERS or len(p.not_covers) < ADVISED_NOT_COVERS:
            out.append(
                f"principle {p.id!r} has {len(p.covers)} covers and {len(p.not_covers)} "
                f"not_covers: the screen learns the line only from examples; give it at least "
                f"{ADVISED_COVERS} and {ADVISED_NOT_COVERS}"
            )
    return out
