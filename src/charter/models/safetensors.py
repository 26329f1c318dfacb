"""Read safetensors headers (one file or a folder of shards) and Hugging Face `config.json`.

`charter inspect` needs every tensor's name, dtype and shape without loading weights or the
`safetensors` package: the format is an 8-byte length, a JSON header, then raw data.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charter.models._messages import file_error as _error
from charter.models._messages import reason as _reason
from charter.models._messages import show as _show

#: The `safetensors` library refuses headers over 100 MB; so do we.
MAX_HEADER_BYTES = 100_000_000
MAX_CONFIG_BYTES = 10_000_000

#: safetensors dtype -> bits per element (sub-byte types are packed).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}

INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Tensor:
    """One tensor as a header describes it; `shape` in the file's own order."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsInfo:
    """The tensors of one safetensors file or of every shard in a folder.

    `files` lists the shards read, `metadata` merges their `__metadata__` maps, and `config`
    is the parsed `config.json` beside them (None when there is none).
    """

    path: Path
    files: tuple[Path, ...]
    tensors: tuple[Tensor, ...]
    metadata: dict[str, str] = field(repr=False)
    config: dict[str, Any] | None = field(default=None, repr=False)
    config_path: Path | None = None
    notes: tuple[str, ...] = ()

    @property
    def data_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


