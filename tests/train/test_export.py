"""The HF-folder <-> GGUF bridge on the real embedded model: GGUF -> float32 HF folder ->
(LoRA) -> GGUF, checked by llama.cpp's own logits against transformers' on the same tokens."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from charter.errors import ExportError, ModelFileError
from charter.train.export import QUANT_TYPES, export_cmd, export_gguf, render_card

PROMPTS = (
    "How do I boil an egg?",
    "List three primary colors.",
    "Write a haiku about the sea.",
    "What is the capital of France?",
)

# Max |llama.cpp - transformers| over every logit of a prompt for an F32 export: the same
# float32 weights, so only summation order differs (measured 9.1e-5; logits span -31..38).
F32_TOL = 1e-3

CARD = {
    "constitution": {"name": "Charter default", "version": "1", "hash": "c0ffee12"},
    "exported stage": "dpo",
    "data": {"sl_data": {"rows": 4, "file": "sl_data.jsonl"}, "prefs": {"pairs": 3}},
    "training": {"sft": {"steps": 2, "loss_curve": [{"step": 1, "loss": 1.5}, {"step": 2}]}},
    "evaluation": "not run | yet",
}


# --- helpers ------------------------------------------------------------------------------


def chat_ids(tok: Any, prompt: str) -> list[int]:
    text = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    return tok(text, add_special_tokens=False)["input_ids"]


def hf_logits(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def llama_logits(path: Path, ids: list[int]) -> np.ndarray:
    """Every position's logits from llama.cpp, with an F32 KV cache (F16 would add noise)."""
    import llama_cpp

    llm = llama_cpp.Llama(
        str(path),
        n_ctx=256,
        logits_all=True,
        verbose=False,
        n_threads=2,
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
    )
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def llama_tokenize(path: Path, text: str) -> list[int]:
    import llama_cpp

    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    try:
        return llm.tokenize(text.encode(), add_bos=False, special=True)
    finally:
        llm.close()


# --- fixtures (the real model, made once) --------------------------------------------------


@pytest.fixture(scope="module")
def hf(base_hf_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base_hf_dir), dtype="float32").eval()
    return model, AutoTokenizer.from_pretrained(str(base_hf_dir))


@pytest.fixture(scope="module")
def f32_export(base_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("f32") / "base-f32.gguf"
    return export_gguf(base_hf_dir, out, quant="F32", card=CARD)


# --- the HF folder -------------------------------------------------------------------------


@pytest.mark.slow
def test_base_folder_is_a_plain_float32_folder_with_the_gguf_tokenizer(
    base_hf_dir: Path, hf: tuple[Any, Any], tmp_path: Path
) -> None:
    import shutil

    import torch

    from charter.interp.gguf_torch import read_contents
    from charter.models import embedded_model_path
    from charter.train.hf import base_hf_folder

    model, tok = hf
    config = json.loads((base_hf_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    assert getattr(model, "hf_quantizer", None) is None
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert (base_hf_dir / "model.safetensors").is_file()

    c = read_contents(embedded_model_path())
    tokens = c.get("tokenizer.ggml.tokens")
    assert tok.chat_template == c.get("tokenizer.chat_template")
    # llama.cpp's EOS for SmolLM2 is <|im_end|> (id 2), the end of every chat turn; it pads too.
    assert tok.eos_token == tokens[c.get("tokenizer.ggml.eos_token_id")] == "<|im_end|>"
    assert tok.pad_token == tokens[c.get("tokenizer.ggml.padding_token_id")]
    assert model.config.eos_token_id == tok.eos_token_id == 2
    # Generation stops where llama.cpp's does: EOS and <|endoftext|> (an end-of-generation text).
    assert model.generation_config.eos_token_id == [2, tok.convert_tokens_to_ids("<|endoftext|>")]
    assert tok.model_max_length == c.get("llama.context_length")

    for prompt in PROMPTS[:2]:
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt + " 2024"}], tokenize=False
        )
        assert tok(text, add_special_tokens=False)["input_ids"] == llama_tokenize(
            embedded_model_path(), text
        )

    # Cached by content: the same file, or a copy of it, finds the folder; nothing half-made.
    assert base_hf_folder(None, base_hf_dir.parent) == base_hf_dir
    copy = shutil.copy(embedded_model_path(), tmp_path / "copy.gguf")
    assert base_hf_folder(Path(copy), base_hf_dir.parent) == base_hf_dir
    assert [p.name for p in base_hf_dir.parent.iterdir()] == [base_hf_dir.name]


