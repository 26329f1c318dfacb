"""The GGUF header reader, cross-checked against the `gguf` package's own writer.

Files are written here with known shapes; corrupt ones are made by hand or by cutting and
flipping bytes of good ones, and every failure must be a one-line `ModelFileError`.
"""

from __future__ import annotations

import json
import os
import random
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from charter.errors import ModelFileError
from charter.models.gguf import FILE_TYPES, GGML_TYPES, read_gguf

TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"


def write_model(
    path: Path,
    *,
    vocab: int = 40,
    emb: int = 16,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 4,
    ffn: int = 24,
    tied: bool = True,
    ctx: int = 256,
) -> int:
    """A llama-shaped model with zero weights; returns its parameter count, worked out by hand."""
    head_dim = emb // heads
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny test model")
    w.add_context_length(ctx)
    w.add_block_count(layers)
    w.add_embedding_length(emb)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_file_type(0)
    w.add_token_list([f"tok{i}" for i in range(vocab)])
    w.add_token_types([1] * vocab)
    w.add_chat_template(TEMPLATE)

    def tensor(name: str, *shape: int) -> None:  # numpy order: outermost dimension first
        w.add_tensor(name, np.zeros(shape, dtype=np.float32))

    tensor("token_embd.weight", vocab, emb)
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", emb)
        tensor(f"blk.{i}.attn_q.weight", emb, emb)
        tensor(f"blk.{i}.attn_k.weight", kv_heads * head_dim, emb)
        tensor(f"blk.{i}.attn_v.weight", kv_heads * head_dim, emb)
        tensor(f"blk.{i}.attn_output.weight", emb, emb)
        tensor(f"blk.{i}.ffn_norm.weight", emb)
        tensor(f"blk.{i}.ffn_gate.weight", ffn, emb)
        tensor(f"blk.{i}.ffn_up.weight", ffn, emb)
        tensor(f"blk.{i}.ffn_down.weight", emb, ffn)
    tensor("output_norm.weight", emb)
    if not tied:
        tensor("output.weight", vocab, emb)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    kv_dim = kv_heads * head_dim
    per_layer = 2 * emb + 2 * emb * emb + 2 * kv_dim * emb + 3 * emb * ffn
    return vocab * emb + layers * per_layer + emb + (0 if tied else vocab * emb)


# A second, hand-written encoder: it can write what GGUFWriter refuses to (bad headers).
def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, type_id: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", type_id) + payload


def tensor_info(name: str, dims: list[int], type_id: int = 0, offset: int = 0) -> bytes:
    return (
        s(name)
        + struct.pack("<I", len(dims))
        + b"".join(struct.pack("<Q", d) for d in dims)
        + struct.pack("<IQ", type_id, offset)
    )


def gguf_bytes(
    kvs: list[bytes] = (),
    tensors: list[bytes] = (),
    *,
    version: int = 3,
    n_kv: int | None = None,
    n_tensors: int | None = None,
    data: bytes = b"",
) -> bytes:
    head = b"GGUF" + struct.pack(
        "<IQQ",
        version,
        len(tensors) if n_tensors is None else n_tensors,
        len(kvs) if n_kv is None else n_kv,
    )
    body = head + b"".join(kvs) + b"".join(tensors)
    return body + b"\0" * (-len(body) % 32) + data


ARCH = kv("general.architecture", 8, s("llama"))


def write(tmp_path: Path, data: bytes, name: str = "model.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_model_error(path: Path, *words: str) -> ModelFileError:
    with pytest.raises(ModelFileError) as caught:
        read_gguf(path)
    message = str(caught.value)
    assert path.name in message and "\n" not in message, message
    for word in words:
        assert word in message, message
    return caught.value


# --- good files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "expected_kv"),
    [
        (dict(heads=4, kv_heads=4, tied=True), 4),  # dense, tied embeddings
        (dict(heads=4, kv_heads=2, tied=True), 2),  # grouped-query attention
        (dict(heads=4, kv_heads=1, tied=False), 1),  # its own output head
    ],
    ids=["dense-tied", "gqa", "output-head"],
)
def test_reads_model_shape_and_exact_parameter_count(tmp_path, shape, expected_kv):
    path = tmp_path / "tiny.gguf"
    expected_params = write_model(path, **shape)

    info = read_gguf(path)

    assert info.parameter_count == expected_params
    assert info.architecture == "llama"
    assert info.name == "tiny test model"
    assert (info.context_length, info.block_count, info.embedding_length) == (256, 2, 16)
    assert (info.head_count, info.head_count_kv) == (4, expected_kv)
    assert info.vocab_size == 40
    assert info.file_type == "F32"
    assert info.version == 3
    assert info.has_chat_template
    assert info.metadata["tokenizer.chat_template"] == TEMPLATE
    assert info.metadata["tokenizer.ggml.tokens"] == {"type": "array[string]", "length": 40}
    assert info.file_size == path.stat().st_size
    assert info.tensor_count == len(info.tensors) == 2 + 9 * 2 + (0 if shape["tied"] else 1)
    # GGUF order: innermost dimension first, the reverse of numpy's.
    assert info.tensors[0] == ("token_embd.weight", (16, 40), "F32")
    assert (("output.weight", (16, 40), "F32") in info.tensors) == (not shape["tied"])