def read_safetensors(path: str | os.PathLike[str]) -> SafetensorsInfo:
    """Read the header of a `.safetensors` file, or of every shard in a model folder.

    A folder uses `model.safetensors.index.json` when present (every shard it names must
    exist), else every `*.safetensors` file in it. A `config.json` in the same folder is read
    too. Never reads tensor data.

    Returns a `SafetensorsInfo`. Raises `ModelFileError`, with a one-line message naming the
    file, for anything wrong: missing, unreadable, truncated, a corrupt or oversized header,
    an unknown dtype, offsets that disagree with shapes, a folder without safetensors files,
    or a bad `config.json`. No other exception escapes, whatever the bytes.
    """
    path = Path(path)
    st = _stat(path)
    if stat.S_ISDIR(st.st_mode):
        folder = path
        files, notes = _shards(folder)
    else:
        folder = path.parent
        files, notes = (path,), []
    tensors: list[Tensor] = []
    metadata: dict[str, str] = {}
    seen: dict[str, Path] = {}
    for file in files:
        file_tensors, file_meta = _read_file(file)
        for t in file_tensors:
            if t.name in seen:
                raise _error(
                    file, f"tensor {_show(t.name)} is also in {seen[t.name].name} (duplicate name)"
                )
            seen[t.name] = file
        tensors += file_tensors
        metadata.update(file_meta)
    config_path = folder / CONFIG_FILE
    config = read_config(config_path) if config_path.is_file() else None
    return SafetensorsInfo(
        path=path,
        files=tuple(files),
        tensors=tuple(tensors),
        metadata=metadata,
        config=config,
        config_path=config_path if config is not None else None,
        notes=tuple(notes),
    )


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a Hugging Face `config.json`.

    Returns the JSON object. Raises `ModelFileError` naming the file when it is missing,
    unreadable, over 10 MB, not UTF-8, not JSON (with line and column), or not an object.
    """
    path = Path(path)
    st = _stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _error(path, "is not a regular file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise _error(path, f"is {st.st_size} bytes, too large for a config.json")
    raw = _read_bytes(path, 0, st.st_size)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _error(path, f"not UTF-8 text (bad byte at {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise _error(
            path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise _error(path, f"invalid JSON ({_reason(exc)})") from None
    if not isinstance(data, dict):
        raise _error(path, f"expected a JSON object, found {type(data).__name__}")
    return data


def _shards(folder: Path) -> tuple[tuple[Path, ...], list[str]]:
    """The shard files of a model folder, in a stable order, and any notes about the choice."""
    index = folder / INDEX_FILE
    if index.is_file():
        data = read_config(index)
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise _error(index, "has no valid weight_map (tensor name -> shard file)")
        names = sorted(set(weight_map.values()))
        for name in names:
            if Path(name).name != name:
                raise _error(index, f"names a shard outside the folder: {_show(name)}")
            if not (folder / name).is_file():
                raise _error(index, f"names shard {_show(name)}, which is missing")
        return tuple(folder / n for n in names), []
    try:
        found = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    except OSError as exc:
        raise _error(folder, f"cannot list it ({_reason(exc)})") from None
    if not found:
        raise _error(
            folder,
            "no *.safetensors files in this folder (inspect takes a .gguf file, a "
            ".safetensors file or folder, or a config.json)",
        )
    # Mistral's repositories ship the same weights twice: HF shards and consolidated.*.
    consolidated = [p for p in found if p.name.startswith("consolidated")]
    if consolidated and len(consolidated) < len(found):
        skipped = ", ".join(p.name for p in consolidated)
        return tuple(p for p in found if p not in consolidated), [
            f"skipped {skipped}: the same weights in another layout"
        ]
    return tuple(found), []


def _read_file(path: Path) -> tuple[list[Tensor], dict[str, str]]:
    st = _stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise _error(path, "is a directory, not a safetensors file")
    if not stat.S_ISREG(st.st_mode):
        raise _error(path, "is not a regular file")
    size = st.st_size
    if size < 8:
        raise _error(path, f"truncated: {size} bytes, too short for a safetensors header")
    header_len = int.from_bytes(_read_bytes(path, 0, 8), "little")
    if header_len > MAX_HEADER_BYTES:
        raise _error(
            path,
            f"corrupt header: header length {header_len} is over the "
            f"{MAX_HEADER_BYTES}-byte limit (not a safetensors file?)",
        )
    if 8 + header_len > size:
        raise _error(
            path, f"truncated: the header needs {8 + header_len} bytes but the file has {size}"
        )
    raw = _read_bytes(path, 8, header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _error(path, f"corrupt header: not UTF-8 (bad byte at {8 + exc.start})") from None
    except json.JSONDecodeError as exc:
        raise _error(
            path, f"corrupt header: invalid JSON at byte {8 + exc.pos}: {exc.msg}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise _error(path, f"corrupt header: invalid JSON ({_reason(exc)})") from None
    if not isinstance(header, dict):
        raise _error(path, f"corrupt header: expected a JSON object, found {type(header).__name__}")
    data_size = size - 8 - header_len
    metadata: dict[str, str] = {}
    tensors: list[Tensor] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _error(path, "corrupt header: __metadata__ must map strings to strings")
            metadata = entry
            continue
        tensors.append(_tensor(path, name, entry, data_size))
    return tensors, metadata


def _tensor(path: Path, name: str, entry: Any, data_size: int) -> Tensor:
    where = f"tensor {_show(name)}"
    if not isinstance(entry, dict):
        raise _error(path, f"corrupt header: {where} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str):
        raise _error(path, f"corrupt header: {where} has no dtype")
    if dtype not in DTYPE_BITS:
        raise _error(path, f"unknown dtype {_show(dtype)} for {where}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _error(path, f"corrupt header: {where} has an invalid shape {_brief(shape)}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise _error(path, f"corrupt header: {where} has invalid data_offsets {_brief(offsets)}")
    elements = math.prod(shape)
    if elements >= 2**63:
        raise _error(path, f"corrupt header: {where} has an implausible shape {_brief(shape)}")
    bits = elements * DTYPE_BITS[dtype]
    if bits % 8:
        raise _error(
            path, f"corrupt header: {where} of {dtype} {_brief(shape)} does not fill whole bytes"
        )
    nbytes = bits // 8
    begin, end = offsets
    if end - begin != nbytes:
        raise _error(
            path,
            f"corrupt header: {where} of {dtype} {_brief(shape)} needs {nbytes} bytes "
            f"but its data_offsets span {end - begin}",
        )
    if end > data_size:
        raise _error(
            path,
            f"truncated: the data of {where} ends at byte {end} of the data section, "
            f"which has {data_size} bytes",
        )
    return Tensor(name, tuple(shape), dtype, nbytes)


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise _error(path, "file not found") from None
    except PermissionError:
        raise _error(path, "permission denied") from None
    except (OSError, ValueError) as exc:
        raise _error(path, f"cannot read it ({_reason(exc)})") from None


def _read_bytes(path: Path, offset: int, n: int) -> bytes:
    try:
        with open(path, "rb", buffering=0) as f:
            f.seek(offset)
            data = f.read(n)
    except PermissionError:
        raise _error(path, "permission denied") from None
    except (OSError, ValueError) as exc:
        raise _error(path, f"cannot read it ({_reason(exc)})") from None
    if len(data) < n:  # the file shrank after we measured it
        raise _error(path, f"truncated: unexpected end of file at byte {offset + len(data)}")
    return data


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _brief(value: Any) -> str:
    """A value from the header, short enough for a one-line message."""
    try:
        text = json.dumps(value) if not isinstance(value, str) else repr(value)
    except (ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
