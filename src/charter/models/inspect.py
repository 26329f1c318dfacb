"""Know a model from its files: exact parameter counts by component and its architecture.

`charter inspect` reads GGUF or safetensors headers (never the weights), or computes counts
from a bare `config.json`; memory and speed estimates (`memory.py`) build on the report here.
"""

from __future__ import annotations

import functools
import math
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from charter.errors import ModelFileError
from charter.models.gguf import GGML_TYPES, GGUFInfo, read_gguf
from charter.models.safetensors import (
    CONFIG_FILE,
    INDEX_FILE,
    SafetensorsInfo,
    Tensor,
    read_config,
    read_safetensors,
)

COMPONENTS = ("embeddings", "attention", "mlp", "experts", "norms", "output", "other")

#: Refuse layer counts past this: per-layer tables would not fit in memory, and no model has.
MAX_LAYERS = 100_000
#: Largest value a config.json integer may hold (a trillion): anything bigger is corrupt.
MAX_CONFIG_INT = 10**12

# ggml type name -> (elements per block, bytes per block), from ggml's type_traits.
_GGML_BLOCKS = {name: (block, nbytes) for name, block, nbytes in GGML_TYPES.values()}

# llama.cpp's `set_swa_pattern(period)` per architecture, for GGUF files that do not store
# `{arch}.attention.sliding_window_pattern`: layer i slides iff i % period < period - 1.
_GGUF_SWA_PERIOD = {"gemma2": 2, "gemma3": 6, "gemma-embedding": 6, "cohere2": 4, "gpt-oss": 2}

# Hugging Face config families whose counts `count_from_config` knows how to compute.
CONFIG_FAMILIES = (
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen2_moe",
    "qwen3",
    "qwen3_moe",
    "gemma",
    "gemma2",
    "gemma3_text",
    "phi3",
    "gpt2",
)
_TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3_text", "gpt2"}

Format = Literal["gguf", "safetensors", "config"]


@dataclass(frozen=True)
class Architecture:
    """Shape figures of a decoder model; None where the files do not say.

    `kv_widths[i]` is the number of K plus V elements layer i caches per token (0 for a layer
    without attention); `sliding_layers` lists the layers that attend over at most
    `sliding_window` tokens.
    """

    family: str | None = None
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    vocab: int | None = None
    context_length: int | None = None
    ffn: int | None = None
    experts: int | None = None
    experts_used: int | None = None
    sliding_window: int | None = None
    sliding_layers: tuple[int, ...] = ()
    kv_widths: tuple[int, ...] = ()
    tied_embeddings: bool | None = None

    @functools.cached_property
    def kv_split(self) -> tuple[int, int]:
        """(K+V width summed over full-attention layers, the same over sliding layers)."""
        sliding = set(self.sliding_layers)
        slide = sum(w for i, w in enumerate(self.kv_widths) if i in sliding)
        return sum(self.kv_widths) - slide, slide

    def to_dict(self) -> dict[str, Any]:
        widths = set(self.kv_widths)
        return {
            "family": self.family,
            "layers": self.layers,
            "hidden_size": self.hidden,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab,
            "context_length": self.context_length,
            "ffn_size": self.ffn,
            "experts": self.experts,
            "experts_used": self.experts_used,
            "sliding_window": self.sliding_window,
            "sliding_layers": list(self.sliding_layers),
            # One number when every layer caches the same width (the usual case).
            "kv_width_per_layer": widths.pop() if len(widths) == 1 else list(self.kv_widths),
            "tied_embeddings": self.tied_embeddings,
        }


