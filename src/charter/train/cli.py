"""`charter train`: the constitutional training loop from one config file (docs/training.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from charter.errors import CharterError, ConfigError

STAGES = ("sl-data", "prefs", "sft", "dpo", "export")

config_opt = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The run's TOML config (default: the shipped one, writing to ./train-run).",
)
restart_opt = click.option(
    "--restart", is_flag=True, help="Discard this stage's earlier output and start it over."
)


def _load(config_path: Path | None) -> Any:
    from charter.train.config import load_config

    return load_config(config_path)


def _constitution(cfg: Any) -> Any:
    from charter.constitution.loader import load_constitution, load_default

    c = cfg.run.constitution
    return load_default() if c == "default" else load_constitution(cfg.path(c))


def _fail(exc: CharterError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


def _read_run(cfg: Any) -> dict[str, Any]:
    path = cfg.out_dir / "run.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _write_run(cfg: Any, run: dict[str, Any]) -> None:
    """<out_dir>/run.json: each stage's figures, resources and evaluation (the card reads it)."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "run.json").write_text(json.dumps(run, indent=2) + "\n")


def _record(cfg: Any, stage: str, result: dict[str, Any]) -> None:
    """Add the stage's figures to run.json."""
    run = _read_run(cfg)
    run["config"] = cfg.to_dict()
    run["config_hash"] = cfg.hash
    run.setdefault("stages", {})[stage] = result
    _write_run(cfg, run)


@click.group("train")
def train_group() -> None:
    """Constitutional training: data, AI feedback, SFT, DPO, export (needs charter[train])."""


@train_group.command("init")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def init_cmd(path: Path) -> None:
    """Write the annotated default config to PATH (refuses to overwrite)."""
    from charter.train.config import default_config_text

    if path.exists():
        raise click.ClickException(f"{path} exists; not overwriting it")
    path.write_text(default_config_text(), encoding="utf-8")
    click.echo(f"wrote {path}")


@train_group.command("check")
@config_opt
def check_cmd(config_path: Path | None) -> None:
    """Validate the config (and the constitution it names) without doing any work."""
    try:
        cfg = _load(config_path)
        c = _constitution(cfg)
    except CharterError as exc:
        _fail(exc)
    click.echo(f"config ok: out_dir {cfg.out_dir}, constitution {c.name} {c.short_hash}")


@train_group.command("sl-data")
@config_opt
@restart_opt
def sl_data_cmd(config_path: Path | None, restart: bool) -> None:
    """Draft -> critique -> revision data (sl_data.jsonl), resumable."""
    from charter.train.sl_data import run_sl_data

    try:
        cfg = _load(config_path)
        result = run_sl_data(cfg, _constitution(cfg), restart=restart)
    except CharterError as exc:
        _fail(exc)
    _record(cfg, "sl_data", result)
    click.echo(json.dumps(result))


@train_group.command("prefs")
@config_opt
@restart_opt
def prefs_cmd(config_path: Path | None, restart: bool) -> None:
    """AI-feedback preference pairs with soft labels (prefs.jsonl), resumable."""
    from charter.train.prefs import judge_warning, run_prefs

    try:
        cfg = _load(config_path)
        result = run_prefs(cfg, _constitution(cfg), restart=restart)
    except CharterError as exc:
        _fail(exc)
    _record(cfg, "prefs", result)
    click.echo(json.dumps(result))
    warning = judge_warning(result["judge"])
    if warning:
        click.echo(warning, err=True)


@train_group.command("sft")
@config_opt
@restart_opt
def sft_cmd(config_path: Path | None, restart: bool) -> None:
    """LoRA SFT on sl_data.jsonl (TRL); resumes from its last checkpoint."""
    from charter.train.tune import run_sft

    try:
        cfg = _load(config_path)
        result = run_sft(cfg, restart=restart)
    except CharterError as exc:
        _fail(exc)
    _record(cfg, "sft", {k: v for k, v in result.items() if k != "loss_curve"})
    click.echo(json.dumps({k: v for k, v in result.items() if k != "loss_curve"}))


@train_group.command("dpo")
@config_opt
@restart_opt
def dpo_cmd(config_path: Path | None, restart: bool) -> None:
    """LoRA DPO on prefs.jsonl (TRL), from the SFT model; resumes from its last checkpoint."""
    from charter.train.tune import run_dpo

    try:
        cfg = _load(config_path)
        result = run_dpo(cfg, restart=restart)
    except CharterError as exc:
        _fail(exc)
    _record(cfg, "dpo", {k: v for k, v in result.items() if k != "loss_curve"})
    click.echo(json.dumps({k: v for k, v in result.items() if k != "loss_curve"}))


