"""The safetensors header reader: files and shard folders written here byte by byte.

Headers are built by hand (8-byte length + JSON), so broken ones are easy to make; every
failure must be a one-line `ModelFileError` naming the file, whatever the bytes.
"""

from __future__ import annotations

import json
import os
import random
import struct
import time
from pathlib import Path

import pytest

from charter.errors import ModelFileError
from charter.models.safetensors import DTYPE_BITS, read_config, read_safetensors

BYTES = {dtype: bits / 8 for dtype, bits in DTYPE_BITS.items()}


def header_bytes(
    tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str] | None = None
) -> tuple[bytes, int]:
    """The length prefix + JSON header for `tensors` laid out back to back; and the data size."""
    header: dict[str, object] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = 1
        for d in shape:
            n *= d
        size = int(n * BYTES[dtype])
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header with spaces
    return struct.pack("<Q", len(raw)) + raw, offset


def write_safetensors(
    path: Path,
    tensors: dict[str, tuple[str, list[int]]],
    metadata: dict[str, str] | None = None,
    *,
    sparse: bool = False,
) -> int:
    """Write a safetensors file of zero weights; returns the size of its data section.

    With `sparse`, the data is never written: the file is extended with truncate, so a
    header describing tens of gigabytes costs no disk space.
    """
    head, data_size = header_bytes(tensors, metadata)
    with open(path, "wb") as f:
        f.write(head)
        if sparse:
            f.truncate(len(head) + data_size)
        else:
            f.write(b"\0" * data_size)
    return data_size


def assert_error(path: Path, *words: str, target: Path | None = None) -> str:
    with pytest.raises(ModelFileError) as caught:
        read_safetensors(target or path)
    message = str(caught.value)
    assert "\n" not in message and path.name in message, message
    for word in words:
        assert word in message, message
    return message


# --- good files ---------------------------------------------------------------------------


def test_reads_names_shapes_dtypes_and_sizes(tmp_path):
    path = tmp_path / "model.safetensors"
    data = write_safetensors(
        path,
        {
            "model.embed_tokens.weight": ("BF16", [10, 4]),
            "model.norm.weight": ("F32", [4]),
            "packed": ("F4", [8, 2]),
            "scale": ("F8_E4M3", [3]),
        },
        metadata={"format": "pt"},
    )

    info = read_safetensors(path)

    assert [(t.name, t.shape, t.dtype, t.nbytes) for t in info.tensors] == [
        ("model.embed_tokens.weight", (10, 4), "BF16", 80),
        ("model.norm.weight", (4,), "F32", 16),
        ("packed", (8, 2), "F4", 8),
        ("scale", (3,), "F8_E4M3", 3),
    ]
    assert info.data_bytes == data == 107
    assert info.metadata == {"format": "pt"}
    assert info.files == (path,)
    assert info.config is None


def test_folder_reads_every_shard_and_the_config(tmp_path):
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": ("F16", [2, 3])})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"b": ("F16", [5])})
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))

    info = read_safetensors(tmp_path)

    assert [t.name for t in info.tensors] == ["a", "b"]
    assert info.data_bytes == 22
    assert info.config == {"model_type": "llama"}
    assert info.config_path == tmp_path / "config.json"


def test_index_decides_which_shards_count(tmp_path):
    write_safetensors(tmp_path / "model-1.safetensors", {"a": ("F32", [2])})
    write_safetensors(tmp_path / "stray.safetensors", {"z": ("F32", [1000])})
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {"a": "model-1.safetensors"}})
    )
    assert [t.name for t in read_safetensors(tmp_path).tensors] == ["a"]


def test_consolidated_copy_is_not_counted_twice(tmp_path):
    write_safetensors(tmp_path / "model.safetensors", {"a": ("F32", [2])})
    write_safetensors(tmp_path / "consolidated.safetensors", {"layers.0.wq": ("F32", [2])})
    info = read_safetensors(tmp_path)
    assert [t.name for t in info.tensors] == ["a"]
    assert any("consolidated.safetensors" in n for n in info.notes)


def test_a_25_gb_header_only_file_reads_in_well_under_a_second(tmp_path):
    # 200 tensors of 125 MB (bf16): 25 GB that exist only in the header; the file is sparse.
    path = tmp_path / "big.safetensors"
    tensors = {f"model.layers.{i}.mlp.up_proj.weight": ("BF16", [7812, 8000]) for i in range(200)}
    data = write_safetensors(path, tensors, sparse=True)
    assert data > 24.9e9 and path.stat().st_size > 24.9e9
    assert path.stat().st_blocks * 512 < 10_000_000  # really sparse: no disk spent

    start = time.perf_counter()
    info = read_safetensors(path)
    elapsed = time.perf_counter() - start

    assert info.data_bytes == data
    assert elapsed < 0.5, elapsed


# --- broken files -------------------------------------------------------------------------


def test_missing_file_and_folder_without_safetensors(tmp_path):
    assert_error(tmp_path / "nope.safetensors", "file not found")
    (tmp_path / "config.json").write_text("{}")
    message = assert_error(tmp_path, "no *.safetensors files")
    assert str(tmp_path) in message


