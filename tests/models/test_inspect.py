"""`charter inspect`: counts by component, architecture, memory, fit and speed figures, checked
against models whose every number is worked out here by hand, and against the real model.

GGUF files are written with the `gguf` package's own writer, safetensors files byte by byte;
every broken input must end as one `ModelFileError` line.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from charter.errors import ConfigError, ModelFileError
from charter.models import embedded_model_path, memory
from charter.models.gguf import GGML_TYPES
from charter.models.inspect import component_of, count_from_config, inspect_model, layer_of
from charter.models.view import build_inspection, format_inspection, parse_sizes
from tests.models.test_safetensors import write_safetensors

GT = gguf.GGMLQuantizationType


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    vocab: int = 64,
    emb: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 4,
    ffn: int = 48,
    tied: bool = True,
    experts: int = 0,
    experts_used: int = 0,
    window: int | None = None,
    ctx: int = 512,
) -> dict[str, int]:
    """A llama-shaped GGUF of zero F32 weights. Returns its components, worked out by hand."""
    hd = emb // heads
    kv = kv_heads * hd
    w = gguf.GGUFWriter(path, arch)
    w.add_name("hand-made")
    w.add_context_length(ctx)
    w.add_block_count(layers)
    w.add_embedding_length(emb)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_vocab_size(vocab)
    if experts:
        w.add_expert_count(experts)
        w.add_expert_used_count(experts_used)
    if window:
        w.add_sliding_window(window)

    def t(name: str, *shape: int) -> None:  # numpy order: outermost first
        w.add_tensor(name, np.zeros(shape, dtype=np.float32))

    t("token_embd.weight", vocab, emb)
    for i in range(layers):
        t(f"blk.{i}.attn_norm.weight", emb)
        t(f"blk.{i}.attn_q.weight", emb, emb)
        t(f"blk.{i}.attn_k.weight", kv, emb)
        t(f"blk.{i}.attn_v.weight", kv, emb)
        t(f"blk.{i}.attn_output.weight", emb, emb)
        t(f"blk.{i}.ffn_norm.weight", emb)
        if experts:
            t(f"blk.{i}.ffn_gate_inp.weight", experts, emb)
            t(f"blk.{i}.ffn_gate_exps.weight", experts, ffn, emb)
            t(f"blk.{i}.ffn_up_exps.weight", experts, ffn, emb)
            t(f"blk.{i}.ffn_down_exps.weight", experts, emb, ffn)
        else:
            t(f"blk.{i}.ffn_gate.weight", ffn, emb)
            t(f"blk.{i}.ffn_up.weight", ffn, emb)
            t(f"blk.{i}.ffn_down.weight", emb, ffn)
    t("output_norm.weight", emb)
    if not tied:
        t("output.weight", vocab, emb)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {
        "embeddings": vocab * emb,
        "attention": layers * (2 * emb * emb + 2 * kv * emb),
        "mlp": layers * (experts * emb if experts else 3 * emb * ffn),
        "experts": layers * experts * 3 * emb * ffn,
        "norms": layers * 2 * emb + emb,
        "output": 0 if tied else vocab * emb,
        "other": 0,
    }


# --- naming ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "component"),
    [
        ("token_embd.weight", "embeddings"),
        ("output.weight", "output"),
        ("output_norm.weight", "norms"),
        ("blk.3.attn_q.weight", "attention"),
        ("blk.3.attn_output.weight", "attention"),
        ("blk.3.attn_qkv.weight", "attention"),
        ("blk.3.attn_q_norm.weight", "norms"),
        ("blk.3.ffn_up.weight", "mlp"),
        ("blk.3.ffn_gate_inp.weight", "mlp"),
        ("blk.3.ffn_gate_exps.weight", "experts"),
        ("blk.3.ffn_down_exps.weight", "experts"),
        ("blk.3.ffn_up_shexp.weight", "mlp"),
        ("blk.3.post_ffw_norm.weight", "norms"),
        ("rope_freqs.weight", "other"),
        ("model.embed_tokens.weight", "embeddings"),
        ("lm_head.weight", "output"),
        ("model.norm.weight", "norms"),
        ("model.layers.3.self_attn.q_proj.weight", "attention"),
        ("model.layers.3.self_attn.k_norm.weight", "norms"),
        ("model.layers.3.input_layernorm.weight", "norms"),
        ("model.layers.3.mlp.gate_proj.weight", "mlp"),
        ("model.layers.3.mlp.experts.5.up_proj.weight", "experts"),
        ("model.layers.3.block_sparse_moe.experts.7.w2.weight", "experts"),
        ("model.layers.3.block_sparse_moe.gate.weight", "mlp"),
        ("model.layers.3.mlp.shared_experts.up_proj.weight", "mlp"),
        ("transformer.wte.weight", "embeddings"),
        ("transformer.wpe.weight", "embeddings"),
        ("transformer.h.0.attn.c_attn.bias", "attention"),
        ("transformer.h.0.mlp.c_fc.weight", "mlp"),
        ("transformer.h.0.ln_1.weight", "norms"),
        ("transformer.ln_f.bias", "norms"),
    ],
)
def test_component_of_tensor_names(name, component):
    assert component_of(name) == component


def test_layer_of():
    assert layer_of("blk.12.attn_q.weight") == 12
    assert layer_of("model.layers.7.mlp.experts.3.w1.weight") == 7
    assert layer_of("transformer.h.0.ln_1.weight") == 0
    assert layer_of("token_embd.weight") is None


# --- GGUF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        dict(heads=4, kv_heads=4, tied=True),
        dict(heads=4, kv_heads=1, tied=True),
        dict(heads=8, kv_heads=2, tied=False),
    ],
    ids=["dense-tied", "gqa-tied", "gqa-untied"],
)
def test_gguf_counts_by_component(tmp_path, shape):
    path = tmp_path / "m.gguf"
    expected = write_gguf(path, **shape)

    r = inspect_model(path)

    assert r.components == expected
    assert r.parameters == r.active_parameters == sum(expected.values())
    assert r.parameters == gguf_reader_params(path)
    assert r.counted_from == "tensors" and r.format == "gguf"
    a = r.arch
    hd = 32 // shape["heads"]
    assert (a.layers, a.hidden, a.heads, a.kv_heads, a.head_dim) == (
        2,
        32,
        shape["heads"],
        shape["kv_heads"],
        hd,
    )
    assert (a.vocab, a.context_length, a.ffn) == (64, 512, 48)
    assert a.tied_embeddings is shape["tied"]
    assert a.kv_widths == (2 * shape["kv_heads"] * hd,) * 2
    # All F32: 4 bytes a parameter, and the head read per token is the embedding when tied.
    assert r.stored_bytes == 4 * r.parameters
    assert r.head_parameters == 64 * 32


def gguf_reader_params(path: Path) -> int:
    """The parameter count by the `gguf` package's own reader: an independent sum."""
    return sum(int(t.n_elements) for t in gguf.GGUFReader(path).tensors)


