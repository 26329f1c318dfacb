"""Model files: where Charter finds them and what their GGUF headers say.

Everything here reads files only; loading a model to run it is the backends' job.
"""

from charter.models.gguf import GGUFInfo, read_gguf
from charter.models.locate import (
    ModelEntry,
    embedded_model_path,
    format_count,
    format_size,
    list_models,
)

__all__ = [
    "GGUFInfo",
    "ModelEntry",
    "embedded_model_path",
    "format_count",
    "format_size",
    "list_models",
    "read_gguf",
]