@pytest.mark.slow
def test_trl_trains_on_the_base_folder_and_learns_to_stop_at_llamacpps_eos(
    base_hf_dir: Path, tmp_path: Path
) -> None:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(str(base_hf_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_hf_dir), dtype="float32")
    rows = [
        {
            "prompt": [{"role": "user", "content": "Hi"}],
            "completion": [{"role": "assistant", "content": "Hello! How can I help?"}],
        }
    ] * 2
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        max_length=128,
        completion_only_loss=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], task_type="CAUSAL_LM"),
    )
    result = trainer.train()
    assert np.isfinite(result.training_loss) and result.training_loss > 0
    # The trained completion ends with the token llama.cpp stops on.
    ids = trainer.train_dataset[0]["input_ids"]
    assert tok.eos_token_id in ids[-2:]


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.slow
def test_f32_export_matches_transformers_logits(f32_export: Any, hf: tuple[Any, Any]) -> None:
    model, tok = hf
    for prompt in PROMPTS[:2]:
        ids = chat_ids(tok, prompt)
        want, got = hf_logits(model, ids), llama_logits(f32_export.path, ids)
        assert np.abs(got - want).max() < F32_TOL
        assert (got.argmax(-1) == want.argmax(-1)).all()
    assert f32_export.quant == "F32"
    assert f32_export.n_params == sum(p.numel() for p in model.parameters()) == 134_515_008
    assert f32_export.size_bytes == f32_export.path.stat().st_size > 4 * f32_export.n_params


@pytest.mark.slow
def test_q4_1_export_of_the_base_gives_back_its_tensors_byte_for_byte(
    base_hf_dir: Path, tmp_path: Path
) -> None:
    """The base's weights are dequantised Q4_1 (and Q8_0 embeddings): llama.cpp re-quantises
    them onto the same grid, so names, types, Q/K permutation and bytes must all come back."""
    import gguf

    from charter.models import embedded_model_path

    result = export_gguf(base_hf_dir, tmp_path / "q4.gguf", quant="q4_1")
    assert result.quant == "Q4_1"
    base, ours = gguf.GGUFReader(embedded_model_path()), gguf.GGUFReader(result.path)
    theirs = {t.name: t for t in base.tensors}
    assert sorted(t.name for t in ours.tensors) == sorted(theirs)  # llama.cpp sorts its own way
    for b in ours.tensors:
        a = theirs[b.name]
        assert a.tensor_type == b.tensor_type, a.name
        assert np.array_equal(np.asarray(a.data), np.asarray(b.data)), a.name

    def fields(r: Any) -> dict[str, Any]:
        return {f.name: f.contents() for f in r.fields.values() if not f.name.startswith("GGUF.")}

    old, new = fields(base), fields(ours)
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    assert changed == {
        "general.name",
        "general.finetune",
        "general.base_model.count",
        "general.base_model.0.name",
        "general.base_model.0.organization",
    }
    assert new["general.name"] == "q4"
    assert new["general.base_model.0.name"] == old["general.name"]


