"""Turn a llama-architecture GGUF file into a PyTorch `LlamaForCausalLM` and its tokenizer.

transformers' own GGUF path needs `accelerate`, parses the file once per object (~5 s each
here) and swaps BOS and EOS; we read it once, dequantise with `gguf.quants.dequantize` (the
weights llama.cpp runs, in float32) and tokenize as llama.cpp does. See docs/interp.md.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charter.errors import ModelFileError
from charter.models.gguf import read_gguf

# GGUF metadata value types (the spec's ids) that have a fixed width.
_SCALARS: dict[int, struct.Struct] = {
    0: struct.Struct("<B"),
    1: struct.Struct("<b"),
    2: struct.Struct("<H"),
    3: struct.Struct("<h"),
    4: struct.Struct("<I"),
    5: struct.Struct("<i"),
    6: struct.Struct("<f"),
    7: struct.Struct("<?"),
    10: struct.Struct("<Q"),
    11: struct.Struct("<q"),
    12: struct.Struct("<d"),
}
_STRING, _ARRAY = 8, 9
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")

# llama.cpp's token types (llama_token_type): control tokens are the chat markers.
_TOKEN_CONTROL, _TOKEN_USER_DEFINED = 3, 4

# End-of-generation markers llama.cpp recognises by their text, besides the declared EOS.
EOG_TEXTS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
    "</s>",
)

# llama.cpp's pre-tokenizers for "gpt2"-type vocabularies, by `tokenizer.ggml.pre`: whether
# digits are split one by one before the byte-level BPE, and the split regex (None: GPT-2's).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_PRE_TOKENIZERS: dict[str, tuple[bool, str | None]] = {
    "default": (False, None),
    "gpt-2": (False, None),
    "smollm": (True, None),
    "starcoder": (True, None),
    "refact": (True, None),
    "llama-bpe": (False, _LLAMA3_SPLIT),
    "llama3": (False, _LLAMA3_SPLIT),
}


@dataclass
class GGUFContents:
    """Everything in a GGUF file but the tensor bytes: metadata (arrays included) and where
    each tensor lies. Shapes are in GGUF order (innermost dimension first)."""

    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, tuple[tuple[int, ...], int, int]] = field(default_factory=dict)
    data_offset: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)


def read_contents(path: Path) -> GGUFContents:
    """Read the whole header of `path`, arrays included (the tokenizer lives in arrays).

    The file is first validated by `charter.models.gguf.read_gguf`, so a missing, truncated or
    corrupt file raises its one-line `ModelFileError` and this parser can trust the layout.
    """
    read_gguf(path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 8  # magic and version, checked by read_gguf
        n_tensors, n_kv = struct.unpack_from("<QQ", buf, pos)
        pos += 16

        def string(at: int) -> tuple[str, int]:
            (n,) = _U64.unpack_from(buf, at)
            at += 8
            return buf[at : at + n].decode("utf-8", errors="replace"), at + n

        def value(type_id: int, at: int) -> tuple[Any, int]:
            if type_id == _STRING:
                return string(at)
            if type_id == _ARRAY:
                (item_type,) = _U32.unpack_from(buf, at)
                (count,) = _U64.unpack_from(buf, at + 4)
                at += 12
                if item_type in _SCALARS:
                    fmt = _SCALARS[item_type]
                    items = list(struct.unpack_from(f"<{count}{fmt.format[1:]}", buf, at))
                    return items, at + count * fmt.size
                items = []
                for _ in range(count):
                    item, at = value(item_type, at)
                    items.append(item)
                return items, at
            fmt = _SCALARS[type_id]
            return fmt.unpack_from(buf, at)[0], at + fmt.size

        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key, pos = string(pos)
            (type_id,) = _U32.unpack_from(buf, pos)
            metadata[key], pos = value(type_id, pos + 4)
        contents = GGUFContents(path=path, metadata=metadata)
        for _ in range(n_tensors):
            name, pos = string(pos)
            (n_dims,) = _U32.unpack_from(buf, pos)
            shape = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
            pos += 4 + 8 * n_dims
            ggml_type, offset = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            contents.tensors[name] = (tuple(shape), ggml_type, offset)
        align = int(metadata.get("general.alignment", 32))
        contents.data_offset = (pos + align - 1) // align * align
    return contents


def load_llama_gguf(path: Path, dtype: Any) -> tuple[Any, Any, GGUFContents]:
    """Build `(model, tokenizer, contents)` from a llama-architecture GGUF file.

    The model is a `LlamaForCausalLM` with eager attention (so attention weights can be read)
    in `dtype`, in eval mode. Raises `ModelFileError` for another architecture, a quantisation
    type the `gguf` package cannot dequantise, or a tensor this layout does not expect.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    contents = read_contents(path)
    arch = contents.get("general.architecture")
    if arch != "llama":
        raise ModelFileError(
            f"{path}: the transformers backend reads llama-architecture GGUF files, not "
            f"{arch!r}; give it a Hugging Face folder (config.json + safetensors) instead"
        )
    config = _llama_config(contents, LlamaConfig)
    config._attn_implementation = "eager"
    try:
        from transformers.modeling_utils import no_init_weights
    except ImportError:  # pragma: no cover - present in every transformers we allow
        import contextlib

        no_init_weights = contextlib.nullcontext
    # Random initialisation would be thrown away at once; skipping it saves a second or two.
    with no_init_weights():
        model = LlamaForCausalLM(config)
    state = _dequantised_state(contents, config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelFileError(
            f"{path}: tensors do not match a llama model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    if config.tie_word_embeddings:
        model.tie_weights()
    model = model.to(dtype).eval()
    return model, build_tokenizer(contents), contents


def _llama_config(c: GGUFContents, config_cls: Any) -> Any:
    def need(key: str) -> Any:
        v = c.get(f"llama.{key}")
        if v is None:
            raise ModelFileError(f"{c.path}: metadata llama.{key} is missing")
        return v

    scaling = c.get("llama.rope.scaling.type")
    if scaling not in (None, "none"):
        raise ModelFileError(f"{c.path}: RoPE scaling {scaling!r} is not supported here")
    if any(".ffn_gate_exps." in name for name in c.tensors):
        raise ModelFileError(f"{c.path}: mixture-of-experts llama files are not supported here")
    heads = int(need("attention.head_count"))
    hidden = int(need("embedding_length"))
    tokens = c.get("tokenizer.ggml.tokens") or []
    return config_cls(
        vocab_size=int(c.get("llama.vocab_size") or len(tokens)),
        hidden_size=hidden,
        intermediate_size=int(need("feed_forward_length")),
        num_hidden_layers=int(need("block_count")),
        num_attention_heads=heads,
        num_key_value_heads=int(c.get("llama.attention.head_count_kv") or heads),
        head_dim=int(c.get("llama.attention.key_length") or hidden // heads),
        max_position_embeddings=int(c.get("llama.context_length") or 2048),
        rms_norm_eps=float(c.get("llama.attention.layer_norm_rms_epsilon") or 1e-5),
        rope_theta=float(c.get("llama.rope.freq_base") or 10000.0),
        tie_word_embeddings="output.weight" not in c.tensors,
        bos_token_id=c.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=c.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=c.get("tokenizer.ggml.padding_token_id"),
    )


_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def _dequantised_state(c: GGUFContents, config: Any) -> dict[str, Any]:
    """Every tensor of the file, dequantised to float32 and renamed to transformers' names."""
    import numpy as np
    import torch
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    state: dict[str, Any] = {}
    data = np.memmap(c.path, dtype=np.uint8, mode="r")
    for name, (shape, type_id, offset) in c.tensors.items():
        if name == "rope_freqs.weight":  # only used with RoPE scaling, refused above
            continue
        hf_name = _GLOBAL_NAMES.get(name)
        parts = name.split(".", 2)
        if hf_name is None and parts[0] == "blk" and parts[2] in _BLOCK_NAMES:
            hf_name = f"model.layers.{parts[1]}.{_BLOCK_NAMES[parts[2]]}"
        if hf_name is None:
            raise ModelFileError(f"{c.path}: unexpected tensor {name!r} for a llama model")
        try:
            qtype = GGMLQuantizationType(type_id)
            block, type_size = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise ModelFileError(f"{c.path}: tensor {name}: unknown ggml type {type_id}") from None
        rows = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        row_bytes = shape[0] // block * type_size
        start = c.data_offset + offset
        raw = data[start : start + rows * row_bytes].reshape(rows, row_bytes)
        try:
            weights = np.asarray(dequantize(raw, qtype), dtype=np.float32)
        except NotImplementedError:
            raise ModelFileError(
                f"{c.path}: tensor {name}: the gguf package cannot dequantise {qtype.name}"
            ) from None
        weights = weights.reshape(tuple(reversed(shape)))
        # llama.cpp's converter interleaves the rotary halves of Q and K; undo it.
        if name.endswith(".attn_q.weight"):
            weights = _unpermute(weights, config.num_attention_heads)
        elif name.endswith(".attn_k.weight"):
            weights = _unpermute(weights, config.num_key_value_heads)
        if not weights.flags.writeable:  # F32 tensors come back as views of the file
            weights = weights.copy()
        state[hf_name] = torch.from_numpy(np.ascontiguousarray(weights))
    return state


def _unpermute(w: Any, n_head: int) -> Any:
    """Inverse of llama.cpp's `permute` in convert_hf_to_gguf.py for Q and K projections."""
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def build_tokenizer(c: GGUFContents) -> Any:
    """A `PreTrainedTokenizerFast` that tokenizes as llama.cpp does for this file.

    "gpt2"-type vocabularies (byte-level BPE, as SmolLM2's) are built here with llama.cpp's
    pre-tokenizer; other vocabularies fall back to transformers' own GGUF conversion.
    """
    from transformers import PreTrainedTokenizerFast

    tokens: list[str] = c.get("tokenizer.ggml.tokens") or []
    if not tokens:
        raise ModelFileError(f"{c.path}: the file has no tokenizer (tokenizer.ggml.tokens)")

    def token(key: str) -> str | None:
        i = c.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else None

    pre = _PRE_TOKENIZERS.get(c.get("tokenizer.ggml.pre") or "default")
    if c.get("tokenizer.ggml.model") == "gpt2" and pre is not None:
        backend = _byte_level_bpe(c, tokens, *pre)
        tok = PreTrainedTokenizerFast(tokenizer_object=backend)
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(c.path.parent), gguf_file=c.path.name)
    # Set from the file itself: transformers' GGUF conversion swaps BOS and EOS.
    tok.bos_token, tok.eos_token = token("bos"), token("eos")
    tok.unk_token, tok.pad_token = token("unknown"), token("padding")
    tok.chat_template = c.get("tokenizer.chat_template") or tok.chat_template
    return tok


def _byte_level_bpe(c: GGUFContents, tokens: list[str], split_digits: bool, regex: str | None):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    merges = [tuple(m.split(" ", 1)) for m in c.get("tokenizer.ggml.merges") or []]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    steps: list[Any] = [pre_tokenizers.Digits(individual_digits=True)] if split_digits else []
    if regex is None:
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    else:
        steps.append(pre_tokenizers.Split(Regex(regex), behavior="isolated"))
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    types = c.get("tokenizer.ggml.token_type") or []
    tok.add_special_tokens(
        [
            AddedToken(tokens[i], special=True, normalized=False)
            for i, t in enumerate(types)
            if t == _TOKEN_CONTROL
        ]
    )
    tok.add_tokens(
        [
            AddedToken(tokens[i], special=False, normalized=False)
            for i, t in enumerate(types)
            if t == _TOKEN_USER_DEFINED
        ]
    )
    return tok