def test_untied_head_adds_exactly_one_embedding_matrix(tmp_path):
    tied = read_gguf(_model(tmp_path / "a.gguf", tied=True)).parameter_count
    untied = read_gguf(_model(tmp_path / "b.gguf", tied=False)).parameter_count
    assert untied - tied == 40 * 16


def _model(path: Path, **shape) -> Path:
    write_model(path, **shape)
    return path


def test_quantised_tensors_count_elements_not_bytes(tmp_path):
    path = tmp_path / "q.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    # 64 x 3 elements in Q4_1: 2 blocks of 32 per row, 20 bytes each.
    w.add_tensor(
        "q", np.zeros((3, 2 * 20), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q4_1
    )
    # 256 x 1 in Q6_K: one block of 256, 210 bytes.
    w.add_tensor("k", np.zeros((1, 210), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q6_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    info = read_gguf(path)

    assert info.tensors == (("q", (64, 3), "Q4_1"), ("k", (256, 1), "Q6_K"))
    assert info.parameter_count == 64 * 3 + 256
    assert info.file_type == "Q4_1"
    assert info.name == "q"  # no general.name: the file stem
    assert info.vocab_size is None and info.context_length is None
    assert not info.has_chat_template


def test_every_metadata_value_type(tmp_path):
    path = tmp_path / "types.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 2**32 - 1)
    w.add_int32("t.i32", -(2**31))
    w.add_float32("t.f32", 0.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo")
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63))
    w.add_float64("t.f64", 0.1)
    w.add_array("t.ints", [1, 2, 3])
    w.add_array("t.floats", [1.5, 2.5])
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_array("t.strings", ["a", "bc", ""])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    meta = read_gguf(path).metadata

    assert {k: meta[k] for k in meta if k.startswith("t.") and not isinstance(meta[k], dict)} == {
        "t.u8": 255,
        "t.i8": -128,
        "t.u16": 65535,
        "t.i16": -32768,
        "t.u32": 2**32 - 1,
        "t.i32": -(2**31),
        "t.f32": 0.5,
        "t.bool": True,
        "t.str": "héllo",
        "t.u64": 2**64 - 1,
        "t.i64": -(2**63),
        "t.f64": 0.1,
    }
    assert meta["t.ints"]["length"] == 3 and meta["t.ints"]["type"].startswith("array[")
    assert meta["t.floats"] == {"type": "array[float32]", "length": 2}
    assert meta["t.nested"] == {"type": "array[array]", "length": 2}
    assert meta["t.strings"] == {"type": "array[string]", "length": 3}


def test_empty_arrays(tmp_path):  # GGUFWriter refuses to write them; llama.cpp reads them
    kvs = [
        ARCH,
        kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 0)),
        kv("a.nested", 9, struct.pack("<IQ", 9, 2) + struct.pack("<IQ", 0, 0) * 2),
    ]
    info = read_gguf(write(tmp_path, gguf_bytes(kvs)))
    assert info.vocab_size == 0
    assert info.metadata["a.nested"] == {"type": "array[array]", "length": 2}


def test_version_2_is_read(tmp_path):
    path = write(
        tmp_path, gguf_bytes([ARCH, kv("llama.context_length", 4, struct.pack("<I", 9))], version=2)
    )
    info = read_gguf(path)
    assert (info.version, info.architecture, info.context_length) == (2, "llama", 9)
    assert info.parameter_count == 0 and info.tensors == ()


