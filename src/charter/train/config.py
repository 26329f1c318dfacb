"""One config file records a whole training run: `charter train * --config train.toml`.

Every key is validated before any work starts: an unknown key or an impossible value fails
with the file, the key's dotted path and (where the file says it) the line, e.g.
``train.toml:14: sft.learning_rate: must be > 0, got -1``. Paths in the file are relative
to the file. The annotated default is ``charter/train/data/train-default.toml``; every key
has a default, so an empty file is a valid config.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from charter.errors import ConfigError

CONFIG_VERSION = 1


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RunSection(_Section):
    #: Where every stage writes (relative to the config file).
    out_dir: str = "train-run"
    #: Seeds prompt sampling, principle sampling, generation and training.
    seed: int = 0
    #: "default" (the shipped constitution) or a path to a constitution file.
    constitution: str = "default"


class ModelSection(_Section):
    #: The base model: "embedded" (SmolLM2-135M-Instruct) or a llama-architecture GGUF path.
    base: str = "embedded"


class BackendSection(_Section):
    """Who writes drafts, critiques and revisions, or judges pairs: any Charter backend
    (`llamacpp` runs the base GGUF in-process; `openai` a stronger upstream teacher)."""

    #: A backend name (`charter.backends` entry point): llamacpp, openai, transformers.
    backend: str = "llamacpp"
    #: That backend's options (e.g. base_url and model for `openai`). For llamacpp the model
    #: defaults to [model].base.
    options: dict[str, Any] = Field(default_factory=dict)
    #: Requests in flight at once (an upstream batches them; a local model runs one at a time).
    concurrency: int = Field(default=1, ge=1, le=256)


class GeneratorSection(BackendSection):
    max_tokens: int = Field(default=128, ge=8, le=4096)
    #: Drafts are sampled (temperature > 0) so the second answer of a pair differs.
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    #: Critiques are short by design: one or two sentences are what a small model manages.
    critique_max_tokens: int = Field(default=64, ge=8, le=2048)


class SLDataSection(_Section):
    #: Red-team prompts: the harm principles' covers plus templated rewordings of them.
    red_team: int = Field(default=300, ge=0)
    #: Helpful prompts: the constitution's look-alikes and harmless classes plus the project's
    #: own general requests, so helpfulness survives the tuning.
    helpful: int = Field(default=300, ge=0)
    #: Fraction of conversations given an earlier exchange (multi-turn data).
    multi_turn: float = Field(default=0.25, ge=0.0, le=1.0)
    #: Critique/revision rounds per draft (Bai et al. use up to 4).
    rounds: int = Field(default=1, ge=1, le=8)
    #: Rewordings drawn per red-team cover (0: covers as written only).
    augment_per_text: int = Field(default=2, ge=0, le=12)
    #: When a red-team revision still fails the constitution's screen, train on the
    #: constitution's own refusal for the principle instead (recorded per row).
    refusal_fallback: bool = True


class JudgeSection(BackendSection):
    #: Principles sampled per pair; the soft label is their average.
    principles_per_pair: int = Field(default=4, ge=1, le=32)
    #: Ask with the answers in both orders and average (cancels the judge's position bias).
    both_orders: bool = True
    #: Chain-of-thought before the choice; its labels are clamped to [0.4, 0.6] (Bai et al.).
    cot: bool = False
    cot_max_tokens: int = Field(default=96, ge=8, le=2048)


class PrefsSection(_Section):
    pairs: int = Field(default=300, ge=0)
    #: Pairs whose soft label is within this of 0.5 are dropped as undecided.
    min_margin: float = Field(default=0.05, ge=0.0, lt=0.5)
    judge: JudgeSection = Field(default_factory=JudgeSection)
    #: Human preference pairs (`charter feedback export`) to add, or "" for none.
    human: str = ""


class LoRASection(_Section):
    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"],
        min_length=1,
    )


class TuneSection(_Section):
    #: Passes over the data; max_steps > 0 overrides it.
    epochs: float = Field(default=1.0, gt=0.0, le=100.0)
    max_steps: int = Field(default=-1, ge=-1)
    learning_rate: float = Field(default=2e-4, gt=0.0, le=1.0)
    batch_size: int = Field(default=4, ge=1, le=4096)
    grad_accum: int = Field(default=1, ge=1, le=4096)
    #: Tokens per example (prompt + answer); longer ones are truncated by TRL and counted.
    max_length: int = Field(default=512, ge=32, le=131072)
    warmup_ratio: float = Field(default=0.03, ge=0.0, lt=1.0)
    #: Checkpoint every N optimizer steps (resume continues from the last one).
    save_steps: int = Field(default=25, ge=1)
    logging_steps: int = Field(default=5, ge=1)
    #: "auto": a GPU when torch sees one, else the CPU. bf16 only on a GPU that has it.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    lora: LoRASection = Field(default_factory=LoRASection)


class DPOSection(TuneSection):
    learning_rate: float = Field(default=5e-5, gt=0.0, le=1.0)
    beta: float = Field(default=0.1, gt=0.0, le=10.0)
    #: AI pairs are trained on only when the judge picked the same answer in both orders in
    #: at least this share of its votes (prefs.judge_report); 0 trains on any labels.
    min_judge_consistency: float = Field(default=0.6, ge=0.0, le=1.0)


class ExportSection(_Section):
    #: llama.cpp quantisation of the tuned GGUF.
    quant: Literal["F32", "F16", "Q8_0", "Q4_1", "Q4_K_M", "Q5_K_M", "Q6_K"] = "Q8_0"
    #: Which adapter to export: the last stage that ran ("auto"), or "sft" / "dpo".
    stage: Literal["auto", "sft", "dpo"] = "auto"
    #: The GGUF's name inside out_dir (or an absolute path).
    file: str = "charter-tuned.gguf"


class TrainConfig(_Section):
    version: int = CONFIG_VERSION
    run: RunSection = Field(default_factory=RunSection)
    model: ModelSection = Field(default_factory=ModelSection)
    generator: GeneratorSection = Field(default_factory=GeneratorSection)
    sl_data: SLDataSection = Field(default_factory=SLDataSection)
    prefs: PrefsSection = Field(default_factory=PrefsSection)
    sft: TuneSection = Field(default_factory=TuneSection)
    dpo: DPOSection = Field(default_factory=DPOSection)
    export: ExportSection = Field(default_factory=ExportSection)

    #: The file it was read from (paths resolve against its folder); not part of the hash.
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.version != CONFIG_VERSION:
            raise ValueError(f"version: this Charter reads version {CONFIG_VERSION}")
        prompts = self.sl_data.red_team + self.sl_data.helpful
        if self.prefs.pairs > prompts:
            raise ValueError(
                f"prefs.pairs: {self.prefs.pairs} pairs need at least {self.prefs.pairs} SL "
                f"prompts (sl_data.red_team + sl_data.helpful = {prompts}): one pair per prompt"
            )
        return self

    # ------------------------------------------------------------------ derived paths

    @property
    def root(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return (p if p.is_absolute() else (self.root / p)).resolve()

    @property
    def out_dir(self) -> Path:
        return self.path(self.run.out_dir)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def stage_hash(self, *sections: str) -> str:
        """A hash of the sections one stage depends on (run and model always count)."""
        d = self.to_dict()
        picked = {k: d[k] for k in ("version", "run", "model", *sections)}
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def default_config_text() -> str:
    return (resources.files("charter.train") / "data" / "train-default.toml").read_text("utf-8")


def load_config(path: str | Path | None) -> TrainConfig:
    """Read and validate a config file (None: the shipped default, out_dir in the cwd)."""
    if path is None:
        return parse_config(default_config_text(), None)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config: {exc}") from None
    return parse_config(text, p)


def parse_config(text: str, source: Path | None) -> TrainConfig:
    label = str(source) if source else "<default config>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    try:
        cfg = TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, text, label) for err in exc.errors()]
        msg = problems[0] if len(problems) == 1 else "; ".join(problems[:5])
        if len(problems) > 5:
            msg += f"; and {len(problems) - 5} more"
        raise ConfigError(msg) from None
    cfg.source = source.resolve() if source else None
    return cfg


def _describe(err: dict[str, Any], text: str, label: str) -> str:
    loc = [str(x) for x in err["loc"]]
    key = ".".join(loc) or "config"
    if err["type"] == "extra_forbidden":
        reason = "unknown key"
        known = _known_keys(loc[:-1])
        if known:
            reason += f" (known: {', '.join(known)})"
    elif err["type"] == "value_error":
        reason = str(err["msg"]).removeprefix("Value error, ")
        if ": " in reason and reason.split(": ", 1)[0].isidentifier():
            key, reason = reason.split(": ", 1)
    else:
        got = err.get("input")
        reason = f"{err['msg'].lower()}, got {json.dumps(got, default=str)}"
    line = _line_of(text, loc)
    where = f"{label}:{line}" if line else label
    return f"{where}: {key}: {reason}"


def _known_keys(section: list[str]) -> list[str]:
    model: Any = TrainConfig
    for part in section:
        field = model.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type):
            return []
        if not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return [k for k in model.model_fields if k != "source"]


def _line_of(text: str, loc: list[str]) -> int | None:
    """The line of a key in the TOML text: the `[a.b]` table header, then `key =` after it
    (good enough for the flat sections this file has; None when it cannot tell)."""
    if not loc:
        return None
    *tables, key = loc
    lines = text.splitlines()
    start = 0
    if tables:
        header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, tables)) + r"\s*\]")
        for i, line in enumerate(lines):
            if header.match(line):
                start = i + 1
                break
        else:
            return None
    keyrx = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for i in range(start, len(lines)):
        if i > start and lines[i].lstrip().startswith("[") and tables:
            break
        if keyrx.match(lines[i]):
            return i + 1
    return start if tables else None
