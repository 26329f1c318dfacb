"""`charter train sft` and `charter train dpo`: LoRA fine-tuning with TRL on the transformers side.

- **SFT** trains on ``sl_data.jsonl`` as prompt/completion pairs (the loss is on the answer
  only), starting from the base model as a float32 Hugging Face folder
  (`charter.train.hf.base_hf_folder`, made once from the GGUF and cached).
- **DPO** trains on ``prefs.jsonl``, starting from the SFT model with its adapter merged
  (when SFT ran; else from the base), with a fresh LoRA adapter; the reference model is the
  same weights with the adapter disabled (TRL's PEFT path: no second copy in memory).

Checkpoints are written every ``save_steps``; rerunning the same command resumes from the
last one (TRL/transformers `resume_from_checkpoint`). A finished stage leaves
``<stage>/adapter`` (PEFT folder) and ``<stage>/result.json`` (loss curve, steps, time).

Precision: float32 on the CPU (no native bf16 here: TRL's default bf16 made a LoRA step about
17x slower); bf16 on a GPU that supports it. See docs/training.md for a multi-GPU launch.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from charter.errors import ConfigError
from charter.train.config import TrainConfig, TuneSection
from charter.train.jsonl import read_rows
from charter.train.sl_data import base_model_path


def _device(section: TuneSection) -> tuple[bool, bool]:
    """(use_cpu, bf16) for the section's device setting."""
    import torch

    cuda = torch.cuda.is_available()
    if section.device == "cuda" and not cuda:
        raise ConfigError("sft/dpo device = 'cuda' but torch sees no GPU")
    use_cpu = section.device == "cpu" or not cuda
    bf16 = (not use_cpu) and torch.cuda.is_bf16_supported()
    return use_cpu, bf16


def _lora(section: TuneSection) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=section.lora.r,
        lora_alpha=section.lora.alpha,
        lora_dropout=section.lora.dropout,
        target_modules=list(section.lora.target_modules),
        task_type="CAUSAL_LM",
    )


def _common_args(cfg: TrainConfig, section: TuneSection, out: Path) -> dict[str, Any]:
    use_cpu, bf16 = _device(section)
    return {
        "output_dir": str(out / "checkpoints"),
        "num_train_epochs": section.epochs,
        "max_steps": section.max_steps,
        "per_device_train_batch_size": section.batch_size,
        "gradient_accumulation_steps": section.grad_accum,
        "learning_rate": section.learning_rate,
        "warmup_ratio": section.warmup_ratio,
        "logging_steps": section.logging_steps,
        "save_steps": section.save_steps,
        "save_total_limit": 2,
        "save_strategy": "steps",
        "max_length": section.max_length,
        "seed": cfg.run.seed,
        "data_seed": cfg.run.seed,
        "bf16": bf16,
        "fp16": False,
        "use_cpu": use_cpu,
        "gradient_checkpointing": False,
        "report_to": "none",
        "disable_tqdm": False,
        "dataloader_num_workers": 0,
    }