def test_tensor_data_is_checked_against_file_size(tmp_path):
    tensors = [tensor_info("a", [4, 2]), tensor_info("b", [3], offset=32)]
    path = write(tmp_path, gguf_bytes([ARCH], tensors, data=b"\0" * (32 + 12)))
    assert read_gguf(path).parameter_count == 8 + 3
    path = write(tmp_path, gguf_bytes([ARCH], tensors, data=b"\0" * (32 + 11)))
    assert_model_error(path, "truncated", "'b'")


def test_custom_alignment_moves_the_data_start(tmp_path):
    align = kv("general.alignment", 4, struct.pack("<I", 64))
    header = gguf_bytes([ARCH, align], [tensor_info("a", [8])])
    # gguf_bytes pads to 32; the reader must pad to 64 before the data.
    start = len(header) + (-len(header) % 64)
    path = write(tmp_path, header + b"\0" * (start - len(header) + 32))
    assert read_gguf(path).parameter_count == 8
    path = write(tmp_path, header + b"\0" * (start - len(header) + 31))
    assert_model_error(path, "truncated")


def test_invalid_utf8_and_unknown_tensor_type_do_not_crash(tmp_path):
    kvs = [ARCH, kv("general.name", 8, s(b"\xff\xfe bad"))]
    path = write(tmp_path, gguf_bytes(kvs, [tensor_info("x", [5], type_id=999)]))
    info = read_gguf(path)
    assert "bad" in info.name
    assert info.tensors == (("x", (5,), "unknown(999)"),)
    assert info.parameter_count == 5


def test_to_dict_is_strict_json(tmp_path):
    nan = kv("t.nan", 6, struct.pack("<f", float("nan")))
    path = write(tmp_path, gguf_bytes([ARCH, nan], [tensor_info("x", [2, 3])], data=b"\0" * 24))
    info = read_gguf(path)
    out = json.loads(json.dumps(info.to_dict(include_tensors=True), allow_nan=False))
    assert out["architecture"] == "llama" and out["parameter_count"] == 6
    assert out["metadata"]["t.nan"] == "nan"
    assert out["tensors"] == [{"name": "x", "shape": [2, 3], "type": "F32"}]
    assert "tensors" not in info.to_dict()


def test_type_tables_match_the_gguf_package():
    for qtype, (block, size) in gguf.GGML_QUANT_SIZES.items():
        if qtype == gguf.GGMLQuantizationType.Q8_1:
            continue  # gguf-py says 40 bytes; ggml's block_q8_1 is 36 (d, s as f16 + 32)
        assert GGML_TYPES[qtype.value] == (qtype.name, block, size)
    for ftype in gguf.LlamaFileType:
        if ftype.name != "GUESSED":
            assert FILE_TYPES[ftype.value] == ftype.name.removeprefix("MOSTLY_").removeprefix(
                "ALL_"
            )


# --- bad files ----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    assert_model_error(tmp_path / "nope.gguf", "not found")


def test_directory(tmp_path):
    (tmp_path / "dir.gguf").mkdir()
    assert_model_error(tmp_path / "dir.gguf", "directory")


def test_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.gguf"
    os.mkfifo(path)
    assert_model_error(path, "not a regular file")


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode"
)
def test_permission_denied(tmp_path):
    path = _model(tmp_path / "locked.gguf")
    path.chmod(0)
    try:
        assert_model_error(path, "permission denied")
    finally:
        path.chmod(0o600)


def test_permission_denied_when_opening(tmp_path, monkeypatch):
    # The same path as above, reachable as root too: the OS refuses at open().
    import charter.models.gguf as module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(module, "open", refuse, raising=False)
    assert_model_error(_model(tmp_path / "locked.gguf"), "permission denied")


def test_empty_file(tmp_path):
    assert_model_error(write(tmp_path, b""), "empty")


def test_bad_magic(tmp_path):
    data = bytearray(_model(tmp_path / "m.gguf").read_bytes())
    data[:4] = b"GGML"
    assert_model_error(write(tmp_path, bytes(data), "flipped.gguf"), "not a GGUF file")
    assert_model_error(write(tmp_path, b"hello world", "text.gguf"), "not a GGUF file")


@pytest.mark.parametrize(
    ("version", "words"),
    [
        (1, ["unsupported GGUF version 1"]),
        (4, ["unsupported GGUF version 4"]),
        (int.from_bytes((3).to_bytes(4, "big"), "little"), ["big-endian"]),
    ],
)
def test_unsupported_versions(tmp_path, version, words):
    assert_model_error(write(tmp_path, gguf_bytes([ARCH], version=version)), *words)