def test_untied_output_adds_exactly_one_matrix(tmp_path):
    tied = inspect_model(_gguf(tmp_path / "a.gguf", tied=True))
    untied = inspect_model(_gguf(tmp_path / "b.gguf", tied=False))
    assert untied.parameters - tied.parameters == 64 * 32 == untied.components["output"]
    assert tied.components["output"] == 0


def _gguf(path: Path, **kw) -> Path:
    write_gguf(path, **kw)
    return path


def test_gguf_mixture_of_experts_total_and_active(tmp_path):
    path = tmp_path / "moe.gguf"
    comp = write_gguf(path, experts=8, experts_used=2, kv_heads=2)

    r = inspect_model(path)

    assert r.components == comp
    assert r.is_moe and (r.arch.experts, r.arch.experts_used) == (8, 2)
    expert_params = 2 * 8 * 3 * 32 * 48
    assert r.components["experts"] == expert_params
    assert r.parameters == sum(comp.values()) == gguf_reader_params(path)
    assert r.active_parameters == r.parameters - expert_params + expert_params * 2 // 8
    # Decode reads the active weights: a quarter of the experts, everything else once.
    read = memory.read_bytes_per_token(r, "stored")
    assert read == 4 * (r.parameters - expert_params + expert_params // 4)
    assert memory.read_bytes_per_token(r, "bf16") == 2 * (
        r.parameters - expert_params + expert_params // 4
    )


def test_gguf_moe_without_used_count_says_active_is_unknown(tmp_path):
    path = tmp_path / "moe.gguf"
    write_gguf(path, experts=4, experts_used=0)
    r = inspect_model(path)
    assert r.active_parameters is None and r.arch.experts == 4
    assert any("active parameters not computed" in n for n in r.notes)
    assert memory.read_bytes_per_token(r, "stored") is None


def test_gguf_sliding_window_layers_and_kv_cache(tmp_path):
    # gemma2 alternates: llama.cpp's pattern 2 makes even layers slide.
    path = tmp_path / "swa.gguf"
    write_gguf(path, arch="gemma2", layers=4, heads=4, kv_heads=2, window=16, ctx=256)

    r = inspect_model(path)

    a = r.arch
    assert a.sliding_window == 16 and a.sliding_layers == (0, 2)
    width = 2 * 2 * 8  # K + V, 2 KV heads of 8
    assert a.kv_widths == (width,) * 4
    f16 = 2
    # Below the window every layer holds every token.
    assert memory.kv_cache_bytes(a, 10) == 4 * width * 10 * f16
    # Past it, sliding layers stop at 16 tokens; full layers keep growing.
    assert memory.kv_cache_bytes(a, 100) == (2 * width * 100 + 2 * width * 16) * f16
    assert memory.kv_cache_bytes(a, 100, batch=3, kv_type="q8_0") == math.ceil(
        (2 * width * 100 + 2 * width * 16) * 34 / 32 * 3
    )


def test_gguf_sliding_window_pattern_key_overrides_the_arch_default(tmp_path):
    path = tmp_path / "swa.gguf"
    w = gguf.GGUFWriter(path, "gemma3")
    w.add_block_count(6)
    w.add_embedding_length(8)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_sliding_window(4)
    w.add_sliding_window_pattern(3)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert inspect_model(path).arch.sliding_layers == (0, 1, 3, 4)


def test_unknown_sliding_pattern_counts_full_attention_and_says_so(tmp_path):
    path = tmp_path / "swa.gguf"
    write_gguf(path, arch="llama", window=16)
    r = inspect_model(path)
    assert r.arch.sliding_layers == ()
    assert any("upper bound" in n for n in r.notes)


def test_quantised_gguf_stored_bytes_and_bits_per_weight(tmp_path):
    path = tmp_path / "q.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    # 64 x 4 in Q4_1: two blocks of 32 a row at 20 bytes; 512 x 2 in Q4_K: 2 blocks of 256.
    w.add_tensor("blk.0.attn_q.weight", np.zeros((4, 40), dtype=np.uint8), raw_dtype=GT.Q4_1)
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((2, 288), dtype=np.uint8), raw_dtype=GT.Q4_K)
    w.add_tensor("blk.0.attn_norm.weight", np.zeros(64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    r = inspect_model(path)

    assert r.stored_types == {"Q4_K": 1024, "Q4_1": 256, "F32": 64}
    assert r.stored_bytes == 4 * 2 * 20 + 2 * 2 * 144 + 64 * 4
    assert r.component_bytes["attention"] == 160  # Q4_1: 5.0 bits a weight
    assert r.component_bytes["attention"] * 8 / 256 == 5.0
    assert r.component_bytes["mlp"] * 8 / 1024 == 4.5  # Q4_K: 144 bytes per 256
    assert r.bits_per_weight == pytest.approx(r.stored_bytes * 8 / 1344)


def test_ggml_block_sizes_match_the_gguf_package():
    sizes = {t.name: v for t, v in gguf.GGML_QUANT_SIZES.items()}
    for name, block, nbytes in GGML_TYPES.values():
        if name == "Q8_1":
            # ggml's block_q8_1 is two fp16 + 32 int8 = 36 bytes (static_assert in
            # ggml-common.h); gguf-py still lists the old float layout (40). Never in files.
            assert (block, nbytes) == (32, 36) and sizes[name] == (32, 40)
            continue
        assert sizes[name] == (block, nbytes), name


def test_unknown_ggml_type_is_a_model_file_error(tmp_path):
    from tests.models.test_gguf import gguf_bytes, tensor_info

    path = tmp_path / "odd.gguf"
    path.write_bytes(gguf_bytes([], [tensor_info("w", [4], type_id=99)], data=b"\0" * 64))
    with pytest.raises(ModelFileError, match="unknown ggml type"):
        inspect_model(path)


# --- safetensors and config.json ------------------------------------------------------------

LLAMA_CONFIG = {
    "model_type": "llama",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 48,
    "vocab_size": 64,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
}


def hf_llama_tensors(cfg: dict, *, lm_head: bool, dtype: str = "BF16") -> dict:
    h, ffn, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * h // cfg["num_attention_heads"]
    experts = cfg.get("num_local_experts", 0)
    out = {"model.embed_tokens.weight": (dtype, [vocab, h]), "model.norm.weight": (dtype, [h])}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out |= {
            p + "input_layernorm.weight": (dtype, [h]),
            p + "post_attention_layernorm.weight": (dtype, [h]),
            p + "self_attn.q_proj.weight": (dtype, [h, h]),
            p + "self_attn.k_proj.weight": (dtype, [kv, h]),
            p + "self_attn.v_proj.weight": (dtype, [kv, h]),
            p + "self_attn.o_proj.weight": (dtype, [h, h]),
        }
        if experts:
            out[p + "block_sparse_moe.gate.weight"] = (dtype, [experts, h])
            for e in range(experts):
                q = f"{p}block_sparse_moe.experts.{e}."
                out |= {
                    q + "w1.weight": (dtype, [ffn, h]),
                    q + "w2.weight": (dtype, [h, ffn]),
                    q + "w3.weight": (dtype, [ffn, h]),
                }
        else:
            out |= {
                p + "mlp.gate_proj.weight": (dtype, [ffn, h]),
                p + "mlp.up_proj.weight": (dtype, [ffn, h]),
                p + "mlp.down_proj.weight": (dtype, [h, ffn]),
            }
    if lm_head:
        out["lm_head.weight"] = (dtype, [vocab, h])
    return out


def write_hf(folder: Path, cfg: dict, *, lm_head: bool, shards: int = 1) -> int:
    folder.mkdir(exist_ok=True)
    tensors = list(hf_llama_tensors(cfg, lm_head=lm_head).items())
    size = 0
    for s in range(shards):
        part = dict(tensors[s::shards])
        size += write_safetensors(folder / f"model-{s + 1:05}-of-{shards:05}.safetensors", part)
    (folder / "config.json").write_text(json.dumps(cfg))
    return size


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_safetensors_folder_counts_match_the_config_formula(tmp_path, tied):
    cfg = {**LLAMA_CONFIG, "tie_word_embeddings": tied}
    data = write_hf(tmp_path / "m", cfg, lm_head=not tied, shards=2)

    r = inspect_model(tmp_path / "m")
    formula, _ = count_from_config(cfg, Path("config.json"))

    assert r.format == "safetensors" and r.counted_from == "tensors"
    assert r.components == formula
    assert r.stored_bytes == data == 2 * r.parameters
    assert r.arch.tied_embeddings is tied
    assert (r.arch.heads, r.arch.kv_heads, r.arch.head_dim, r.arch.context_length) == (
        4,
        2,
        8,
        1024,
    )
    assert r.arch.kv_widths == (32, 32)
    assert len(r.files) == 2


def test_safetensors_moe_counts_and_active(tmp_path):
    cfg = {
        **LLAMA_CONFIG,
        "model_type": "mixtral",
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "tie_word_embeddings": False,
    }
    write_hf(tmp_path / "moe", cfg, lm_head=True)

    r = inspect_model(tmp_path / "moe")
    formula, _ = count_from_config(cfg, Path("config.json"))
    from_config = inspect_model(tmp_path / "moe" / "config.json")

    assert r.components == formula == from_config.components
    experts = 2 * 4 * 3 * 32 * 48
    assert r.components["experts"] == experts
    assert (r.arch.experts, r.arch.experts_used) == (4, 2)
    assert r.active_parameters == r.parameters - experts // 2 == from_config.active_parameters


def test_single_safetensors_file_with_its_config_and_a_duplicate_tied_head(tmp_path):
    cfg = LLAMA_CONFIG
    path = tmp_path / "model.safetensors"
    write_safetensors(path, hf_llama_tensors(cfg, lm_head=True))
    (tmp_path / "config.json").write_text(json.dumps(cfg))

    r = inspect_model(path)

    # tie_word_embeddings is true, so the stored lm_head is the embedding matrix again.
    assert r.parameters == sum(count_from_config(cfg, Path("c"))[0].values())
    assert r.components["output"] == 0 and r.arch.tied_embeddings
    assert any("counted once" in n for n in r.notes)


def test_safetensors_without_config_still_counts_and_reads_kv_from_shapes(tmp_path):
    path = tmp_path / "bare.safetensors"
    write_safetensors(path, hf_llama_tensors(LLAMA_CONFIG, lm_head=False))
    r = inspect_model(path)
    assert r.parameters == sum(count_from_config(LLAMA_CONFIG, Path("c"))[0].values())
    assert r.arch.layers == 2 and r.arch.heads is None
    assert r.arch.kv_widths == (32, 32)
    assert any("no config.json" in n for n in r.notes)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        # llama: 2 layers of (q,o 32x32; k,v 32x16; mlp 3x32x48; 2 norms) + embeddings + norm
        ({}, 2 * (2 * 1024 + 2 * 512 + 3 * 32 * 48 + 64) + 64 * 32 + 32),
        (
            {"model_type": "qwen2", "tie_word_embeddings": False},
            2 * (2 * 1024 + 2 * 512 + 32 + 2 * 16 + 3 * 32 * 48 + 64) + 2 * 64 * 32 + 32,
        ),
        (
            {"model_type": "gemma2", "head_dim": 16},
            2 * (32 * 64 * 2 + 32 * 32 * 2 + 3 * 32 * 48 + 4 * 32) + 64 * 32 + 32,
        ),
        (
            {"model_type": "qwen3", "head_dim": 8},
            2 * (2 * 1024 + 2 * 512 + 3 * 32 * 48 + 64 + 16) + 64 * 32 + 32,
        ),
        (
            {
                "model_type": "qwen2_moe",
                "num_experts": 4,
                "moe_intermediate_size": 8,
                "shared_expert_intermediate_size": 16,
            },
            2 * (2 * 1024 + 2 * 512 + 32 + 32 + 4 * 3 * 32 * 8 + 32 * 4 + 3 * 32 * 16 + 32 + 64)
            + 64 * 32
            + 32,
        ),
    ],
    ids=["llama", "qwen2-bias", "gemma2-norms-headdim", "qwen3-qk-norm", "qwen2-moe-shared"],
)
def test_bare_config_counts_by_formula(tmp_path, extra, expected):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA_CONFIG, **extra}))

    r = inspect_model(path)

    assert r.parameters == expected
    assert r.counted_from == "config" and r.format == "config"
    assert r.stored_bytes is None and memory.weight_bytes(r, "stored") is None
    assert "computed from config.json" in r.notes[0]
    assert memory.weight_bytes(r, "bf16") == 2 * expected


