"""The constitution's value types: what a loaded, validated constitution file is.

The file format (TOML, `schema = 1`) is documented in docs/constitution.md; `loader.py`
turns a file into these objects and is the only place that validates. Everything else
(the screens, critique and revision, the trace, training data) reads these objects.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

#: The schema version this code reads (`schema = 1` at the top of the file).
SCHEMA_VERSION = 1

Kind = Literal["harm", "uphold"]


@dataclass(frozen=True)
class Principle:
    """One principle. `kind` "harm": something to avoid, screened at run time (it has a
    screen head and a threshold). `kind` "uphold": a quality to keep (honesty, helpfulness),
    used by critique/revision and training, not screened by a classifier head."""

    id: str
    title: str
    statement: str
    kind: Kind
    #: SL-CAI critique request: asks the model to find how a draft breaks the principle.
    critique: str
    #: SL-CAI revision request: asks the model to rewrite the draft to follow the principle.
    revision: str
    #: Texts the principle covers: requests, and excerpts of answers it forbids.
    covers: tuple[str, ...]
    #: Look-alikes it does not cover (benign texts near the line): negatives for its head.
    not_covers: tuple[str, ...]
    #: Calibrated probability at or above which the principle fires (harm principles).
    threshold: float = 0.5
    #: What the assistant says when it declines under this principle: what it will not do
    #: and why (non-evasive), in the constitution's words.
    refusal: str = ""
    #: The safe alternative it offers instead.
    alternative: str = ""
    #: Extra text always added to a refusal under this principle (e.g. crisis resources).
    resources: str = ""


@dataclass(frozen=True)
class HarmlessClass:
    """A kind of request that looks risky but must be answered (negatives for every head)."""

    id: str
    title: str
    description: str
    examples: tuple[str, ...]


@dataclass(frozen=True)
class RefusalStyle:
    """How every refusal is worded. `template` may use {title}, {statement}, {refusal},
    {alternative}, {resources}, {principle_id}."""

    template: str
    guidance: str = ""


@dataclass(frozen=True)
class Constitution:
    name: str
    version: str
    principles: tuple[Principle, ...]
    harmless: tuple[HarmlessClass, ...]
    refusal_style: RefusalStyle
    description: str = ""
    schema: int = SCHEMA_VERSION
    #: The file it was read from (None when built in code).
    path: Path | None = field(default=None, compare=False)

    @property
    def harm_principles(self) -> tuple[Principle, ...]:
        return tuple(p for p in self.principles if p.kind == "harm")

    def principle(self, principle_id: str) -> Principle:
        for p in self.principles:
            if p.id == principle_id:
                return p
        raise KeyError(principle_id)

    def to_dict(self) -> dict[str, Any]:
        """The content as plain data (no path): what the hash covers and `show --json` prints."""
        out = asdict(self)
        out.pop("path")
        return out

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON of the content: comments and formatting in the file do
        not change it; any change to what governs (a word, a threshold, an example) does."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def refusal_text(self, principle_id: str) -> str:
        """The constitution-authored refusal for `principle_id`, from the refusal template."""
        p = self.principle(principle_id)
        text = self.refusal_style.template.format(
            title=p.title,
            statement=p.statement,
            refusal=p.refusal,
            alternative=p.alternative,
            resources=p.resources,
            principle_id=p.id,
        )
        return " ".join(text.split()) if "\n\n" not in text else text.strip()
