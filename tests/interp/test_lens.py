"""The logit lens and source attention on the real embedded model, its renderings (escaping
included), and `charter lens` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from charter.errors import ConfigError
from charter.interp.lens import (
    LayerReading,
    LensPosition,
    LensResult,
    SourceAttention,
    TokenProb,
    messages_with_sources,
    parse_layers,
    read_sources,
    select_layers,
)
from charter.interp.render import format_table, render_html

SOURCES = [
    "The Zorblax festival is held every spring in the town of Quillmere, known for glass kites.",
    "Bananas are rich in potassium and grow well in warm tropical climates around the world, "
    "where farmers harvest them all year.",
]
QUESTION = "Where is the Zorblax festival held?"

# Runs python with torch and transformers made unimportable, as without the extra.
BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, _Block())
"""


def test_layer_selection() -> None:
    assert parse_layers("all") is None and parse_layers("every:10") == 10
    assert select_layers(30, None) == list(range(31))
    assert select_layers(30, 10) == [0, 10, 20, 30]
    assert select_layers(30, 7) == [0, 7, 14, 21, 28, 30]  # the model's own layer always shown
    for bad in ("some", "every:0", "every:x"):
        with pytest.raises(ConfigError, match="--layers"):
            parse_layers(bad)


def test_bad_arguments_are_refused_before_loading_the_model() -> None:
    from charter.interp.lens import run_lens

    for kw, flag in [
        ({"max_tokens": 0}, "--max-tokens"),
        ({"top_k": 0}, "--top-k"),
        ({"answer": ""}, "--answer"),
        ({"layers": "odd"}, "--layers"),
    ]:
        with pytest.raises(ConfigError, match=flag):
            run_lens("hi", model_path="/nonexistent.gguf", **kw)


