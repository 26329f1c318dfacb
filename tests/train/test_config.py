"""The training config: every key validated before any work, errors name the key and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from charter.errors import ConfigError
from charter.train.cli import train_group
from charter.train.config import default_config_text, load_config, parse_config


def test_the_shipped_default_is_valid_and_every_key_is_optional(tmp_path: Path) -> None:
    cfg = parse_config(default_config_text(), tmp_path / "train.toml")
    assert cfg.sl_data.red_team + cfg.sl_data.helpful >= 500
    assert cfg.prefs.pairs >= 500
    assert cfg.out_dir == tmp_path / "train-run"
    empty = parse_config("", tmp_path / "empty.toml")
    assert empty.sft.learning_rate > 0
    # Same content, same hash; a changed value changes it.
    assert parse_config("", None).hash == parse_config("", None).hash
    assert parse_config("[sft]\nlearning_rate = 0.001\n", None).hash != empty.hash


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[sft]\nlerning_rate = 0.1\n", "t.toml:2: sft.lerning_rate: unknown key (known: epochs"),
        ("colour = 'blue'\n", "t.toml:1: colour: unknown key"),
        (
            "[sft]\nlearning_rate = -1\n",
            "t.toml:2: sft.learning_rate: input should be greater than 0",
        ),
        ("[prefs.judge]\nprinciples_per_pair = 0\n", "prefs.judge.principles_per_pair: input"),
        ("[prefs]\nmin_margin = 0.5\n", "prefs.min_margin: input should be less than 0.5"),
        ("[export]\nquant = 'Q3_banana'\n", "export.quant: input should be"),
        ("[sft.lora]\nr = 0\n", "t.toml:2: sft.lora.r: input should be greater than or equal to 1"),
        ("[run]\nseed = 'x'\n", "run.seed: input should be a valid integer"),
        ("version = 7\n", "version: this Charter reads version 1"),
        ("[sft\n", "t.toml: not valid TOML"),
    ],
)
def test_bad_configs_fail_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, Path("t.toml"))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_more_pairs_than_prompts_is_impossible() -> None:
    with pytest.raises(ConfigError, match="prefs.pairs: 50 pairs need at least 50"):
        parse_config("[sl_data]\nred_team = 10\nhelpful = 10\n[prefs]\npairs = 50\n", None)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_cli_check_and_init(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "train.toml"
    r = runner.invoke(train_group, ["init", str(path)])
    assert r.exit_code == 0 and path.exists()
    r = runner.invoke(train_group, ["init", str(path)])
    assert r.exit_code != 0 and "exists; not overwriting" in r.output
    r = runner.invoke(train_group, ["check", "--config", str(path)])
    assert r.exit_code == 0, r.output
    assert "config ok" in r.output
    path.write_text("[sft]\nbatch = 4\n")
    r = runner.invoke(train_group, ["check", "--config", str(path)])
    assert r.exit_code == 2
    assert "sft.batch: unknown key" in r.output
    # A stage never starts on a bad config.
    r = runner.invoke(train_group, ["sl-data", "--config", str(path)])
    assert r.exit_code == 2 and "sft.batch: unknown key" in r.output
    assert not (tmp_path / "train-run").exists()


def test_cli_check_names_a_missing_constitution(tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text("[run]\nconstitution = 'mine.toml'\n")
    r = CliRunner().invoke(train_group, ["check", "--config", str(path)])
    assert r.exit_code != 0
    assert "mine.toml" in r.output


def test_run_rejects_unknown_stage(tmp_path: Path) -> None:
    r = CliRunner().invoke(train_group, ["run", "--stages", "sl-data,ppo"])
    assert r.exit_code != 0 and "unknown stage 'ppo'" in r.output
