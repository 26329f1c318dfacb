"""Evaluation suites: the shipped ones named in ``suites/manifest.toml``, or a user's own JSONL.

A suite file holds one case per line (see :mod:`charter.eval.cases` for the fields). Loading
validates every line and names the file and line of the first problem, e.g.
``harmful.jsonl:17: missing field 'expected'``, so that a typo never silently drops a case.

A run records each suite's version as ``<version>+<first 12 hex of the file's sha256>``:
the manifest's hand-kept version, plus the content hash, so an edited file always shows.
"""

from __future__ import annotations

import hashlib
import json
import random
import tomllib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from charter.errors import ConfigError
from charter.eval.cases import EXPECTED, Case

_MANIFEST = "manifest.toml"
_ROLES = ("system", "user", "assistant")
_FIELDS = {
    "id",
    "category",
    "expected",
    "prompt",
    "messages",
    "answers",
    "transform",
    "source_id",
    "bias",
    "meta",
}


class SuiteError(ConfigError):
    """A suite is unknown, missing, or has an invalid line (the message names file:line)."""


@dataclass(frozen=True)
class SuiteInfo:
    """One shipped suite as the manifest describes it (its cases are not read)."""

    name: str
    file: str
    version: str
    description: str


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    sha256: str
    description: str
    path: str
    cases: list[Case]

    @property
    def recorded_version(self) -> str:
        """What run.json records: ``<version>+<first 12 hex of sha256>``."""
        return f"{self.version}+{self.sha256[:12]}"

    @property
    def categories(self) -> list[str]:
        """Categories in the order they first appear in the file."""
        return list(dict.fromkeys(c.category for c in self.cases))


def _suites_dir() -> Traversable:
    return resources.files("charter.eval").joinpath("suites")