def test_sources_go_into_the_system_message(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("  From a file.\n", encoding="utf-8")
    assert read_sources(["inline"], [f]) == ["inline", "From a file."]
    msgs = messages_with_sources("Q?", ["one", "two"])
    assert msgs[0]["role"] == "system" and "Sources:\n[1] one\n[2] two" in msgs[0]["content"]
    assert msgs[1] == {"role": "user", "content": "Q?"}
    assert messages_with_sources("Q?", []) == [{"role": "user", "content": "Q?"}]
    with pytest.raises(ConfigError, match="cannot read"):
        read_sources([], [tmp_path / "missing.txt"])
    with pytest.raises(ConfigError, match="source 1 is empty"):
        read_sources(["  "])


def crafted_result(token: str) -> LensResult:
    top = [TokenProb(id=7, token=token, prob=0.9), TokenProb(id=8, token="a&b", prob=0.05)]
    pos = LensPosition(
        index=0,
        token_id=7,
        token=token,
        layers=[LayerReading(layer=n, top=top, rank=1, prob=0.9, entropy=0.4) for n in (0, 1)],
    )
    src = SourceAttention(1, '<img src=x onerror="alert(1)">', 3, 9, 6, [0.3], [0.3], 0.3)
    rest = SourceAttention(0, "(everything else)", None, None, 20, [0.7], [0.7], 0.7)
    return LensResult(
        model="m<b>",
        prompt_tokens=20,
        answer=token,
        generated=True,
        layers=[0, 1],
        layer_names=["emb", "1"],
        n_blocks=1,
        top_k=2,
        positions=[pos],
        sources=[src],
        other=rest,
    )


def test_html_escapes_every_model_and_user_text() -> None:
    page = render_html(crafted_result('<script>alert("x")</script>'))
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "a&amp;b" in page
    assert "http" not in page.replace("http-equiv", "")  # no external assets


def test_table_marks_where_a_layer_already_has_the_answer() -> None:
    table = format_table(crafted_result(" Paris"))
    assert "·Paris" in table
    assert ".90*" in table and "[1]" in table and "rest" in table


@pytest.fixture(scope="module")
def lm() -> Iterator:
    pytest.importorskip("torch", reason="needs the interp extra: pip install 'charter[interp]'")
    from charter.interp.loading import load_model

    yield load_model(n_threads=1)


def lens(lm, messages, **kw):  # noqa: ANN001, ANN201
    from charter.interp.lens import logit_lens

    return logit_lens(lm.model, lm.tokenizer, messages, stop_ids=lm.stop_ids, **kw)


@pytest.mark.slow
def test_last_layer_is_the_models_own_distribution(lm) -> None:  # noqa: ANN001
    import torch

    from charter.interp.lens import layer_distributions

    _, ids = lm.encode_chat([{"role": "user", "content": "Name a colour."}])
    probs = layer_distributions(lm.model, ids)
    assert probs.shape == (31, lm.model.config.vocab_size)
    assert torch.allclose(probs.sum(dim=-1), torch.ones(31), atol=1e-4)
    with torch.no_grad():
        own = torch.softmax(lm.model(input_ids=torch.tensor([ids])).logits[0, -1], dim=-1)
    assert torch.allclose(probs[-1], own, atol=1e-6)
    assert not torch.allclose(probs[15], own, atol=1e-2)  # a middle layer reads differently


@pytest.mark.slow
def test_greedy_lens_top_token_is_the_generated_token(lm) -> None:  # noqa: ANN001
    r = lens(lm, [{"role": "user", "content": "What is the capital of France?"}], max_tokens=8)
    assert r.generated and r.answer == "The capital of France is Paris."
    assert len(r.positions) == 7  # it stopped at the end-of-turn token, not at 8
    assert r.layers == list(range(31)) and r.layer_names[0] == "emb"
    for p in r.positions:
        last = p.layers[-1]
        assert last.layer == 30 and last.top[0].id == p.token_id and last.rank == 1
        assert last.prob == last.top[0].prob
        for reading in p.layers:
            probs = [t.prob for t in reading.top]
            assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1
            assert 0 <= reading.prob <= 1 and reading.rank >= 1
    json.dumps(r.to_dict())  # plain data


@pytest.mark.slow
def test_scoring_a_given_answer_matches_full_forward_passes(lm) -> None:  # noqa: ANN001
    from charter.interp.lens import layer_distributions

    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    r = lens(lm, msgs, answer="Lyon, I think.", every=10)
    answer_ids = lm.tokenizer("Lyon, I think.", add_special_tokens=False)["input_ids"]
    assert [p.token_id for p in r.positions] == answer_ids and not r.generated
    assert r.layers == [0, 10, 20, 30]
    _, prompt = lm.encode_chat(msgs)
    for i in (0, 2):  # the cached step-by-step reading equals a fresh full pass
        probs = layer_distributions(lm.model, prompt + answer_ids[:i], every=10)
        for row, reading in enumerate(r.positions[i].layers):
            assert abs(reading.prob - float(probs[row, answer_ids[i]])) < 1e-4
    assert r.positions[0].layers[-1].rank > 1  # the model would not have said "Lyon"


@pytest.mark.slow
def test_attention_mass_per_source(lm) -> None:  # noqa: ANN001
    msgs = messages_with_sources(QUESTION, SOURCES)
    # The answer copies a rare word from source 1; source 2 is unrelated and as long.
    r = lens(lm, msgs, answer="It is held in Quillmere.", sources=SOURCES)
    one, two = r.sources
    assert r.other is not None and r.other.index == 0
    assert two.tokens >= one.tokens  # more mass on source 1 is not from its length
    for s in (one, two, r.other):
        assert len(s.per_layer) == 30 and len(s.per_position) == len(r.positions)
        assert all(0 <= v <= 1 for v in s.per_layer + s.per_position + [s.mean])
    for b in range(30):  # the sources and the rest are computed apart, and add up to 1
        assert abs(one.per_layer[b] + two.per_layer[b] + r.other.per_layer[b] - 1) < 1e-4
    assert one.mean > 2 * two.mean
    quill = next(i for i, p in enumerate(r.positions) if "Qu" in p.token)
    assert one.per_position[quill] > two.per_position[quill]
    with pytest.raises(ConfigError, match="source 2 does not appear"):
        lens(lm, msgs, sources=[SOURCES[0], "not in the prompt"])


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "charter", "lens", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CHARTER_N_THREADS": "1", **(env or {})},
        timeout=120,
    )


@pytest.mark.slow
def test_cli_writes_json_and_html(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="needs the interp extra: pip install 'charter[interp]'")
    page = tmp_path / "lens.html"
    source = tmp_path / "bananas.txt"
    source.write_text(SOURCES[1], encoding="utf-8")
    done = run_cli(
        QUESTION,
        "--source",
        SOURCES[0],
        "--source-file",
        str(source),
        "--max-tokens",
        "4",
        "--top-k",
        "3",
        "--layers",
        "every:10",
        "--json",
        "--html",
        str(page),
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["layers"] == [0, 10, 20, 30] and len(data["positions"]) == 4
    assert len(data["positions"][0]["layers"][0]["top"]) == 3
    assert [s["text"] for s in data["sources"]] == SOURCES
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and "Attention to sources" in html
    assert "<script" not in html and data["positions"][0]["token"].strip() in html


def test_cli_bad_model_path_is_one_line(tmp_path: Path) -> None:
    done = run_cli("hello", "--model", str(tmp_path / "nope.gguf"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"charter: error: {tmp_path / 'nope.gguf'}: file not found"
    ]


def test_cli_without_the_extra_says_how_to_install_it() -> None:
    code = BLOCK_TORCH + "from charter.cli import main\nsys.exit(main(['lens', 'hello']))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("charter: error: ")
    assert lines[0].endswith("pip install 'charter[interp]'")
