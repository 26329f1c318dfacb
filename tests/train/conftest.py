"""Training fixtures: the embedded model as a float32 Hugging Face folder, made once a session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def base_hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`base_hf_folder(None, ...)` in a session cache (about 10 s to make, then reused)."""
    from charter.train.hf import base_hf_folder

    return base_hf_folder(None, tmp_path_factory.mktemp("base-hf"))
