"""Looking inside a model: load it in PyTorch, then ask what each layer predicts and where the
answer's attention goes (`charter lens`).

Needs the optional extra (`pip install 'charter[interp]'`); nothing here imports torch until a
function that needs it runs, and a missing extra is a `ConfigError` naming that command.
"""

from __future__ import annotations

import importlib

from charter.errors import ConfigError

INSTALL_HINT = "pip install 'charter[interp]'"


def require_torch() -> None:
    """Import torch and transformers, or raise `ConfigError` with the exact install command."""
    for name in ("torch", "transformers"):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"this needs PyTorch and transformers ({name} is not importable: {exc}); "
                f"install the extra: {INSTALL_HINT}"
            ) from None
