"""Read a GGUF file's header (metadata and tensor table) without llama.cpp and without numpy.

`charter models` and the server's model checks need a model's size, shape and context length
before, or instead of, loading it; and a broken file must fail as one clear line, never a crash.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charter.errors import ModelFileError
from charter.models._messages import file_error as _error
from charter.models._messages import reason as _reason
from charter.models._messages import show as _show

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

_CHUNK = 1 << 20
_MAX_KEY_BYTES = 65_535  # the GGUF spec's limit on key length
_MAX_KEPT_STRING = 1 << 20  # longer string values are summarised, not held in memory
_MAX_DIMS = 4  # GGML_MAX_DIMS: llama.cpp rejects tensors with more
_MAX_ARRAY_DEPTH = 8

# GGUF metadata value types: id -> (name, layout or None for the variable-size types).
_STRING, _ARRAY = 8, 9
_VALUE_TYPES: dict[int, tuple[str, struct.Struct | None]] = {
    type_id: (name, struct.Struct(fmt) if fmt else None)
    for type_id, name, fmt in [
        (0, "uint8", "<B"),
        (1, "int8", "<b"),
        (2, "uint16", "<H"),
        (3, "int16", "<h"),
        (4, "uint32", "<I"),
        (5, "int32", "<i"),
        (6, "float32", "<f"),
        (7, "bool", "<?"),
        (_STRING, "string", None),
        (_ARRAY, "array", None),
        (10, "uint64", "<Q"),
        (11, "int64", "<q"),
        (12, "float64", "<d"),
    ]
}

# ggml tensor types: id -> (name, elements per block, bytes per block), as in ggml.c's
# type_traits. Ids missing here were removed from ggml and never appear in valid files.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

# `general.file_type` (llama_ftype): the quantisation a file was made with, as people name it.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "Q4_1_SOME_F16",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
}

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF header says about a model. Fields absent from the file are None.

    `metadata` holds every scalar value; an array is summarised as
    `{"type": "array[<item type>]", "length": n}` and a string over 1 MiB as
    `{"type": "string", "length": n}`. `tensors` lists `(name, shape, ggml type)` with the
    shape in GGUF order (innermost dimension first, as `gguf-dump` prints it).
    """

    path: Path
    file_size: int
    version: int
    architecture: str | None
    name: str
    parameter_count: int
    context_length: int | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    vocab_size: int | None
    file_type: str | None
    tensor_count: int
    has_chat_template: bool
    metadata: dict[str, Any] = field(hash=False, repr=False)
    tensors: tuple[tuple[str, tuple[int, ...], str], ...] = field(hash=False, repr=False)

    def to_dict(self, *, include_tensors: bool = False) -> dict[str, Any]:
        """A JSON-ready dict of every field; `tensors` only when asked (there are hundreds)."""
        out: dict[str, Any] = {
            "path": str(self.path),
            "file_size": self.file_size,
            "version": self.version,
            "architecture": self.architecture,
            "name": self.name,
            "parameter_count": self.parameter_count,
            "context_length": self.context_length,
            "block_count": self.block_count,
            "embedding_length": self.embedding_length,
            "head_count": self.head_count,
            "head_count_kv": self.head_count_kv,
            "vocab_size": self.vocab_size,
            "file_type": self.file_type,
            "tensor_count": self.tensor_count,
            "has_chat_template": self.has_chat_template,
            # NaN and infinity are not JSON; a corrupt-but-parseable header can hold them.
            "metadata": {
                k: str(v) if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in self.metadata.items()
            },
        }
        if include_tensors:
            out["tensors"] = [
                {"name": n, "shape": list(shape), "type": t} for n, shape, t in self.tensors
            ]
        return out


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Read the header of the GGUF file at `path` (versions 2 and 3, little-endian).

    Reads only the metadata and the tensor table, never the tensor data, and checks that the
    data the table points at fits in the file.

    Returns a `GGUFInfo`. Raises `ModelFileError`, with a one-line message that starts with the
    path, for any problem: missing, a directory, unreadable, not GGUF, an unsupported version,
    truncated, or a corrupt header. No other exception escapes, whatever the file holds.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise _error(path, "file not found") from None
    except PermissionError:
        raise _error(path, "permission denied") from None
    except (OSError, ValueError) as exc:
        raise _error(path, f"cannot read it ({_reason(exc)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise _error(path, "is a directory, not a GGUF file")
    if not stat.S_ISREG(st.st_mode):
        # Opening a FIFO would block forever; devices are never model files.
        raise _error(path, "is not a regular file")
    try:
        with open(path, "rb", buffering=0) as f:
            return _parse(path, _Reader(f, path, os.fstat(f.fileno()).st_size))
    except PermissionError:
        raise _error(path, "permission denied") from None
    except OSError as exc:
        raise _error(path, f"cannot read it ({_reason(exc)})") from None


def _parse(path: Path, r: _Reader) -> GGUFInfo:
    if r.file_size == 0:
        raise _error(path, "the file is empty, not a GGUF file")
    magic = r.read(min(4, r.file_size), "the magic number")
    if magic != GGUF_MAGIC:
        raise _error(path, f"not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    version = r.u32("the version")
    if version not in SUPPORTED_VERSIONS:
        if int.from_bytes(version.to_bytes(4, "little"), "big") in SUPPORTED_VERSIONS:
            raise _error(path, "big-endian GGUF files are not supported")
        raise _error(path, f"unsupported GGUF version {version} (supported: 2 and 3)")
    tensor_count = r.u64("the tensor count")
    kv_count = r.u64("the metadata count")
    # Smallest possible entries: a KV is a key length, a type and one byte; a tensor info is
    # a name length, n_dims, a type and an offset.
    r.check_count(kv_count, 13, "metadata entries")
    r.check_count(tensor_count, 24, "tensors")

    metadata: dict[str, Any] = {}
    for i in range(kv_count):
        key = r.string(f"the key of metadata entry {i}", limit=_MAX_KEY_BYTES)
        if key in metadata:
            raise _error(path, f"corrupt header: duplicate metadata key {_show(key)}")
        metadata[key] = r.value(r.u32(f"the type of {_show(key)}"), _show(key))

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not _is_int(alignment) or alignment <= 0 or alignment & (alignment - 1):
        raise _error(
            path, f"corrupt header: general.alignment must be a power of two, not {alignment!r}"
        )

    tensors: list[tuple[str, tuple[int, ...], str]] = []
    spans: list[tuple[str, int, int | None]] = []  # name, offset, byte size (None: unknown)
    names: set[str] = set()
    parameter_count = 0
    for i in range(tensor_count):
        name = r.string(f"the name of tensor {i}", limit=_MAX_KEY_BYTES)
        if name in names:
            raise _error(path, f"corrupt header: duplicate tensor name {_show(name)}")
        names.add(name)
        n_dims = r.u32(f"the dimension count of tensor {_show(name)}")
        if n_dims > _MAX_DIMS:
            raise _error(
                path, f"corrupt header: tensor {_show(name)} has {n_dims} dimensions (at most 4)"
            )
        shape = tuple(r.u64(f"the shape of tensor {_show(name)}") for _ in range(n_dims))
        elements = math.prod(shape)
        if elements >= 2**63:
            raise _error(
                path, f"corrupt header: tensor {_show(name)} has an implausible shape {list(shape)}"
            )
        type_id = r.u32(f"the type of tensor {_show(name)}")
        offset = r.u64(f"the data offset of tensor {_show(name)}")
        if offset % alignment:
            raise _error(
                path, f"corrupt header: tensor {_show(name)} data offset {offset} is not aligned"
            )
        if type_id in GGML_TYPES:
            type_name, block, block_bytes = GGML_TYPES[type_id]
            if shape and shape[0] % block:
                raise _error(
                    path,
                    f"corrupt header: tensor {_show(name)} of type {type_name} has shape "
                    f"{list(shape)}, not a multiple of its block size {block}",
                )
            spans.append((name, offset, elements // block * block_bytes))
        else:
            type_name = f"unknown({type_id})"
            spans.append((name, offset, None))
        tensors.append((name, shape, type_name))
        parameter_count += elements

    data_start = -(-r.tell() // alignment) * alignment
    for name, offset, size in spans:
        end = data_start + offset + (size or 0)
        if end > r.file_size:
            raise _error(
                path,
                f"truncated: the data of tensor {_show(name)} ends at byte "
                f"{end} but the file has {r.file_size} bytes",
            )

    return _info(path, r.file_size, version, metadata, tensors, parameter_count)


def _info(
    path: Path,
    file_size: int,
    version: int,
    metadata: dict[str, Any],
    tensors: list[tuple[str, tuple[int, ...], str]],
    parameter_count: int,
) -> GGUFInfo:
    arch = metadata.get("general.architecture")
    arch = arch if isinstance(arch, str) else None

    def arch_int(suffix: str) -> int | None:
        value = metadata.get(f"{arch}.{suffix}") if arch else None
        return value if _is_int(value) else None

    tokens = metadata.get("tokenizer.ggml.tokens")
    vocab_size = (
        tokens["length"]
        if isinstance(tokens, dict) and tokens["type"] != "string"
        else arch_int("vocab_size")
    )
    name = metadata.get("general.name")
    file_type = metadata.get("general.file_type")
    template = metadata.get("tokenizer.chat_template")
    return GGUFInfo(
        path=path,
        file_size=file_size,
        version=version,
        architecture=arch,
        name=name if isinstance(name, str) and name else path.stem,
        parameter_count=parameter_count,
        context_length=arch_int("context_length"),
        block_count=arch_int("block_count"),
        embedding_length=arch_int("embedding_length"),
        head_count=arch_int("attention.head_count"),
        head_count_kv=arch_int("attention.head_count_kv"),
        vocab_size=vocab_size,
        file_type=(
            FILE_TYPES.get(file_type, f"unknown({file_type})") if _is_int(file_type) else None
        ),
        tensor_count=len(tensors),
        has_chat_template=(isinstance(template, str) and template != "")
        or (isinstance(template, dict) and template["type"] == "string"),
        metadata=metadata,
        tensors=tuple(tensors),
    )


class _Reader:
    """Little-endian reads from a file through one buffer, with every length checked first."""

    def __init__(self, f: Any, path: Path, file_size: int):
        self._f = f
        self.path = path
        self.file_size = file_size
        self._buf = b""
        self._pos = 0  # position in _buf
        self._base = 0  # file offset of _buf[0]
        self._depth = 0

    def tell(self) -> int:
        return self._base + self._pos

    def _fill(self, n: int, what: str) -> None:
        """Make sure `n` bytes are buffered at the current position."""
        if self.tell() + n > self.file_size:
            raise self._truncated(what)
        rest = self._buf[self._pos :]
        start = self.tell() + len(rest)
        self._f.seek(start)
        # Never ask for more than the file holds: read(n) allocates n bytes up front.
        more = self._f.read(min(max(n - len(rest), _CHUNK), self.file_size - start))
        self._base, self._pos, self._buf = self.tell(), 0, rest + more
        if len(self._buf) < n:  # the file shrank after we measured it
            raise self._truncated(what)

    def _truncated(self, what: str) -> ModelFileError:
        return _error(
            self.path,
            f"truncated: unexpected end of file at byte {self.tell()} while reading {what}",
        )

    def read(self, n: int, what: str) -> bytes:
        if self._pos + n > len(self._buf):
            self._fill(n, what)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        if self._pos + n <= len(self._buf):
            self._pos += n
        elif self.tell() + n > self.file_size:
            raise self._truncated(what)
        else:
            self._base, self._pos, self._buf = self.tell() + n, 0, b""

    def _unpack(self, fmt: struct.Struct, what: str) -> Any:
        if self._pos + fmt.size > len(self._buf):
            self._fill(fmt.size, what)
        (value,) = fmt.unpack_from(self._buf, self._pos)
        self._pos += fmt.size
        return value

    def u32(self, what: str) -> int:
        return self._unpack(_U32, what)

    def u64(self, what: str) -> int:
        return self._unpack(_U64, what)

    def check_count(self, count: int, min_bytes: int, what: str) -> None:
        """Refuse a count of items that could not fit in the file, before looping over it."""
        if count * min_bytes > self.file_size:
            raise _error(
                self.path,
                f"corrupt header: implausible number of {what} ({count}) "
                f"for a file of {self.file_size} bytes",
            )

    def _length(self, what: str, limit: int | None = None) -> int:
        n = self.u64(f"the length of {what}")
        if n > self.file_size or (limit is not None and n > limit):
            raise _error(
                self.path,
                f"corrupt header: implausible length {n} for {what} "
                f"in a file of {self.file_size} bytes",
            )
        return n

    def string(self, what: str, *, limit: int | None = None) -> str:
        return self.read(self._length(what, limit), what).decode("utf-8", "replace")

    def value(self, type_id: int, key: str) -> Any:
        """One metadata value of type `type_id`; arrays and huge strings come back summarised."""
        if type_id == _STRING:
            n = self._length(f"the value of {key}")
            if n > _MAX_KEPT_STRING:
                self.skip(n, f"the value of {key}")
                return {"type": "string", "length": n}
            return self.read(n, f"the value of {key}").decode("utf-8", "replace")
        if type_id == _ARRAY:
            item_type = self.u32(f"the item type of {key}")
            count = self.u64(f"the length of {key}")
            self._skip_items(item_type, count, key)
            return {"type": f"array[{_VALUE_TYPES[item_type][0]}]", "length": count}
        layout = _VALUE_TYPES.get(type_id, ("", None))[1]
        if layout is None:
            raise _error(self.path, f"corrupt header: unknown value type {type_id} for {key}")
        return self._unpack(layout, f"the value of {key}")

    def _skip_items(self, item_type: int, count: int, key: str) -> None:
        if item_type not in _VALUE_TYPES:
            raise _error(
                self.path, f"corrupt header: unknown array item type {item_type} for {key}"
            )
        layout = _VALUE_TYPES[item_type][1]
        # Smallest item: a fixed-size value, a string's length, or a nested array's header.
        item_bytes = layout.size if layout else (8 if item_type == _STRING else 12)
        self.check_count(count, item_bytes, f"items in {key}")
        what = f"the items of {key}"
        if layout:
            self.skip(count * item_bytes, what)
        elif item_type == _STRING:
            self._skip_strings(count, what)
        else:
            self._depth += 1
            if self._depth > _MAX_ARRAY_DEPTH:
                raise _error(self.path, f"corrupt header: arrays nested too deep in {key}")
            for _ in range(count):
                inner_type = self.u32(what)
                self._skip_items(inner_type, self.u64(what), key)
            self._depth -= 1

    def _skip_strings(self, count: int, what: str) -> None:
        """Skip `count` strings; the hot loop for tokenizer vocabularies (~100k strings)."""
        limit = self.file_size
        for _ in range(count):
            if self._pos + 8 > len(self._buf):
                self._fill(8, what)
            (n,) = _U64.unpack_from(self._buf, self._pos)
            self._pos += 8
            if n > limit:
                raise _error(
                    self.path,
                    f"corrupt header: implausible string length {n} in "
                    f"{what} for a file of {limit} bytes",
                )
            if self._pos + n <= len(self._buf):
                self._pos += n
            else:
                self.skip(n, what)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
