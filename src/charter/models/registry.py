"""Well-known models to compare against, from a shipped data file with a source for each.

`charter inspect --compare` places a model among them with computed ratios, so claims like
"a 12B Claude 2" can be checked against what developers actually published.
"""

from __future__ import annotations

import functools
import re
import tomllib
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from charter.errors import CharterError
from charter.models.locate import format_count

REGISTRY_DATA = "known_models.toml"
UNDISCLOSED = "undisclosed"

_Count = Field(default=None, gt=0)
_NUMERIC_FIELDS = (
    "active_parameters",
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "ffn",
    "vocab",
    "context",
    "sliding_window",
    "experts",
    "experts_used",
    "year",
)


class KnownModel(BaseModel):
    """One registry entry. An undisclosed size carries no number at all."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(min_length=1)
    developer: str = Field(min_length=1)
    open_weights: bool
    parameters: int | Literal["undisclosed"]
    active_parameters: int | None = _Count
    count: Literal["exact", "announced"] | None = None
    family: str | None = None
    layers: int | None = _Count
    hidden: int | None = _Count
    heads: int | None = _Count
    kv_heads: int | None = _Count
    head_dim: int | None = _Count
    ffn: int | None = _Count
    vocab: int | None = _Count
    context: int | None = _Count
    sliding_window: int | None = _Count
    experts: int | None = _Count
    experts_used: int | None = _Count
    tied_embeddings: bool | None = None
    year: int | None = Field(default=None, ge=1950, le=2100)
    source: str = Field(pattern=r"^https://\S+$")
    architecture_source: str | None = Field(default=None, pattern=r"^https://\S+$")
    notes: str | None = None

    @property
    def disclosed(self) -> bool:
        return self.parameters != UNDISCLOSED

    @model_validator(mode="after")
    def _consistent(self) -> KnownModel:
        if not self.disclosed:
            numbers = [f for f in _NUMERIC_FIELDS if getattr(self, f) is not None]
            if numbers or self.count is not None:
                raise ValueError(f"an undisclosed size must carry no figures, found {numbers}")
            if self.notes and re.search(r"\d", self.notes):
                raise ValueError("an undisclosed size's notes must not contain a number")
            return self
        if isinstance(self.parameters, int) and self.parameters <= 0:
            raise ValueError("parameters must be positive")
        if self.count is None:
            raise ValueError('say how the count was obtained: count = "exact" or "announced"')
        if self.active_parameters is not None and self.active_parameters > self.parameters:
            raise ValueError("active_parameters cannot exceed parameters")
        return self


def load_registry(text: str | None = None) -> list[KnownModel]:
    """The shipped registry (or the TOML `text` given, for tests), validated.

    Returns the entries in file order. Raises `CharterError` when the data is invalid,
    naming the entry and field: the shipped file is tested, so that is a bug.
    """
    if text is None:
        return list(_shipped())
    return _parse(text)


@functools.cache
def _shipped() -> tuple[KnownModel, ...]:
    try:
        text = resources.files("charter.models").joinpath("data", REGISTRY_DATA).read_text("utf-8")
    except OSError as exc:
        raise CharterError(f"the model registry {REGISTRY_DATA} cannot be read: {exc}") from None
    return tuple(_parse(text))


def _parse(text: str) -> list[KnownModel]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CharterError(f"model registry: invalid TOML: {exc}") from None
    entries = data.get("model")
    if not isinstance(entries, list):
        raise CharterError("model registry: expected [[model]] entries")
    out = []
    for i, entry in enumerate(entries):
        try:
            out.append(KnownModel.model_validate(entry))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "entry"
            name = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
            raise CharterError(f"model registry: {name}: {where}: {err['msg']}") from None
    return out


def short_count(n: int) -> str:
    """A rounded count without a trailing ".0": 175_000_000_000 -> "175B", 46.7e9 -> "46.7B"."""
    return re.sub(r"\.0(?=[KMBT]?$)", "", format_count(n))


def ratio_text(ours: int, theirs: int, name: str) -> str:
    """How `ours` compares with a model called `name` of `theirs` parameters, computed:
    "0.08% of GPT-3 (175B)" below its size, "2.3× GPT-2 XL (1.6B)" above it."""
    label = f"{name} ({short_count(theirs)})"
    if ours == theirs:
        return f"the same size as {label}"
    ratio = ours / theirs
    if ratio >= 1:
        return f"{ratio:.3g}× {label}"
    pct = ratio * 100
    if pct >= 10:
        shown = f"{pct:.0f}"
    elif pct >= 1:
        shown = f"{pct:.1f}"
    elif pct >= 0.01:
        shown = f"{pct:.2f}"
    else:
        shown = f"{pct:.2g}"
    return f"{shown}% of {label}"


def compare(
    name: str, parameters: int, active: int | None, models: list[KnownModel] | None = None
) -> dict[str, Any]:
    """Place a model of `parameters` (and `active`, for a mixture of experts) among the
    registry's models, smallest first.

    Returns {"ranked": [...], "undisclosed": [...]}: ranked rows carry name, parameters,
    active, count, year, source and `ratio` (computed text, None for the inspected model,
    which has `this: True`); undisclosed rows carry name, developer, notes and source.
    """
    models = load_registry() if models is None else models
    ranked: list[dict[str, Any]] = [
        {
            "name": name,
            "parameters": parameters,
            "active_parameters": active,
            "this": True,
            "ratio": None,
        }
    ]
    undisclosed = []
    for m in models:
        if isinstance(m.parameters, str):  # "undisclosed"
            undisclosed.append(
                {"name": m.name, "developer": m.developer, "notes": m.notes, "source": m.source}
            )
            continue
        ranked.append(
            {
                "name": m.name,
                "parameters": m.parameters,
                "active_parameters": m.active_parameters,
                "count": m.count,
                "year": m.year,
                "source": m.source,
                "this": False,
                "ratio": ratio_text(parameters, m.parameters, m.name),
            }
        )
    # The inspected model sorts after an equal-sized entry, so "100% of" reads naturally.
    ranked.sort(key=lambda r: (r["parameters"], r["this"]))
    return {"ranked": ranked, "undisclosed": undisclosed}
