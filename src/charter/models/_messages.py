"""One-line error messages about model files, shared by the GGUF and safetensors readers."""

from __future__ import annotations

from pathlib import Path

from charter.errors import ModelFileError


def show(text: str) -> str:
    """A name from the file, safe to put in a one-line message."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def reason(exc: BaseException) -> str:
    """The first line of what went wrong (an OSError's own words where it has them)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def file_error(path: Path, what: str) -> ModelFileError:
    """`ModelFileError("<path>: <what>")`."""
    return ModelFileError(f"{path}: {what}")