@dataclass(frozen=True)
class ModelReport:
    """What `inspect_model` found. Parameter figures are exact when `counted_from` is
    "tensors" (summed over the file's tensors) and formula results when it is "config".

    `component_bytes` and `stored_bytes` are None for a bare config (no stored weights).
    `head_parameters`/`head_bytes`: the matrix the output head multiplies by, which is the
    token embedding itself when the embeddings are tied (decode reads it every token).
    """

    path: Path
    format: Format
    name: str
    counted_from: Literal["tensors", "config"]
    parameters: int
    active_parameters: int | None
    components: dict[str, int]
    component_bytes: dict[str, int] | None
    stored_bytes: int | None
    stored_types: dict[str, int]
    tensor_count: int
    head_parameters: int
    head_bytes: int | None
    arch: Architecture
    files: tuple[Path, ...] = ()
    file_type: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.components.get("experts", 0) > 0

    @property
    def bits_per_weight(self) -> float | None:
        """Stored bits per parameter, block overhead included (None for a bare config)."""
        if self.stored_bytes is None or not self.parameters:
            return None
        return self.stored_bytes * 8 / self.parameters

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every figure, with `counted_from` saying how the count was obtained."""
        return {
            "path": str(self.path),
            "format": self.format,
            "name": self.name,
            "counted_from": self.counted_from,
            "parameters": self.parameters,
            "active_parameters": self.active_parameters,
            "components": dict(self.components),
            "component_bytes": self.component_bytes,
            "stored_bytes": self.stored_bytes,
            "bits_per_weight": self.bits_per_weight,
            "stored_types": dict(self.stored_types),
            "tensor_count": self.tensor_count,
            "file_type": self.file_type,
            "files": [str(f) for f in self.files],
            "architecture": self.arch.to_dict(),
            "notes": list(self.notes),
        }


def inspect_model(path: str | os.PathLike[str]) -> ModelReport:
    """Inspect the model at `path`: a `.gguf` file, a `.safetensors` file or a folder of
    shards (with its `config.json` when present), or a bare `config.json`.

    Reads headers and metadata only. Returns a `ModelReport`. Raises `ModelFileError`, one
    line naming the file and what is wrong, for any unreadable, truncated or corrupt input,
    and for a bare config whose architecture Charter cannot count.
    """
    path = Path(path)
    kind = _kind(path)
    if kind == "gguf":
        return _from_gguf(read_gguf(path))
    if kind == "safetensors":
        return _from_safetensors(read_safetensors(path))
    return _from_config(path, read_config(path))


# --- naming: which component and layer a tensor belongs to ----------------------------------

_LAYER = re.compile(r"(?:^|\.)(?:blk|layers|layer|h|blocks|decoder_layers)\.(\d+)(?:\.|$)")
_EMBEDDING_PARTS = {
    "token_embd",
    "pos_embd",
    "token_types",
    "embed_tokens",
    "wte",
    "wpe",
    "tok_embeddings",
    "word_embeddings",
    "position_embeddings",
    "embed_positions",
    "token_type_embeddings",
}
_TOKEN_EMBEDDINGS = ("token_embd", "embed_tokens", "wte", "tok_embeddings", "word_embeddings")
_ATTENTION_PARTS = {
    "self_attn",
    "attn",
    "attention",
    "self_attention",
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "qkv_proj",
    "c_attn",
    "query_key_value",
}
_MLP_PARTS = {
    "mlp",
    "feed_forward",
    "block_sparse_moe",
    "ffn",
    "gate_proj",
    "up_proj",
    "down_proj",
    "gate_up_proj",
    "c_fc",
    "fc1",
    "fc2",
    "dense_h_to_4h",
    "dense_4h_to_h",
}


def component_of(name: str) -> str:
    """Which of `COMPONENTS` the tensor called `name` belongs to.

    Knows llama.cpp's GGUF names (`blk.3.attn_q.weight`, `blk.3.ffn_up_exps.weight`,
    `token_embd.weight`, `output.weight`) and Hugging Face names
    (`model.layers.3.self_attn.q_proj.weight`, `model.layers.3.mlp.experts.5.up_proj.weight`,
    `lm_head.weight`). Routers and shared experts run for every token, so they count as MLP.

        >>> component_of("blk.0.ffn_gate_exps.weight"), component_of("lm_head.weight")
        ('experts', 'output')
    """
    parts = name.lower().split(".")
    if any("norm" in p or p.startswith("ln_") or p in ("ln1", "ln2") for p in parts):
        return "norms"
    shared = "shexp" in name or "shared_expert" in name
    if not shared and any(p.endswith("_exps") or p == "experts" for p in parts):
        return "experts"
    if any(p in _EMBEDDING_PARTS for p in parts):
        return "embeddings"
    if parts[0] == "output" or any(p in ("lm_head", "embed_out") for p in parts):
        return "output"
    if any(p.startswith("attn_") or p in _ATTENTION_PARTS for p in parts):
        return "attention"
    if any(p.startswith("ffn_") or p.startswith("exp_probs") or p in _MLP_PARTS for p in parts):
        return "mlp"
    return "other"


def layer_of(name: str) -> int | None:
    """The block index in a tensor name (`blk.7.*`, `model.layers.7.*`, `h.7.*`), or None."""
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


# --- readers ---------------------------------------------------------------------------------


def _kind(path: Path) -> Format:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ModelFileError(f"{path}: file not found") from None
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied") from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc})") from None
    if stat.S_ISDIR(st.st_mode):
        return "safetensors"
    suffix = path.suffix.lower()
    if suffix == ".gguf":
        return "gguf"
    if suffix == ".safetensors" or path.name == INDEX_FILE:
        return "safetensors"
    if suffix == ".json":
        return "config"
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(f"{path}: is not a regular file")
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if head.startswith(b"GGUF"):
        return "gguf"
    if len(head) == 9 and head[8:9] == b"{":  # an 8-byte header length, then JSON
        return "safetensors"
    if head.lstrip()[:1] == b"{":
        return "config"
    raise ModelFileError(
        f"{path}: not a GGUF, safetensors or config.json file (starts with {head[:8]!r})"
    )


@dataclass
class _Tally:
    """Sums over a tensor list: parameters and bytes by component and by stored type."""

    params: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0))
    nbytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0))
    types: dict[str, int] = field(default_factory=dict)
    max_layer: int = -1
    k_width: dict[int, int] = field(default_factory=dict)
    v_width: dict[int, int] = field(default_factory=dict)
    expert_ids: set[int] = field(default_factory=set)
    stacked_experts: int | None = None
    token_embedding: tuple[int, int] | None = None  # (parameters, bytes)
    has_output: bool = False

    def add(self, path: Path, name: str, elements: int, nbytes: int, dtype: str) -> str:
        comp = component_of(name)
        self.params[comp] += elements
        self.nbytes[comp] += nbytes
        self.types[dtype] = self.types.get(dtype, 0) + elements
        layer = layer_of(name)
        if layer is not None:
            if layer >= MAX_LAYERS:
                raise ModelFileError(
                    f"{path}: tensor {name[:80]!r} has an implausible layer index {layer}"
                )
            self.max_layer = max(self.max_layer, layer)
        if comp == "experts":
            m = re.search(r"\.experts\.(\d+)\.", name)
            if m:
                self.expert_ids.add(int(m.group(1)))
        parts = name.split(".")
        if comp == "embeddings" and len(parts) >= 2 and parts[-2] in _TOKEN_EMBEDDINGS:
            self.token_embedding = (elements, nbytes)
        if comp == "output" and name.endswith("weight"):
            self.has_output = True
        return comp


def _from_gguf(info: GGUFInfo) -> ModelReport:
    path, meta, arch_name = info.path, info.metadata, info.architecture
    tally = _Tally()
    notes: list[str] = []
    for name, shape, type_name in info.tensors:
        if type_name not in _GGML_BLOCKS:
            raise ModelFileError(
                f"{path}: tensor {name[:80]!r} has an unknown ggml type {type_name}; "
                "cannot size it (a newer llama.cpp format?)"
            )
        block, block_bytes = _GGML_BLOCKS[type_name]
        elements = math.prod(shape)
        comp = tally.add(path, name, elements, elements // block * block_bytes, type_name)
        leaf = name.split(".")[-2] if name.count(".") >= 2 else ""
        layer = layer_of(name)
        # GGUF shapes are innermost first: a projection is (in, out).
        if layer is not None and len(shape) >= 2:
            if leaf == "attn_k":
                tally.k_width[layer] = shape[1]
            elif leaf == "attn_v":
                tally.v_width[layer] = shape[1]
        if comp == "experts" and len(shape) == 3:
            tally.stacked_experts = shape[2]

    def get(suffix: str) -> int | None:
        value = meta.get(f"{arch_name}.{suffix}") if arch_name else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    layers = get("block_count")
    if layers is not None and layers > MAX_LAYERS:
        raise ModelFileError(f"{path}: implausible block_count {layers}")
    if layers is None and tally.max_layer >= 0:
        layers = tally.max_layer + 1
    heads, kv_heads = get("attention.head_count"), get("attention.head_count_kv")
    if (
        kv_heads is None
        and heads is not None
        and f"{arch_name}.attention.head_count_kv" not in meta
    ):
        kv_heads = heads  # llama.cpp's default when the key is absent
    for key in ("attention.head_count", "attention.head_count_kv", "feed_forward_length"):
        if isinstance(meta.get(f"{arch_name}.{key}"), dict):
            notes.append(f"{key} varies by layer; per-layer values come from tensor shapes")
    hidden = get("embedding_length")
    head_dim = get("attention.key_length") or (hidden // heads if hidden and heads else None)
    value_dim = get("attention.value_length") or head_dim
    if get("attention.kv_lora_rank"):
        notes.append(
            "multi-head latent attention: the KV-cache figure uses the key/value lengths; "
            "llama.cpp's MLA cache may be smaller"
        )
    vocab = info.vocab_size
    if vocab is None and tally.token_embedding is not None and hidden:
        vocab = tally.token_embedding[0] // hidden
    window = get("attention.sliding_window") or None
    sliding: tuple[int, ...] = ()
    if window and layers:
        pattern = meta.get(f"{arch_name}.attention.sliding_window_pattern")
        period = pattern if isinstance(pattern, int) and not isinstance(pattern, bool) else None
        if period is None and isinstance(pattern, dict):
            notes.append(
                "sliding-window pattern is stored per layer and not read: every layer is "
                "counted as full attention (an upper bound on the KV cache)"
            )
        elif period is None:
            period = _GGUF_SWA_PERIOD.get(arch_name or "")
            if period is None:
                notes.append(
                    f"sliding window {window} declared but llama.cpp's layer pattern for "
                    f"{arch_name!r} is not known here: every layer is counted as full "
                    "attention (an upper bound on the KV cache)"
                )
        if period is not None:
            sliding = tuple(i for i in range(layers) if period == 0 or i % period < period - 1)
    experts = get("expert_count") or tally.stacked_experts
    experts_used = get("expert_used_count")
    kv_widths = _kv_widths(layers, tally, kv_heads, head_dim, value_dim)
    arch = Architecture(
        family=arch_name,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        context_length=get("context_length"),
        ffn=get("feed_forward_length"),
        experts=experts if tally.params["experts"] else None,
        experts_used=experts_used if tally.params["experts"] else None,
        sliding_window=window,
        sliding_layers=sliding,
        kv_widths=kv_widths,
        tied_embeddings=(not tally.has_output) if tally.token_embedding else None,
    )
    return _report(
        path=path,
        fmt="gguf",
        name=info.name,
        tally=tally,
        arch=arch,
        tensor_count=info.tensor_count,
        files=(path,),
        file_type=info.file_type,
        notes=notes,
    )


def _from_safetensors(st: SafetensorsInfo) -> ModelReport:
    path = st.path
    cfg = _text_config(st.config) if st.config is not None else {}
    cfg_path = st.config_path or path
    notes = list(st.notes)
    tally = _Tally()
    tied_cfg = _cfg_bool(cfg, "tie_word_embeddings", cfg_path)
    duplicate_head: Tensor | None = None
    for t in st.tensors:
        if tied_cfg and component_of(t.name) == "output" and t.name.endswith("weight"):
            duplicate_head = t  # stored twice by some converters; the model has one matrix
            continue
        tally.add(path, t.name, t.elements, t.nbytes, t.dtype)
        parts = t.name.split(".")
        layer = layer_of(t.name)
        # Hugging Face stores a projection as (out, in).
        if layer is not None and len(t.shape) == 2 and len(parts) >= 2:
            if parts[-2] in ("k_proj", "wk", "key"):
                tally.k_width[layer] = t.shape[0]
            elif parts[-2] in ("v_proj", "wv", "value"):
                tally.v_width[layer] = t.shape[0]
    if duplicate_head is not None:
        notes.append(
            f"{duplicate_head.name} repeats the tied embedding matrix: counted once "
            f"({duplicate_head.nbytes} stored bytes left out of the stored size)"
        )
    if not st.tensors:
        raise ModelFileError(f"{path}: the safetensors header lists no tensors")
    if st.config is None:
        notes.append(f"no {CONFIG_FILE} beside the weights: heads and context are unknown")
    elif isinstance(st.config.get("quantization_config"), dict):
        notes.append(
            "quantised checkpoint: packed tensors hold several weights per stored element, "
            "so the count is of stored elements, not of the weights they encode"
        )
    arch = _config_arch(cfg, cfg_path, tally)
    tied = arch.tied_embeddings
    if tally.token_embedding is not None:
        tied = not tally.has_output
    arch = replace(arch, tied_embeddings=tied)
    name = path.name if path.is_dir() else path.stem
    return _report(
        path=path,
        fmt="safetensors",
        name=name,
        tally=tally,
        arch=arch,
        tensor_count=len(st.tensors) - (duplicate_head is not None),
        files=st.files,
        file_type=_dominant(tally.types),
        notes=notes,
    )


def _from_config(path: Path, raw: dict[str, Any]) -> ModelReport:
    cfg = _text_config(raw)
    components, notes = count_from_config(cfg, path)
    arch = _config_arch(cfg, path, None)
    total = sum(components.values())
    experts = components["experts"]
    active: int | None = total
    if experts and arch.experts and arch.experts_used:
        active = total - experts + experts * arch.experts_used // arch.experts
    elif experts:
        active = None
    tied = bool(arch.tied_embeddings)
    head = components["output"] if not tied else (arch.vocab or 0) * (arch.hidden or 0)
    dtype = raw.get("torch_dtype") or raw.get("dtype")
    notes.insert(
        0, "computed from config.json with the architecture's formula, not summed from tensors"
    )
    if isinstance(dtype, str):
        notes.append(f"the config says the weights are {dtype[:40]}; no weight files were read")
    return ModelReport(
        path=path,
        format="config",
        name=path.parent.name or path.stem,
        counted_from="config",
        parameters=total,
        active_parameters=active,
        components=components,
        component_bytes=None,
        stored_bytes=None,
        stored_types={},
        tensor_count=0,
        head_parameters=head,
        head_bytes=None,
        arch=arch,
        files=(path,),
        notes=tuple(notes),
    )


def _report(
    *,
    path: Path,
    fmt: Format,
    name: str,
    tally: _Tally,
    arch: Architecture,
    tensor_count: int,
    files: tuple[Path, ...],
    file_type: str | None,
    notes: list[str],
) -> ModelReport:
    total = sum(tally.params.values())
    stored = sum(tally.nbytes.values())
    active: int | None = total
    if tally.params["experts"]:
        if arch.experts and arch.experts_used:
            # Every expert has the same shape, so the active share is exact.
            active = (
                total
                - tally.params["experts"]
                + round(tally.params["experts"] * arch.experts_used / arch.experts)
            )
        else:
            active = None
            notes.append("experts used per token unknown: active parameters not computed")
    if arch.tied_embeddings and tally.token_embedding is not None:
        head_params, head_bytes = tally.token_embedding
    else:
        head_params, head_bytes = tally.params["output"], tally.nbytes["output"]
    if not arch.kv_widths:
        notes.append("no attention shapes found: the KV cache is counted as zero")
    return ModelReport(
        path=path,
        format=fmt,
        name=name,
        counted_from="tensors",
        parameters=total,
        active_parameters=active,
        components=dict(tally.params),
        component_bytes=dict(tally.nbytes),
        stored_bytes=stored,
        stored_types=dict(sorted(tally.types.items(), key=lambda kv: -kv[1])),
        tensor_count=tensor_count,
        head_parameters=head_params,
        head_bytes=head_bytes,
        arch=arch,
        files=files,
        file_type=file_type,
        notes=tuple(notes),
    )


def _kv_widths(
    layers: int | None,
    tally: _Tally | None,
    kv_heads: int | None,
    head_dim: int | None,
    value_dim: int | None,
) -> tuple[int, ...]:
    """Per layer, K plus V elements cached per token: from the K/V projection shapes when the
    file has them (exact, even when layers differ), else kv_heads × head dims."""
    if not layers:
        return ()
    k_default = kv_heads * head_dim if kv_heads and head_dim else 0
    v_default = kv_heads * value_dim if kv_heads and value_dim else 0
    if tally is not None and (tally.k_width or tally.v_width):
        return tuple(tally.k_width.get(i, 0) + tally.v_width.get(i, 0) for i in range(layers))
    return (k_default + v_default,) * layers


def _dominant(types: dict[str, int]) -> str | None:
    return max(types, key=lambda t: types[t]) if types else None


# --- Hugging Face config.json ---------------------------------------------------------------


def _text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a config: multimodal configs nest it in `text_config`."""
    inner = cfg.get("text_config")
    if isinstance(inner, dict) and "num_hidden_layers" not in cfg:
        return {**inner, "model_type": inner.get("model_type", cfg.get("model_type"))}
    return cfg