def test_gpt2_config_reproduces_the_released_count(tmp_path):
    cfg = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12}
    cfg |= {"vocab_size": 50257, "n_positions": 1024}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    r = inspect_model(path)
    assert r.parameters == 124_439_808  # openai-community/gpt2's safetensors
    assert r.arch.tied_embeddings and r.arch.context_length == 1024


def test_multimodal_config_uses_its_text_config(tmp_path):
    path = tmp_path / "config.json"
    text = {k: v for k, v in LLAMA_CONFIG.items() if k != "model_type"}
    path.write_text(json.dumps({"model_type": "llama", "text_config": text}))
    assert inspect_model(path).parameters == inspect_model(_cfg(tmp_path, LLAMA_CONFIG)).parameters


def _cfg(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "other" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize(
    ("cfg", "words"),
    [
        ({"model_type": "deepseek_v3"}, ["'deepseek_v3'", "safetensors files instead"]),
        ({"model_type": ["x"] * 3}, ["a list"]),
        ({**LLAMA_CONFIG, "hidden_size": "big"}, ["hidden_size", "'big'"]),
        ({**LLAMA_CONFIG, "num_hidden_layers": True}, ["num_hidden_layers"]),
        ({**LLAMA_CONFIG, "num_hidden_layers": 10**50}, ["num_hidden_layers", "huge"]),
        ({**LLAMA_CONFIG, "num_hidden_layers": 10**9}, ["implausible"]),
        ({**LLAMA_CONFIG, "vocab_size": None}, ["vocab_size is missing"]),
        ({**LLAMA_CONFIG, "tie_word_embeddings": "yes"}, ["tie_word_embeddings"]),
    ],
)
def test_bad_configs(tmp_path, cfg, words):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError) as caught:
        inspect_model(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message
    for word in words:
        assert word in message, message


def test_config_sliding_window_rules(tmp_path):
    def sliding(**kw):
        return inspect_model(_cfg(tmp_path, {**LLAMA_CONFIG, "num_hidden_layers": 6, **kw})).arch

    mistral = sliding(model_type="mistral", sliding_window=64)
    assert mistral.sliding_layers == tuple(range(6)) and mistral.sliding_window == 64
    assert sliding(model_type="gemma2", sliding_window=64).sliding_layers == (0, 2, 4)
    gemma3 = sliding(model_type="gemma3_text", sliding_window=64, sliding_window_pattern=3)
    assert gemma3.sliding_layers == (0, 1, 3, 4)
    qwen = sliding(model_type="qwen2", sliding_window=64, use_sliding_window=False)
    assert qwen.sliding_layers == () and qwen.sliding_window is None
    types = ["sliding_attention", "full_attention"] * 3
    assert sliding(sliding_window=64, layer_types=types).sliding_layers == (0, 2, 4)


# --- the real embedded model ----------------------------------------------------------------


def test_embedded_model_exact_figures():
    path = embedded_model_path()
    start = time.perf_counter()
    r = inspect_model(path)
    elapsed = time.perf_counter() - start

    assert elapsed < 0.5, elapsed
    assert r.parameters == 134_515_008
    a = r.arch
    assert (a.layers, a.heads, a.kv_heads, a.head_dim, a.vocab) == (30, 9, 3, 64, 49152)
    assert (a.hidden, a.context_length, a.ffn) == (576, 8192, 1536)
    assert a.tied_embeddings and r.components["output"] == 0
    assert r.components["embeddings"] == 49152 * 576
    assert sum(r.components.values()) == r.parameters
    # Stored bytes are the tensor data, exactly as llama.cpp itself sizes and counts it.
    size, params = llama_cpp_model_size(path)
    assert r.stored_bytes == size == 96_576_768
    assert r.parameters == params
    # 2 × 30 layers × 3 KV heads × 64 × 2 bytes: llama.cpp prints 45.00 MiB at n_ctx 2048.
    assert memory.kv_bytes_per_token(a) == 23_040
    assert memory.kv_cache_bytes(a, 2048) == 45 * 2**20


def llama_cpp_model_size(path: Path) -> tuple[int, int]:
    """(tensor data bytes, parameters) as llama.cpp computes them when it loads the file."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(
        str(path).encode(), llama_cpp.llama_model_default_params()
    )
    assert model, "llama.cpp could not load the embedded model"
    try:
        return llama_cpp.llama_model_size(model), llama_cpp.llama_model_n_params(model)
    finally:
        llama_cpp.llama_model_free(model)


def test_embedded_model_memory_estimate_against_llama_cpp_buffers():
    # llama.cpp 0.3.36 printed, for this file: model buffer 92.10 MiB; KV 45.00 / 180.00 MiB;
    # compute 102.51 / 98.25 MiB with flash attention, 99.38 / 166.38 MiB without, at
    # n_ctx 2048 / 8192; output buffer 0.19 MiB (docs/inspect.md has the commands).
    r = inspect_model(embedded_model_path())
    mib = 2**20
    assert round(memory.weight_bytes(r, "stored") / mib, 2) == 92.10
    for ctx, fa, actual in [(2048, True, 239.80), (8192, True, 370.54), (8192, False, 438.67)]:
        estimate = memory.runtime_bytes(r, "stored", ctx, flash_attention=fa, overhead=False)
        assert abs(estimate / mib - actual) / actual < 0.06, (ctx, fa, estimate / mib)


# --- memory, fit and speed ------------------------------------------------------------------


def test_weight_bytes_per_precision_and_int_assumptions():
    r = inspect_model(embedded_model_path())
    n = 134_515_008
    assert memory.weight_bytes(r, "fp32") == 4 * n
    assert memory.weight_bytes(r, "bf16") == 2 * n
    assert memory.weight_bytes(r, "int8") == math.ceil(n * 8.5 / 8)
    assert memory.weight_bytes(r, "int4") == math.ceil(n * 4.5 / 8)
    with pytest.raises(ConfigError, match="unknown precision"):
        memory.weight_bytes(r, "int3")
    with pytest.raises(ConfigError, match="KV-cache type"):
        memory.kv_cache_bytes(r.arch, 10, kv_type="q2")


def test_largest_context_is_the_boundary_of_what_fits(tmp_path):
    path = tmp_path / "m.gguf"
    write_gguf(path, ctx=1 << 20, vocab=64, layers=2, kv_heads=2)
    r = inspect_model(path)
    for gb in (0.55, 0.6):
        ctx = memory.largest_context(r, "bf16", gb)
        usable = gb * 1e9 * (1 - memory.HEADROOM_FRACTION)
        assert ctx is not None and ctx % memory.CONTEXT_STEP == 0
        assert memory.runtime_bytes(r, "bf16", ctx) <= usable
        assert memory.runtime_bytes(r, "bf16", ctx + memory.CONTEXT_STEP) > usable
    # Too small for even the runtime overhead; and a context capped at the model's own.
    assert memory.largest_context(r, "bf16", 0.4) is None
    assert memory.largest_context(r, "bf16", 80, limit=4096) == 4096


def test_decode_bound_is_bandwidth_over_bytes_read():
    r = inspect_model(embedded_model_path())
    bw = 100e9
    tps = memory.decode_tokens_per_second(r, "stored", 4096, bw)
    # Tied embeddings: the embedding matrix is read once per token as the output head.
    assert tps == pytest.approx(bw / (96_576_768 + 23_040 * 4096))


def test_bandwidth_measurement_is_plausible_and_cached():
    first = memory.measure_bandwidth()
    assert 0.1e9 < first < 10_000e9
    assert memory.measure_bandwidth() == first


def test_gpu_table_has_sources_and_fit_sizes():
    gpus = memory.known_gpus()
    assert {"NVIDIA H100 (SXM)", "NVIDIA H200 (SXM)"} <= {g.name for g in gpus}
    assert all(g.source.startswith("https://") and g.bandwidth_gbps > 0 for g in gpus)
    assert memory.fit_sizes_gb() == [8, 12, 16, 24, 40, 48, 80, 141]


# --- large files, broken files ----------------------------------------------------------------


def test_25_gb_header_only_gguf_inspects_in_well_under_a_second(tmp_path):
    path = tmp_path / "big.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(64)
    w.add_embedding_length(8192)
    w.add_head_count(64)
    w.add_head_count_kv(8)
    w.add_context_length(8192)
    # 64 layers of 3 Q4_K tensors of 8192 x 28672: 25.4 GB of data, all sparse.
    row_bytes = 8192 // 256 * 144
    for i in range(64):
        for part in ("ffn_gate", "ffn_up", "ffn_down"):
            w.add_tensor_info(
                f"blk.{i}.{part}.weight",
                (28672, row_bytes),
                np.dtype(np.uint8),
                28672 * row_bytes,
                raw_dtype=GT.Q4_K,
            )
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    data = 192 * 28672 * row_bytes
    with open(path, "r+b") as f:
        f.truncate(-(-os.path.getsize(path) // 32) * 32 + data)
    assert path.stat().st_size > 25e9 and path.stat().st_blocks * 512 < 10_000_000

    start = time.perf_counter()
    r = inspect_model(path)
    elapsed = time.perf_counter() - start

    assert elapsed < 0.5, elapsed
    assert r.parameters == 192 * 28672 * 8192 and r.stored_bytes == data
    assert r.bits_per_weight == 4.5


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(ModelFileError, match="file not found"):
        inspect_model(tmp_path / "missing.gguf")
    odd = tmp_path / "weights.bin"
    odd.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ModelFileError, match="not a GGUF, safetensors or config.json"):
        inspect_model(odd)


def test_sniffs_formats_without_the_usual_suffix(tmp_path):
    g = tmp_path / "model"
    write_gguf(g)
    assert inspect_model(g).format == "gguf"
    s = tmp_path / "weights.bin"
    write_safetensors(s, {"a": ("F32", [2])})
    assert inspect_model(s).format == "safetensors"


@pytest.mark.parametrize("kind", ["gguf", "safetensors", "config"])
def test_truncations_and_garbage_only_ever_raise_model_file_error(tmp_path, kind):
    good = (
        tmp_path / {"gguf": "m.gguf", "safetensors": "m.safetensors", "config": "config.json"}[kind]
    )
    if kind == "gguf":
        write_gguf(good, layers=1, vocab=8, emb=8, heads=2, kv_heads=1, ffn=8, experts=2)
    elif kind == "safetensors":
        write_safetensors(
            good, hf_llama_tensors({**LLAMA_CONFIG, "num_hidden_layers": 1}, lm_head=True)
        )
    else:
        good.write_text(
            json.dumps({**LLAMA_CONFIG, "model_type": "mixtral", "num_local_experts": 2})
        )
    whole = good.read_bytes()
    bad = tmp_path / f"bad{good.suffix}"
    rng = random.Random(kind)
    # Every cut through the first 200 bytes (the headers), cuts spread over the rest,
    # random byte flips, and plain garbage.
    cuts = sorted({*range(min(len(whole), 200)), *rng.sample(range(len(whole)), 80)})
    trials = [whole[:c] for c in cuts]
    for _ in range(100):
        data = bytearray(whole)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        trials.append(bytes(data))
    trials += [rng.randbytes(rng.randint(0, 200)) for _ in range(30)]
    for data in trials:
        bad.write_bytes(data)
        try:
            inspect_model(bad)
        except ModelFileError as exc:
            assert "\n" not in str(exc) and bad.name in str(exc)


# --- the inspection and the CLI ----------------------------------------------------------------


def test_parse_sizes():
    assert parse_sizes("4096, 32k", "--context") == [4096, 32768]
    for bad in ("", "0", "4096,x", "-1", "1.5"):
        with pytest.raises(ConfigError, match="--context"):
            parse_sizes(bad, "--context")


def test_build_inspection_tables(tmp_path):
    data = build_inspection(
        embedded_model_path(), contexts=[4096, 32768], batches=[1, 8], bandwidth_gbps=20
    )
    kv = {(r["context"], r["batch"]): r["bytes"] for r in data["kv_cache"]["table"]}
    assert kv[32768, 8] == 23_040 * 32768 * 8
    assert data["kv_cache"]["formula"] == "2 × 30 layers × 3 KV heads × 64 head dim × 2 bytes"
    fit = {r["memory_gb"]: r["largest_context"] for r in data["fit"]["rows"]}
    assert fit[8] == dict.fromkeys(memory.PRECISIONS, 8192)  # the model's whole context
    local = data["decode"]["rows"][-1]
    assert local["name"] == "this machine" and local["bandwidth_gbps"] == 20
    assert local["tokens_per_second"]["stored"] == pytest.approx(
        20e9 / (96_576_768 + 23_040 * 4096)
    )
    assert "compare" not in data
    text = format_inspection(data)
    assert "134,515,008 (134.5M), summed over 272 tensors" in text
    assert "KV heads 3 (GQA: 3 query heads per KV head)" in text
    with pytest.raises(ConfigError, match="--kv-type"):
        build_inspection(embedded_model_path(), kv_type="q3")
    with pytest.raises(ConfigError, match="--bandwidth"):
        build_inspection(embedded_model_path(), bandwidth_gbps=0)


def test_weights_that_do_not_fit_say_no(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                **LLAMA_CONFIG,
                "hidden_size": 8192,
                "num_hidden_layers": 80,
                "num_attention_heads": 64,
                "num_key_value_heads": 8,
                "intermediate_size": 28672,
                "vocab_size": 128256,
                "max_position_embeddings": 131072,
                "tie_word_embeddings": False,
            }
        )
    )
    data = build_inspection(path, measure=False)
    fit = {r["memory_gb"]: r["largest_context"] for r in data["fit"]["rows"]}
    assert fit[8]["bf16"] is None and fit[8]["stored"] is None  # 141 GB of bf16 weights
    assert fit[80]["int4"] is not None and fit[80]["bf16"] is None
    assert fit[141]["int8"] is not None
    text = format_inspection(data)
    assert "COMPUTED FROM config.json" in text


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "charter", "inspect", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_json_and_compare():
    done = run_cli(str(embedded_model_path()), "--json", "--compare", "--bandwidth", "10")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["model"]["parameters"] == 134_515_008
    assert data["model"]["architecture"]["kv_heads"] == 3
    gpt3 = next(r for r in data["compare"]["ranked"] if r["name"] == "GPT-3")
    assert gpt3["ratio"] == "0.08% of GPT-3 (175B)"
    assert {"Claude 2", "GPT-4"} <= {r["name"] for r in data["compare"]["undisclosed"]}

    text = run_cli("--compare", "--bandwidth", "10", "--context", "4096,32k", "--batch", "1,8")
    assert text.returncode == 0, text.stderr
    assert "0.08% of GPT-3 (175B)" in text.stdout
    assert "Claude 2 (Anthropic)" in text.stdout


def test_cli_bad_file_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\0\0\0" + b"\xff" * 8)
    done = run_cli(str(bad))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("charter: error: ") and "broken.gguf" in lines[0]
    assert "Traceback" not in done.stderr

    done = run_cli("--context", "lots", "--bandwidth", "1")
    assert done.returncode == 2 and "--context" in done.stderr and "Traceback" not in done.stderr