CORRUPT = {
    # a key claiming 2**62 bytes: refused before anything is allocated
    "huge-key": (b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 2**62), "implausible length"),
    "string-longer-than-file": (
        gguf_bytes([kv("a", 8, struct.pack("<Q", 10**12))]),
        "implausible length",
    ),
    "huge-kv-count": (gguf_bytes([ARCH], n_kv=2**60), "implausible number of metadata"),
    "huge-tensor-count": (gguf_bytes([ARCH], n_tensors=2**60), "implausible number of tensors"),
    "huge-u32-array": (
        gguf_bytes([kv("a", 9, struct.pack("<IQ", 4, 2**61))]),
        "implausible number of items",
    ),
    "huge-string-array": (
        gguf_bytes([kv("a", 9, struct.pack("<IQ", 8, 2**61))]),
        "implausible number of items",
    ),
    "huge-string-in-array": (
        gguf_bytes([kv("a", 9, struct.pack("<IQQ", 8, 1, 2**40))]),
        "implausible string length",
    ),
    "unknown-value-type": (gguf_bytes([kv("a", 13, b"\0" * 8)]), "unknown value type 13"),
    "unknown-item-type": (
        gguf_bytes([kv("a", 9, struct.pack("<IQ", 77, 1))]),
        "unknown array item type 77",
    ),
    "nesting-bomb": (
        gguf_bytes([kv("a", 9, struct.pack("<IQ", 9, 1) * 20 + struct.pack("<IQ", 0, 0))]),
        "nested too deep",
    ),
    "duplicate-key": (gguf_bytes([ARCH, ARCH]), "duplicate metadata key 'general.architecture'"),
    "five-dims": (gguf_bytes([], [tensor_info("x", [1, 1, 1, 1, 1])]), "5 dimensions"),
    "huge-shape": (gguf_bytes([], [tensor_info("x", [2**40, 2**40])]), "implausible shape"),
    "unaligned": (gguf_bytes([], [tensor_info("x", [4], offset=3)]), "not aligned"),
    "partial-block": (gguf_bytes([], [tensor_info("x", [33], type_id=2)]), "block size 32"),
    "duplicate-tensor": (
        gguf_bytes([], [tensor_info("x", [1]), tensor_info("x", [1])]),
        "duplicate tensor",
    ),
    "bad-alignment": (
        gguf_bytes([kv("general.alignment", 4, struct.pack("<I", 3))]),
        "power of two",
    ),
    "newline-in-key": (
        gguf_bytes([kv("k\nnewline", 8, struct.pack("<Q", 10**12))]),
        "'k\\nnewline'",
    ),
}


@pytest.mark.parametrize(("data", "words"), CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_headers(tmp_path, data, words):
    assert_model_error(write(tmp_path, data), words)


def test_every_truncation_of_a_valid_file_fails_cleanly(tmp_path):
    path = _model(tmp_path / "cut.gguf", vocab=24, emb=8, layers=1, ffn=8)
    size = path.stat().st_size
    read_gguf(path)
    # Every cut through the header and the first tensors, then a sample of the data.
    for cut in sorted({*range(0, 2048), *range(2048, size, 7), size - 1}, reverse=True):
        os.truncate(path, cut)
        assert_model_error(path, "")


def test_random_byte_damage_never_escapes_as_another_error(tmp_path):
    path = _model(tmp_path / "damaged.gguf", vocab=24, emb=8, layers=1, ffn=8)
    header_end = gguf.GGUFReader(path).data_offset  # damage there is what the reader parses
    rng = random.Random(1234)
    failures = 0
    with open(path, "r+b") as f:
        for _ in range(3000):
            spots = [rng.randrange(header_end) for _ in range(rng.randint(1, 4))]
            saved = [os.pread(f.fileno(), 1, i) for i in spots]
            for i in spots:
                os.pwrite(f.fileno(), bytes([rng.choice([0, 0xFF, rng.randrange(256)])]), i)
            try:
                read_gguf(path)
            except ModelFileError as exc:
                failures += 1
                assert "damaged.gguf" in str(exc) and "\n" not in str(exc)
            for i, byte in reversed(list(zip(spots, saved, strict=True))):
                os.pwrite(f.fileno(), byte, i)
    assert failures > 300  # the damage was real enough to be caught often
    read_gguf(path)  # and it was all undone