def test_index_naming_a_missing_shard(tmp_path):
    write_safetensors(tmp_path / "model-1.safetensors", {"a": ("F32", [2])})
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "model-1.safetensors", "b": "model-2.x"}}))
    assert_error(index, "model-2.x", "missing", target=tmp_path)
    index.write_text(json.dumps({"weight_map": {"a": "../elsewhere.safetensors"}}))
    assert_error(index, "outside the folder", target=tmp_path)
    index.write_text(json.dumps({"weight_map": ["a"]}))
    assert_error(index, "weight_map", target=tmp_path)


def test_duplicate_tensor_across_shards(tmp_path):
    write_safetensors(tmp_path / "a.safetensors", {"w": ("F32", [2])})
    write_safetensors(tmp_path / "b.safetensors", {"w": ("F32", [2])})
    assert_error(tmp_path / "b.safetensors", "'w'", "duplicate", target=tmp_path)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"dtype": "F17", "shape": [2], "data_offsets": [0, 8]}, ["unknown dtype", "'F17'"]),
        ({"shape": [2], "data_offsets": [0, 8]}, ["no dtype"]),
        ({"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}, ["invalid shape"]),
        ({"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}, ["invalid shape"]),
        ({"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}, ["invalid shape"]),
        ({"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}, ["invalid shape"]),
        ({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, ["invalid data_offsets"]),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0]}, ["invalid data_offsets"]),
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, ["needs 12 bytes", "span 8"]),
        ({"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}, ["implausible"]),
        ({"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}, ["whole bytes"]),
        ({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, ["truncated", "ends at byte 16"]),
        ("not an object", ["not an object"]),
    ],
)
def test_bad_tensor_entries(tmp_path, entry, words):
    path = tmp_path / "bad.safetensors"
    raw = json.dumps({"w": entry}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)
    assert_error(path, "'w'" if entry != "not an object" else "", *words)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["truncated", "0 bytes"]),
        (b"\x05\0\0", ["truncated"]),
        (struct.pack("<Q", 10**12) + b"{}", ["header length", "limit"]),
        (struct.pack("<Q", 100) + b"{}", ["truncated", "needs 108 bytes"]),
        (struct.pack("<Q", 2) + b"[]", ["expected a JSON object", "list"]),
        (struct.pack("<Q", 5) + b'{"a":', ["invalid JSON"]),
        (struct.pack("<Q", 2) + b"\xff\xfe", ["not UTF-8"]),
        (struct.pack("<Q", 20) + b'{"__metadata__": 5} ', ["__metadata__"]),
        (struct.pack("<Q", 4000) + b"[" * 4000, ["invalid JSON"]),  # nested past the limit
        (struct.pack("<Q", 5000) + b"1" * 5000, ["invalid JSON"]),  # a 5000-digit number
    ],
    ids=[
        "empty",
        "short",
        "huge-header",
        "header-past-end",
        "list",
        "cut-json",
        "not-utf8",
        "bad-metadata",
        "deep-nesting",
        "huge-number",
    ],
)
def test_corrupt_headers(tmp_path, content, words):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(content)
    assert_error(path, *words)


def test_every_truncation_is_a_clean_error(tmp_path):
    path = tmp_path / "m.safetensors"
    write_safetensors(
        path,
        {"model.embed_tokens.weight": ("F16", [8, 4]), "model.norm.weight": ("F32", [4])},
        metadata={"format": "pt"},
    )
    whole = path.read_bytes()
    cut_path = tmp_path / "cut.safetensors"
    for cut in range(len(whole)):
        cut_path.write_bytes(whole[:cut])
        assert_error(cut_path)
    cut_path.write_bytes(whole)
    assert read_safetensors(cut_path).data_bytes == 80


def test_random_bytes_and_bit_flips_never_escape_as_anything_else(tmp_path):
    rng = random.Random(6)
    good = tmp_path / "good.safetensors"
    write_safetensors(good, {"a": ("F32", [2, 2]), "b": ("BF16", [3])}, metadata={"k": "v"})
    whole = bytearray(good.read_bytes())
    path = tmp_path / "fuzz.safetensors"
    for i in range(400):
        if i % 2:
            data = bytearray(whole)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data = bytearray(rng.randbytes(rng.randint(0, 120)))
        path.write_bytes(bytes(data))
        try:
            read_safetensors(path)
        except ModelFileError as exc:
            assert "\n" not in str(exc) and "fuzz.safetensors" in str(exc)


# --- config.json --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"a": 1,', ["invalid JSON at line 1 column 9"]),
        (b"[1, 2]", ["expected a JSON object, found list"]),
        (b"\xff", ["not UTF-8"]),
    ],
)
def test_bad_config_json(tmp_path, content, words):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as caught:
        read_config(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message
    for word in words:
        assert word in message, message


def test_bad_config_beside_weights_names_the_config(tmp_path):
    write_safetensors(tmp_path / "model.safetensors", {"a": ("F32", [2])})
    (tmp_path / "config.json").write_text("{oops")
    assert_error(tmp_path / "config.json", "invalid JSON", target=tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.safetensors"
    write_safetensors(path, {"a": ("F32", [2])})
    path.chmod(0)
    try:
        assert_error(path, "permission denied")
    finally:
        path.chmod(0o644)