def list_suites() -> list[SuiteInfo]:
    """The shipped suites, in manifest order."""
    try:
        data = tomllib.loads(_suites_dir().joinpath(_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SuiteError(f"cannot read the suite manifest {_MANIFEST}: {exc}") from None
    out: list[SuiteInfo] = []
    for i, entry in enumerate(data.get("suite", []), 1):
        try:
            out.append(
                SuiteInfo(
                    name=str(entry["name"]),
                    file=str(entry["file"]),
                    version=str(entry["version"]),
                    description=str(entry.get("description", "")),
                )
            )
        except (KeyError, TypeError) as exc:
            raise SuiteError(f"{_MANIFEST}: suite entry {i} lacks {exc}") from None
    return out


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name, or a user's own suite from a path ending in ``.jsonl``.

    A user's suite is named after the file's stem and has version ``"file"``.
    """
    if name_or_path.endswith(".jsonl"):
        path = Path(name_or_path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise SuiteError(f"no such suite file: {name_or_path}") from None
        except OSError as exc:
            raise SuiteError(f"cannot read suite file {name_or_path}: {exc.strerror}") from None
        return parse_suite(raw, name=path.stem, version="file", label=name_or_path)
    shipped = {s.name: s for s in list_suites()}
    info = shipped.get(name_or_path)
    if info is None:
        raise SuiteError(
            f"unknown suite {name_or_path!r}; shipped suites: {', '.join(shipped)} "
            "(or give the path of your own .jsonl file)"
        )
    res = _suites_dir().joinpath(info.file)
    try:
        raw = res.read_bytes()
    except OSError:
        raise SuiteError(f"suite {info.name!r}: its file {info.file} is missing") from None
    return parse_suite(
        raw,
        name=info.name,
        version=info.version,
        label=info.file,
        description=info.description,
        path=str(res),
    )


def parse_suite(
    raw: bytes,
    *,
    name: str,
    version: str,
    label: str,
    description: str = "",
    path: str | None = None,
) -> Suite:
    """Validate and parse suite bytes; errors are prefixed with ``label:line``."""
    sha = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SuiteError(f"{label}:{line}: not valid UTF-8") from None
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        case = _parse_case(line, name, f"{label}:{lineno}")
        if case.id in seen:
            raise SuiteError(
                f"{label}:{lineno}: duplicate id {case.id!r} (first on line {seen[case.id]})"
            )
        seen[case.id] = lineno
        cases.append(case)
    if not cases:
        raise SuiteError(f"{label}: the suite is empty (no cases)")
    return Suite(
        name=name,
        version=version,
        sha256=sha,
        description=description,
        path=path or label,
        cases=cases,
    )


def _parse_case(line: str, suite: str, where: str) -> Case:
    def fail(msg: str) -> SuiteError:
        return SuiteError(f"{where}: {msg}")

    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise fail("a case must be a JSON object")
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise fail(f"unknown field {unknown[0]!r} (free-form data goes in 'meta')")
    for key in ("id", "category", "expected"):
        if key not in obj:
            raise fail(f"missing field {key!r}")
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise fail(f"field {key!r} must be a non-empty string")
    if obj["expected"] not in EXPECTED:
        raise fail(f"unknown expected {obj['expected']!r} (one of: {', '.join(EXPECTED)})")
    has_prompt, has_messages = "prompt" in obj, "messages" in obj
    if has_prompt and has_messages:
        raise fail("give either 'prompt' or 'messages', not both")
    if not has_prompt and not has_messages:
        raise fail("missing field 'prompt' (or 'messages')")
    if has_prompt:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            raise fail("field 'prompt' must be a non-empty string")
        messages: tuple[dict[str, str], ...] = ({"role": "user", "content": obj["prompt"]},)
    else:
        messages = _parse_messages(obj["messages"], fail)
    answers = obj.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) and a for a in answers):
        raise fail("field 'answers' must be a list of non-empty strings")
    bias = obj.get("bias")
    if bias is not None and not isinstance(bias, dict):
        raise fail("field 'bias' must be an object")
    if obj["expected"] == "answer" and not answers and not (bias and bias.get("answer")):
        raise fail("expected 'answer' needs a non-empty 'answers' list")
    if obj["expected"] == "answer" and bias is not None:
        options = bias.get("options")
        if not isinstance(options, dict) or not options:
            raise fail("a bias case needs 'bias.options' (an object: letter -> option text)")
    for key in ("transform", "source_id"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise fail(f"field {key!r} must be a string")
    meta: Any = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise fail("field 'meta' must be an object")
    return Case(
        id=obj["id"],
        suite=suite,
        category=obj["category"],
        expected=obj["expected"],
        messages=messages,
        answers=tuple(answers),
        transform=obj.get("transform"),
        source_id=obj.get("source_id"),
        bias=bias,
        meta=meta,
    )


def _parse_messages(value: Any, fail: Any) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise fail("field 'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(value):
        if (
            not isinstance(m, dict)
            or m.get("role") not in _ROLES
            or not isinstance(m.get("content"), str)
        ):
            raise fail(
                f"messages[{i}] must be {{'role': system|user|assistant, 'content': string}}"
            )
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "user":
        raise fail(f"messages must end with a user turn, not {out[-1]['role']!r}")
    return tuple(out)


def sample(cases: list[Case], limit: int | None, seed: int | None = None) -> list[Case]:
    """At most ``limit`` cases, stratified: round-robin over categories in file order.

    Deterministic: without a seed each category contributes its cases in file order; with one,
    in an order shuffled by that seed. The chosen cases are returned in file order, so that
    ``limit=5`` over five categories takes one case of each.
    """
    if limit is None or limit >= len(cases):
        return list(cases)
    if limit <= 0:
        return []
    by_cat: dict[str, list[int]] = {}
    for i, c in enumerate(cases):
        by_cat.setdefault(c.category, []).append(i)
    if seed is not None:
        rng = random.Random(seed)
        for idx in by_cat.values():
            rng.shuffle(idx)
    queues = list(by_cat.values())
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for q in queues:
            if depth < len(q):
                chosen.append(q[depth])
                if len(chosen) == limit:
                    break
        depth += 1
    return [cases[i] for i in sorted(chosen)]
