"""Backends are found by name through the `charter.backends` entry point group.

Charter's own backends register exactly as a third party's would (see pyproject.toml), so a
new engine is a new module plus one entry-point line, never an edit to a switch statement.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from charter.backends.base import Backend, BackendOptions
from charter.errors import ConfigError

__all__ = ["Backend", "BackendOptions", "available_backends", "backend_class"]

GROUP = "charter.backends"


def available_backends() -> list[str]:
    """Names of every installed backend."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def backend_class(name: str) -> type[Backend]:
    """Return the backend class registered as `name`.

    Raises ConfigError (naming the installed backends) when no such backend exists.
    """
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Backend)):
                raise ConfigError(f"entry point {name!r} does not name a charter Backend class")
            return cls
    raise ConfigError(
        f"unknown backend {name!r}; installed backends: {', '.join(available_backends())}"
    )