@pytest.mark.slow
def test_q8_0_export_by_the_command_agrees_on_the_greedy_next_token(
    base_hf_dir: Path, hf: tuple[Any, Any], tmp_path: Path
) -> None:
    out = tmp_path / "q8.gguf"
    out.write_bytes(b"an older export")
    out.with_suffix(".md").write_text("old card")
    card_json = tmp_path / "card.json"
    card_json.write_text(json.dumps({"evaluation": {"refusal accuracy": 0.75}}))
    args = [str(base_hf_dir), "--out", str(out), "--force", "--card-json", str(card_json)]
    r = CliRunner().invoke(export_cmd, args)  # --force overwrites both files
    assert r.exit_code == 0, r.output
    result = json.loads(r.output.strip().splitlines()[-1])
    assert result["quant"] == "Q8_0" and result["path"] == str(out)
    assert out.read_bytes()[:4] == b"GGUF" and result["size_bytes"] == out.stat().st_size
    assert result["size_bytes"] < 0.3 * 4 * result["n_params"]
    card = out.with_suffix(".md").read_text()
    assert "| Quantisation | Q8_0 |" in card and "| Refusal accuracy | 0.75 |" in card
    model, tok = hf
    decided = 0
    for prompt in PROMPTS:
        ids = chat_ids(tok, prompt)
        want, got = hf_logits(model, ids), llama_logits(out, ids)
        # llama.cpp quantises activations too (max logit error ~2 on this 135M model), so only
        # positions where transformers' top token leads by half a logit are a fair test.
        top2 = np.sort(want, axis=-1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 0.5
        assert (got.argmax(-1)[clear] == want.argmax(-1)[clear]).all(), prompt
        decided += int(clear.sum())
    assert decided >= 40
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
@pytest.mark.parametrize(("quant", "max_diff", "agree"), [("F16", 0.5, 1.0), ("Q4_K_M", 12.0, 0.8)])
def test_f16_and_q4_k_m_exports_run_in_llamacpp(
    base_hf_dir: Path,
    hf: tuple[Any, Any],
    tmp_path: Path,
    quant: str,
    max_diff: float,
    agree: float,
) -> None:
    """Measured on four prompts: F16 max |d| 0.092, top-1 agreement 1.0; Q4_K_M (most of
    this model's rows are 576 wide, not a multiple of 256: Q5_0/Q8_0 fallbacks) 7.9, 0.89."""
    from charter.models.gguf import read_gguf

    result = export_gguf(base_hf_dir, tmp_path / "m.gguf", quant=quant)
    assert read_gguf(result.path).file_type == quant
    if quant == "Q4_K_M":
        assert "required fallback quantization" in result.card_path.read_text()
    model, tok = hf
    ids = chat_ids(tok, PROMPTS[0])
    want, got = hf_logits(model, ids), llama_logits(result.path, ids)
    assert np.abs(got - want).max() < max_diff
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= agree


@pytest.mark.slow
def test_lora_adapter_changes_the_export_as_the_merged_model_does(
    base_hf_dir: Path, hf: tuple[Any, Any], tmp_path: Path
) -> None:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_hf_dir), dtype="float32")
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"],
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:  # zero at init: set them so the adapter does something
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter))
    recorded = json.loads((adapter / "adapter_config.json").read_text())
    assert Path(recorded["base_model_name_or_path"]) == base_hf_dir

    result = export_gguf(adapter, tmp_path / "tuned.gguf", quant="F32")
    base_model, tok = hf
    reloaded = AutoModelForCausalLM.from_pretrained(str(base_hf_dir), dtype="float32")
    tuned = PeftModel.from_pretrained(reloaded, str(adapter)).eval()  # unmerged: base + B·A
    ids = chat_ids(tok, PROMPTS[0])
    got, want = llama_logits(result.path, ids), hf_logits(tuned, ids)
    assert np.abs(got - want).max() < F32_TOL
    assert np.abs(got - hf_logits(base_model, ids)).max() > 1.0  # the adapter really counts
    assert "LoRA adapter, merged" in result.card_path.read_text()
    assert result.n_params == 134_515_008  # merged: no adapter weights left


# --- what the file says about itself -------------------------------------------------------


@pytest.mark.slow
def test_export_reads_back_with_charter_inspect_and_keeps_the_tokenizer(f32_export: Any) -> None:
    from charter.cli import cli
    from charter.interp.gguf_torch import read_contents
    from charter.models import embedded_model_path

    r = CliRunner().invoke(cli, ["inspect", str(f32_export.path), "--json", "--bandwidth", "10"])
    assert r.exit_code == 0, r.output
    model = json.loads(r.output)["model"]
    assert model["parameters"] == f32_export.n_params
    assert model["file_type"] == "F32" and model["architecture"]["family"] == "llama"
    assert model["architecture"]["tied_embeddings"] is True

    base, ours = read_contents(embedded_model_path()), read_contents(f32_export.path)
    for key, value in base.metadata.items():
        if key.startswith("tokenizer."):
            assert ours.get(key) == value, key
    assert "<|im_start|>" in ours.get("tokenizer.chat_template")


@pytest.mark.slow
def test_model_card_renders_what_export_knows_and_the_callers_dict(f32_export: Any) -> None:
    from charter.models import embedded_model_path
    from charter.train.hf import file_sha256

    text = f32_export.card_path.read_text()
    assert f32_export.card_path == f32_export.path.with_suffix(".md")
    assert text.startswith("# base-f32\n")
    assert file_sha256(embedded_model_path()) in text and f32_export.sha256 in text
    assert "| Quantisation | F32 |" in text and "| Parameters | 134,515,008 |" in text
    assert "## Constitution" in text and "| Hash | c0ffee12 |" in text
    assert "### Sl data" in text and "| Rows | 4 |" in text
    assert "#### Loss curve" in text and "| Step | Loss |" in text and "| 2 |  |" in text
    assert "| Exported stage | dpo |" in text
    assert "| Evaluation | not run \\| yet |" in text  # a pipe cannot break the table