def eval_summary(run_dir: Path) -> dict[str, Any]:
    """The headline figures of a `charter eval` run (its report.json), for the model card:
    every rate of every suite as "value [low-high] (k/n)", plus what was evaluated."""
    path = Path(run_dir) / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        run, suites = report["run"], report["metrics"]["suites"]
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (run `charter eval ... --out {run_dir}` first)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a charter eval report ({exc})") from None
    figures: dict[str, str] = {}
    for suite, metrics in suites.items():
        for key, m in metrics.items():
            if isinstance(m, dict) and {"value", "low", "high", "k", "n"} <= m.keys():
                figures[f"{suite}: {key.replace('_', ' ')}"] = (
                    f"{m['value']:.1%} [{m['low']:.1%}-{m['high']:.1%}] ({m['k']}/{m['n']})"
                )
    return {
        "run": str(run_dir),
        "constitution hash": run.get("constitution_hash") or "none (constitution off)",
        "limit per suite": run.get("limit") or "all cases",
        "seed": run.get("seed"),
        "complete": run.get("complete"),
        "figures": figures,
    }


@train_group.command("export")
@config_opt
@click.option("--force", is_flag=True, help="Overwrite an existing GGUF and model card.")
@click.option(
    "--eval",
    "eval_runs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A `charter eval` run of this model to put in the model card (repeatable).",
)
def export_stage_cmd(config_path: Path | None, force: bool, eval_runs: tuple[Path, ...]) -> None:
    """Export the run's last adapter as the GGUF its config names, with a model card."""
    from charter.train.export import export_gguf

    try:
        cfg = _load(config_path)
        if eval_runs:
            _record_evaluation(cfg, [eval_summary(d) for d in eval_runs])
        stage = cfg.export.stage
        if stage == "auto":
            stage = "dpo" if (cfg.out_dir / "dpo" / "adapter").exists() else "sft"
        adapter = cfg.out_dir / stage / "adapter"
        if not (adapter / "adapter_config.json").exists():
            raise ConfigError(f"{adapter}: no adapter (run `charter train {stage}` first)")
        out = (
            cfg.path(cfg.export.file)
            if Path(cfg.export.file).is_absolute()
            else (cfg.out_dir / cfg.export.file)
        )
        run = _read_run(cfg)
        result = export_gguf(
            adapter,
            out,
            base_gguf=None if cfg.model.base == "embedded" else cfg.path(cfg.model.base),
            quant=cfg.export.quant,
            force=force,
            card=_card(cfg, run, stage),
        )
    except CharterError as exc:
        _fail(exc)
    summary = {
        "path": str(result.path),
        "card": str(result.card_path),
        "quant": result.quant,
        "size_bytes": result.size_bytes,
        "seconds": round(result.seconds, 1),
        "stage": stage,
    }
    _record(cfg, "export", summary)
    click.echo(json.dumps(summary))


def _record_evaluation(cfg: Any, summaries: list[dict[str, Any]]) -> None:
    run = _read_run(cfg)
    run["evaluation"] = {Path(s["run"]).name: s for s in summaries}
    _write_run(cfg, run)


def _card(cfg: Any, run: dict[str, Any], stage: str) -> dict[str, Any]:
    c = _constitution(cfg)
    stages = run.get("stages", {})
    return {
        "constitution": {"name": c.name, "version": c.version, "hash": c.hash},
        "exported stage": stage,
        "data": {k: stages[k] for k in ("sl_data", "prefs") if k in stages},
        "training": {k: stages[k] for k in ("sft", "dpo") if k in stages},
        "hyperparameters": {
            "sft": cfg.to_dict()["sft"],
            "dpo": cfg.to_dict()["dpo"],
            "generator": cfg.to_dict()["generator"],
            "judge": cfg.to_dict()["prefs"]["judge"],
        },
        "evaluation": run.get("evaluation", "not run: see docs/training.md for the commands"),
        "config hash": cfg.hash,
    }


@train_group.command("run")
@config_opt
@click.option(
    "--stages",
    default=",".join(STAGES),
    show_default=True,
    help="Comma-separated stages to run, in order.",
)
@click.option("--force", is_flag=True, help="Let export overwrite an existing GGUF.")
def run_cmd(config_path: Path | None, stages: str, force: bool) -> None:
    """Every stage in order, each in its own process (wall time and peak memory recorded)."""
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise click.ClickException(f"unknown stage {unknown[0]!r}; stages: {', '.join(STAGES)}")
    try:
        cfg = _load(config_path)
        _constitution(cfg)
    except CharterError as exc:
        _fail(exc)
    for stage in wanted:
        cmd = [sys.executable, "-m", "charter", "train"]
        cmd.append(stage)
        if config_path:
            cmd += ["--config", str(config_path)]
        if stage == "export" and force:
            cmd.append("--force")
        click.echo(f"== {stage}", err=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        peak_mib = usage.ru_maxrss / 1024  # Linux: KiB
        run = _read_run(cfg)
        run.setdefault("resources", {})[stage] = {
            "wall_s": round(wall, 1),
            "peak_rss_mib": round(peak_mib, 1),
            "exit": proc.returncode,
        }
        _write_run(cfg, run)
        click.echo(f"== {stage}: {wall:.0f} s, peak {peak_mib:.0f} MiB", err=True)
        if proc.returncode != 0:
            sys.exit(proc.returncode)


def _register_export_model() -> None:
    from charter.train.export import export_cmd

    train_group.add_command(export_cmd, "export-model")


_register_export_model()