def _cfg_int(cfg: dict[str, Any], path: Path, *keys: str, zero_ok: bool = False) -> int | None:
    """The first of `keys` present in `cfg` as an integer; None when none is set.

    Raises `ModelFileError` naming the key when its value is not a plausible integer.
    """
    for key in keys:
        value = cfg.get(key)
        if value is None:
            continue
        low = 0 if zero_ok else 1
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (low <= value <= MAX_CONFIG_INT)
        ):
            raise ModelFileError(
                f"{path}: {key} must be an integer from {low} to {MAX_CONFIG_INT}, "
                f"not {_shown(value)}"
            )
        return value
    return None


def _shown(value: Any) -> str:
    """A config value, short and safe for a one-line message (containers by type only)."""
    if isinstance(value, (str, bool, float)) or (isinstance(value, int) and value < 10**40):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a {type(value).__name__}" if not isinstance(value, int) else "a huge number"


def _cfg_bool(cfg: dict[str, Any], key: str, path: Path) -> bool | None:
    value = cfg.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ModelFileError(f"{path}: {key} must be true or false, not {_shown(value)}")
    return value


def _config_arch(cfg: dict[str, Any], path: Path, tally: _Tally | None) -> Architecture:
    family = cfg.get("model_type") if isinstance(cfg.get("model_type"), str) else None
    layers = _cfg_int(cfg, path, "num_hidden_layers", "n_layer", "num_layers")
    if layers is not None and layers > MAX_LAYERS:
        raise ModelFileError(f"{path}: implausible num_hidden_layers {layers}")
    if layers is None and tally is not None and tally.max_layer >= 0:
        layers = tally.max_layer + 1
    hidden = _cfg_int(cfg, path, "hidden_size", "n_embd", "d_model")
    heads = _cfg_int(cfg, path, "num_attention_heads", "n_head")
    kv_heads = _cfg_int(cfg, path, "num_key_value_heads")
    if kv_heads is None and heads is not None:
        kv_heads = 1 if cfg.get("multi_query") is True else heads
    head_dim = _cfg_int(cfg, path, "head_dim") or (hidden // heads if hidden and heads else None)
    vocab = _cfg_int(cfg, path, "vocab_size")
    if vocab is None and tally is not None and tally.token_embedding and hidden:
        vocab = tally.token_embedding[0] // hidden
    experts = _cfg_int(
        cfg, path, "num_local_experts", "num_experts", "n_routed_experts", zero_ok=True
    )
    used = _cfg_int(cfg, path, "num_experts_per_tok", "moe_topk", zero_ok=True)
    if tally is not None and not experts and tally.expert_ids:
        experts = max(tally.expert_ids) + 1
    window = _cfg_int(cfg, path, "sliding_window", zero_ok=True) or None
    sliding = _config_sliding(cfg, path, family, layers, window)
    tied = _cfg_bool(cfg, "tie_word_embeddings", path)
    if tied is None:
        tied = family in _TIED_BY_DEFAULT
    is_moe = bool(experts) and (tally is None or bool(tally.params["experts"]))
    return Architecture(
        family=family,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        context_length=_cfg_int(
            cfg, path, "max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"
        ),
        ffn=_cfg_int(cfg, path, "intermediate_size", "n_inner", "ffn_dim"),
        experts=experts if is_moe else None,
        experts_used=used if is_moe else None,
        sliding_window=window if sliding else None,
        sliding_layers=sliding,
        kv_widths=_kv_widths(layers, tally, kv_heads, head_dim, head_dim),
        tied_embeddings=tied,
    )


def _config_sliding(
    cfg: dict[str, Any], path: Path, family: str | None, layers: int | None, window: int | None
) -> tuple[int, ...]:
    """Which layers use the sliding window, by the rules of each Hugging Face family."""
    if not window or not layers:
        return ()
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        return tuple(i for i, t in enumerate(types) if isinstance(t, str) and "sliding" in t)
    if cfg.get("use_sliding_window") is False:
        return ()
    period = None
    if family == "gemma2":
        period = 2
    elif family in ("gemma3", "gemma3_text", "cohere2"):
        period = _cfg_int(cfg, path, "sliding_window_pattern") or (6 if family != "cohere2" else 4)
    if period is not None:
        return tuple(i for i in range(layers) if (i + 1) % period)
    if family in ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe"):
        first = _cfg_int(cfg, path, "max_window_layers", zero_ok=True) or 0
        return tuple(range(first, layers))
    return tuple(range(layers))  # Mistral's rule: every layer slides


def count_from_config(cfg: dict[str, Any], path: Path) -> tuple[dict[str, int], list[str]]:
    """Parameters by component computed from a Hugging Face config (the formula, no tensors).

    Knows the families in `CONFIG_FAMILIES`: llama-style decoders (with Mistral, Qwen2/3,
    Gemma 1-3 and Phi-3 variations: biases, extra norms, explicit head_dim), Mixtral- and
    Qwen-style mixtures of experts, and GPT-2.

    Returns (components, notes). Raises `ModelFileError` for an unknown family or a config
    missing a figure the formula needs.
    """
    family = cfg.get("model_type")
    if family == "gemma3":
        family = "gemma3_text"
    if family not in CONFIG_FAMILIES:
        raise ModelFileError(
            f"{path}: cannot compute a parameter count for model_type {_shown(family)} "
            f"from config.json alone (known: {', '.join(CONFIG_FAMILIES)}); inspect its "
            "safetensors files instead"
        )
    notes: list[str] = []

    def need(*keys: str) -> int:
        value = _cfg_int(cfg, path, *keys)
        if value is None:
            raise ModelFileError(f"{path}: {keys[0]} is missing; it is needed to count parameters")
        return value

    if family == "gpt2":
        return _count_gpt2(cfg, path, need), notes

    h, n_layers, heads, vocab = (
        need("hidden_size"),
        need("num_hidden_layers"),
        need("num_attention_heads"),
        need("vocab_size"),
    )
    if n_layers > MAX_LAYERS:
        raise ModelFileError(f"{path}: implausible num_hidden_layers {n_layers}")
    kv = _cfg_int(cfg, path, "num_key_value_heads") or heads
    hd = _cfg_int(cfg, path, "head_dim") or h // heads
    attention_bias = bool(cfg.get("attention_bias"))
    qkv_bias = family in ("qwen2", "qwen2_moe") or attention_bias
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h
    attn += (heads * hd + 2 * kv * hd if qkv_bias else 0) + (h if attention_bias else 0)
    norms = (4 if family in ("gemma2", "gemma3_text") else 2) * h
    if family in ("qwen3", "qwen3_moe", "gemma3_text"):
        norms += 2 * hd  # q_norm and k_norm over one head

    def dense(width: int) -> int:
        return 3 * h * width + (2 * width + h if cfg.get("mlp_bias") is True else 0)

    comp = dict.fromkeys(COMPONENTS, 0)
    comp["embeddings"] = vocab * h
    tied = _cfg_bool(cfg, "tie_word_embeddings", path)
    if tied is None:
        tied = family in _TIED_BY_DEFAULT
        notes.append(
            f"tie_word_embeddings not set: {'tied' if tied else 'untied'}, the {family} default"
        )
    comp["output"] = 0 if tied else vocab * h
    comp["norms"] = n_layers * norms + h
    comp["attention"] = n_layers * attn
    if family == "mixtral":
        experts = need("num_local_experts")
        comp["experts"] = n_layers * experts * 3 * h * need("intermediate_size")
        comp["mlp"] = n_layers * h * experts  # the router
    elif family in ("qwen2_moe", "qwen3_moe"):
        experts = need("num_experts")
        step = _cfg_int(cfg, path, "decoder_sparse_step") or 1
        dense_only = cfg.get("mlp_only_layers") or []
        if not isinstance(dense_only, list):
            raise ModelFileError(f"{path}: mlp_only_layers must be a list of layer indices")
        moe_layers = [i for i in range(n_layers) if i not in dense_only and (i + 1) % step == 0]
        n_moe = len(moe_layers)
        expert_width = need("moe_intermediate_size")
        shared = _cfg_int(cfg, path, "shared_expert_intermediate_size") or 0
        comp["experts"] = n_moe * experts * 3 * h * expert_width
        comp["mlp"] = n_moe * (h * experts + (3 * h * shared + h if shared else 0))
        comp["mlp"] += (n_layers - n_moe) * dense(need("intermediate_size"))
    else:
        comp["mlp"] = n_layers * dense(need("intermediate_size"))
    return comp, notes


def _count_gpt2(cfg: dict[str, Any], path: Path, need: Any) -> dict[str, int]:
    h, n_layers, vocab = need("n_embd"), need("n_layer"), need("vocab_size")
    if n_layers > MAX_LAYERS:
        raise ModelFileError(f"{path}: implausible n_layer {n_layers}")
    positions = need("n_positions")
    inner = _cfg_int(cfg, path, "n_inner") or 4 * h
    comp = dict.fromkeys(COMPONENTS, 0)
    comp["embeddings"] = vocab * h + positions * h
    comp["attention"] = n_layers * (h * 3 * h + 3 * h + h * h + h)  # c_attn, c_proj with biases
    comp["mlp"] = n_layers * (h * inner + inner + inner * h + h)
    comp["norms"] = n_layers * 4 * h + 2 * h  # LayerNorm has weight and bias
    return comp
