"""The registry of well-known models: sourced figures only, no number for an undisclosed size,
exact counts that the architecture formula reproduces, and ratios computed correctly.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from charter.errors import CharterError
from charter.models.inspect import count_from_config
from charter.models.registry import compare, load_registry, ratio_text, short_count


def raw_entries() -> list[dict]:
    text = resources.files("charter.models").joinpath("data", "known_models.toml").read_text()
    return tomllib.loads(text)["model"]


def by_name() -> dict:
    return {m.name: m for m in load_registry()}


def test_every_entry_has_a_source_url_and_a_unique_name():
    models = load_registry()
    assert len(models) == len(raw_entries()) >= 25
    assert len({m.name for m in models}) == len(models)
    for m in models:
        assert re.fullmatch(r"https://[^\s/]+\.[^\s/]+/\S+", m.source), m.name


def test_no_undisclosed_entry_carries_a_number():
    undisclosed = [e for e in raw_entries() if e["parameters"] == "undisclosed"]
    names = {e["name"] for e in undisclosed}
    assert {"GPT-4", "Claude 2", "Claude 3 Opus", "Claude 3 Sonnet", "Claude 3 Haiku"} <= names
    assert "Gemini 1.5 Pro" in names
    for entry in undisclosed:
        for key, value in entry.items():
            assert not isinstance(value, (int, float)) or isinstance(value, bool), (entry, key)
            if key not in ("name", "source"):  # "Claude 2" and its URL name the model
                assert not re.search(r"\d", str(value)), (entry["name"], key, value)


def test_the_validator_refuses_a_guess_for_an_undisclosed_size():
    entry = """
[[model]]
name = "Claude 2"
developer = "Anthropic"
open_weights = false
parameters = "undisclosed"
{extra}
source = "https://www.anthropic.com/news/claude-2"
"""
    assert load_registry(entry.format(extra=""))[0].disclosed is False
    for extra in ("layers = 40", "active_parameters = 12000000000", 'notes = "about 12B"'):
        with pytest.raises(CharterError, match="Claude 2"):
            load_registry(entry.format(extra=extra))
    with pytest.raises(CharterError, match="source"):
        load_registry(entry.format(extra="").replace("https://", "http://"))
    with pytest.raises(CharterError, match="parameters"):
        load_registry(entry.format(extra="").replace('"undisclosed"', '"12B"'))


def test_well_known_published_figures():
    m = by_name()
    assert m["GPT-3"].parameters == 175_000_000_000
    mixtral = m["Mixtral-8x7B"]
    assert (mixtral.parameters, mixtral.active_parameters) == (46_700_000_000, 12_900_000_000)
    deepseek = m["DeepSeek-V3"]
    assert (deepseek.parameters, deepseek.active_parameters) == (671e9, 37e9)
    moe = m["LLaMA-MoE-3.5B (2/8)"]
    assert (moe.parameters, moe.active_parameters) == (6_700_000_000, 3_500_000_000)
    assert "LLaMA-2-7B" in moe.notes and "not an Anthropic model" in moe.notes
    for name in ("LLaMA-2-7B", "LLaMA-2-13B", "LLaMA-2-70B", "Llama-3.1-8B", "Llama-3.1-70B"):
        assert name in m
    for name in ("Llama-3.1-405B", "Mistral-7B", "Gemma-2-9B", "Gemma-2-27B", "Qwen2.5-7B"):
        assert name in m
    for name in ("Qwen2.5-72B", "Phi-3-mini", "SmolLM2-135M", "SmolLM2-360M", "SmolLM2-1.7B"):
        assert name in m
    assert m["SmolLM2-135M"].parameters == 134_515_008  # the embedded model's own count


def config_of(m) -> dict:
    cfg = {
        "model_type": m.family,
        "hidden_size": m.hidden,
        "num_hidden_layers": m.layers,
        "num_attention_heads": m.heads,
        "num_key_value_heads": m.kv_heads,
        "head_dim": m.head_dim,
        "intermediate_size": m.ffn,
        "vocab_size": m.vocab,
        "tie_word_embeddings": m.tied_embeddings,
        "num_local_experts": m.experts,
    }
    if m.family == "gpt2":
        cfg |= {"n_embd": m.hidden, "n_layer": m.layers, "n_head": m.heads}
        cfg |= {"n_positions": m.context, "n_inner": m.ffn}
    return {k: v for k, v in cfg.items() if v is not None}


def test_exact_counts_are_reproduced_by_the_architecture_formula():
    checked = 0
    for m in load_registry():
        if m.count == "exact" and m.family:
            components, _ = count_from_config(config_of(m), Path("registry"))
            assert sum(components.values()) == m.parameters, m.name
            checked += 1
    assert checked >= 15


def test_announced_mixtral_figures_agree_with_its_published_architecture():
    m = by_name()["Mixtral-8x7B"]
    components, _ = count_from_config(config_of(m), Path("registry"))
    total = sum(components.values())
    active = total - components["experts"] + components["experts"] * m.experts_used // m.experts
    assert round(total / 1e8) == 467 and round(active / 1e8) == 129


@pytest.mark.parametrize(
    ("ours", "theirs", "name", "text"),
    [
        (134_515_008, 175_000_000_000, "GPT-3", "0.08% of GPT-3 (175B)"),
        (134_515_008, 361_821_120, "SmolLM2-360M", "37% of SmolLM2-360M (361.8M)"),
        (134_515_008, 1_711_376_384, "SmolLM2-1.7B", "7.9% of SmolLM2-1.7B (1.7B)"),
        (134_515_008, 671_000_000_000, "DeepSeek-V3", "0.02% of DeepSeek-V3 (671B)"),
        (1_000_000, 405_853_388_800, "Llama-3.1-405B", "0.00025% of Llama-3.1-405B (405.9B)"),
        (134_515_008, 124_439_808, "GPT-2", "1.08× GPT-2 (124.4M)"),
        (134_515_008, 134_515_008, "SmolLM2-135M", "the same size as SmolLM2-135M (134.5M)"),
    ],
)
def test_ratio_text(ours, theirs, name, text):
    assert ratio_text(ours, theirs, name) == text


def test_short_count():
    assert short_count(175_000_000_000) == "175B"
    assert short_count(46_700_000_000) == "46.7B"
    assert short_count(8_030_261_248) == "8B"


def test_compare_places_the_model_in_order_and_computes_every_ratio():
    placed = compare("mine", 134_515_008, 134_515_008)
    ranked = placed["ranked"]
    sizes = [r["parameters"] for r in ranked]
    assert sizes == sorted(sizes)
    mine = [r for r in ranked if r["this"]]
    assert len(mine) == 1 and mine[0]["ratio"] is None
    at = ranked.index(mine[0])
    assert ranked[at - 1]["name"] == "SmolLM2-135M"  # equal size: the entry first
    assert ranked[at + 1]["name"] == "SmolLM2-360M"
    for r in ranked:
        if not r["this"]:
            assert r["ratio"] == ratio_text(134_515_008, r["parameters"], r["name"])
    assert all("parameters" not in r for r in placed["undisclosed"])
    assert "Claude 2" in {r["name"] for r in placed["undisclosed"]}