def _last_checkpoint(out: Path) -> str | None:
    ckpts = sorted(
        (p for p in (out / "checkpoints").glob("checkpoint-*") if p.is_dir()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return str(ckpts[-1]) if ckpts else None


def _finish(trainer: Any, out: Path, t0: float, extra: dict[str, Any]) -> dict[str, Any]:
    adapter = out / "adapter"
    trainer.model.save_pretrained(str(adapter))
    trainer.processing_class.save_pretrained(str(adapter))
    history = [h for h in trainer.state.log_history if "loss" in h]
    result = {
        "adapter": str(adapter),
        "steps": trainer.state.global_step,
        "epochs": round(float(trainer.state.epoch or 0), 3),
        "first_loss": history[0]["loss"] if history else None,
        "last_loss": history[-1]["loss"] if history else None,
        "loss_curve": [
            {"step": h["step"], "loss": round(h["loss"], 4)}
            for h in history
            if not math.isnan(h["loss"])
        ],
        "seconds": round(time.perf_counter() - t0, 1),
        **extra,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def sft_rows(cfg: TrainConfig) -> list[dict[str, Any]]:
    rows = [r for r in read_rows(cfg.out_dir / "sl_data.jsonl") if "messages" in r]
    if not rows:
        raise ConfigError(f"{cfg.out_dir / 'sl_data.jsonl'}: no usable rows (all skipped?)")
    return [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows]


def run_sft(cfg: TrainConfig, *, restart: bool = False) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from charter.train.hf import base_hf_folder

    out = cfg.out_dir / "sft"
    _guard(out, cfg.stage_hash("generator", "sl_data", "sft"), restart)
    rows = sft_rows(cfg)
    t0 = time.perf_counter()
    base = base_hf_folder(base_model_path(cfg), cfg.out_dir / "base-hf")
    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype="float32")
    args = SFTConfig(**_common_args(cfg, cfg.sft, out), completion_only_loss=True)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=_lora(cfg.sft),
    )
    trainer.train(resume_from_checkpoint=_last_checkpoint(out))
    return _finish(trainer, out, t0, {"examples": len(rows), "base": str(base)})


def dpo_rows(cfg: TrainConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The pairs DPO trains on, and what was decided about the AI judge's labels.

    When the judge's order consistency is below ``[dpo] min_judge_consistency`` its pairs
    are left out (training on them teaches its position bias); human pairs are kept, and
    with none left the stage refuses to start, saying why."""
    from charter.train.prefs import judge_report

    path = cfg.out_dir / "prefs.jsonl"
    every = read_rows(path)
    rows = [r for r in every if "chosen" in r]
    if not rows:
        raise ConfigError(f"{path}: no usable pairs (all undecided?)")
    report = judge_report(every)
    floor = cfg.dpo.min_judge_consistency
    c = report["order_consistency"]
    dropped = 0
    if c is not None and c < floor:
        kept = [r for r in rows if r.get("source") == "human"]
        dropped = len(rows) - len(kept)
        if not kept:
            raise ConfigError(
                f"{path}: the judge picked the same answer in both orders in only {c:.0%} of "
                f"its votes (below [dpo] min_judge_consistency = {floor}): its labels are "
                "mostly position bias and DPO would learn that. Use a stronger judge "
                '([prefs.judge] backend = "openai"), add human pairs, or set '
                "min_judge_consistency = 0 to train on them anyway"
            )
        rows = kept
    pairs = [
        {"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows
    ]
    return pairs, {"judge": report, "ai_pairs_left_out": dropped}


def sft_merged_folder(cfg: TrainConfig) -> Path:
    """The SFT model with its adapter merged, as a full float32 folder (DPO's start and its
    reference). Made once; rebuilt when the SFT adapter is newer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from charter.train.hf import base_hf_folder

    adapter = cfg.out_dir / "sft" / "adapter"
    target = cfg.out_dir / "dpo" / "start"
    stamp = target / "from-adapter.json"
    mtime = (adapter / "adapter_model.safetensors").stat().st_mtime
    if stamp.exists() and json.loads(stamp.read_text()).get("mtime") == mtime:
        return target
    base = base_hf_folder(base_model_path(cfg), cfg.out_dir / "base-hf")
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype="float32")
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tmp = target.with_name("start.tmp")
    merged.save_pretrained(str(tmp))
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(str(tmp))
    (tmp / "from-adapter.json").write_text(json.dumps({"mtime": mtime}))
    import shutil

    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def run_dpo(cfg: TrainConfig, *, restart: bool = False) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from charter.train.hf import base_hf_folder

    out = cfg.out_dir / "dpo"
    _guard(out, cfg.stage_hash("generator", "sl_data", "sft", "prefs", "dpo"), restart)
    rows, decided = dpo_rows(cfg)
    t0 = time.perf_counter()
    if (cfg.out_dir / "sft" / "adapter" / "adapter_config.json").exists():
        start, start_from = sft_merged_folder(cfg), "sft"
    else:
        start, start_from = base_hf_folder(base_model_path(cfg), cfg.out_dir / "base-hf"), "base"
    tok = AutoTokenizer.from_pretrained(str(start))
    model = AutoModelForCausalLM.from_pretrained(str(start), dtype="float32")
    args = DPOConfig(**_common_args(cfg, cfg.dpo, out), beta=cfg.dpo.beta)
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=_lora(cfg.dpo),
    )
    trainer.train(resume_from_checkpoint=_last_checkpoint(out))
    return _finish(
        trainer,
        out,
        t0,
        {"pairs": len(rows), "start": str(start), "start_from": start_from, **decided},
    )


def _guard(out: Path, stage_hash: str, restart: bool) -> None:
    """A stage folder belongs to one config: a rerun with another is refused (--restart)."""
    import shutil

    meta = out / "config.json"
    if restart and out.exists():
        shutil.rmtree(out)
    if meta.exists() and json.loads(meta.read_text()).get("config_hash") != stage_hash:
        raise ConfigError(
            f"{out} was trained with a different config; use --restart to train it again"
        )
    out.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"config_hash": stage_hash}) + "\n")