def test_render_card_tables_and_lists() -> None:
    text = render_card("t", {"quantisation": "Q8_0"}, {"notes": ["a", "b"], "n": 1.234567891})
    assert text.splitlines()[0] == "# t"
    assert "- a\n- b" in text and "| N | 1.23457 |" in text


# --- refusals (no model loaded: each is one clear error before any work) -------------------


def test_existing_output_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "tuned.gguf"
    out.write_bytes(b"precious")
    with pytest.raises(ExportError, match="already exists") as err:
        export_gguf(tmp_path / "no-model", out)
    assert str(out) in str(err.value) and out.read_bytes() == b"precious"

    out.unlink()
    out.with_suffix(".md").write_text("card")  # the card alone also blocks
    with pytest.raises(ExportError, match="already exists") as err:
        export_gguf(tmp_path / "no-model", out)
    assert str(out.with_suffix(".md")) in str(err.value) and not out.exists()


def test_unknown_quant_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown quantisation type 'Q3_X'") as err:
        export_gguf(tmp_path / "no-model", tmp_path / "sub" / "x.gguf", quant="Q3_X")
    assert all(q in str(err.value) for q in ("F32", "F16", "Q8_0", "Q4_1", "Q4_K_M"))
    assert not (tmp_path / "sub").exists()
    assert set(QUANT_TYPES) >= {"F32", "F16", "Q8_0", "Q4_1", "Q4_K_M", "Q5_K_M", "Q6_K"}


def test_missing_or_non_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such model folder"):
        export_gguf(tmp_path / "nope", tmp_path / "x.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="not a model folder"):
        export_gguf(tmp_path / "empty", tmp_path / "x.gguf")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/gone"}))
    with pytest.raises(ModelFileError, match=r"base model '/gone'.*--base-model"):
        export_gguf(adapter, tmp_path / "x.gguf")
    with pytest.raises(ExportError, match="ending in .gguf"):
        export_gguf(adapter, tmp_path / "x.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "empty"]


@pytest.mark.slow
def test_a_model_of_another_shape_than_the_base_is_refused(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    small = LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    LlamaForCausalLM(small).save_pretrained(str(tmp_path / "small"))
    with pytest.raises(ExportError, match="hidden_size is 64, the base has 576"):
        export_gguf(tmp_path / "small", tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_a_failed_quantisation_is_one_error_with_llamacpps_reason(tmp_path: Path) -> None:
    from charter.train.export import _quantize

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ExportError, match="could not quantise the model to Q8_0: .*failed"):
        _quantize(bad, tmp_path / "out.gguf", "Q8_0")


# --- the command ---------------------------------------------------------------------------


class TTYInput(io.BytesIO):
    """Stdin that says it is a terminal, so the command asks before overwriting."""

    def isatty(self) -> bool:
        return True


def test_cli_refuses_an_existing_output_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "t.gguf"
    out.write_bytes(b"keep")
    r = CliRunner().invoke(export_cmd, [str(tmp_path), "--out", str(out)])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        f"charter: error: {out} already exists; not overwriting it (use --force)"
    ]
    assert out.read_bytes() == b"keep"


def test_cli_asks_on_a_terminal_and_defaults_to_no(tmp_path: Path) -> None:
    out = tmp_path / "t.gguf"
    out.write_bytes(b"keep")
    r = CliRunner().invoke(
        export_cmd, [str(tmp_path / "m"), "--out", str(out)], input=TTYInput(b"\n")
    )
    assert "Overwrite it? [y/N]" in r.output and r.exit_code == 2
    assert r.output.strip().splitlines()[-1].startswith(f"charter: error: {out} already exists")
    # "y" goes past the question: the next error is about the (missing) model, not the file.
    r = CliRunner().invoke(
        export_cmd, [str(tmp_path / "m"), "--out", str(out)], input=TTYInput(b"y\n")
    )
    assert (
        r.output.strip().splitlines()[-1]
        == f"charter: error: {tmp_path / 'm'}: no such model folder"
    )
    assert out.read_bytes() == b"keep"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--quant", "Q9"], "charter: error: unknown quantisation type 'Q9'; choose one of F32,"),
        ([], "charter: error: {tmp}/m: no such model folder"),
        (["--card-json", "{tmp}/card.json"], "charter: error: {tmp}/card.json: no such file"),
        (["--card-json", "{tmp}/list.json"], "charter: error: {tmp}/list.json: the model card"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "list.json").write_text("[1, 2]")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = CliRunner().invoke(
        export_cmd, [str(tmp_path / "m"), "--out", str(tmp_path / "o.gguf"), *args]
    )
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.replace("{tmp}", str(tmp_path)))
