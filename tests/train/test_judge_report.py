"""The judge's own report card: position bias and order consistency from its votes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from charter.errors import ConfigError
from charter.train.config import parse_config
from charter.train.prefs import judge_report, judge_warning
from charter.train.tune import dpo_rows


def _row(xy: float, yx: float, *, chosen: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "votes": [
            {"principle": "p", "order": "xy", "p_y": xy},
            {"principle": "p", "order": "yx", "p_y": yx},
        ],
        "x_is": "draft",
        "y_is": "final",
        "source": "ai",
    }
    if chosen:
        row.update(chosen=[{}], rejected=[{}], chosen_is=chosen)
    return row


def test_a_judge_that_always_says_a_is_flagged() -> None:
    # p_y low when y is second, high when y is first: it follows the position, not the text.
    rows = [_row(0.2, 0.8) for _ in range(9)] + [_row(0.3, 0.4, chosen="x")]
    report = judge_report(rows)
    assert report["order_consistency"] == 0.1
    assert report["picks_a"] == 0.775
    assert report["chosen"] == {"draft": 1}
    warning = judge_warning(report)
    assert warning and "10%" in warning and "stronger judge" in warning


def test_a_consistent_judge_passes_and_human_rows_are_left_out() -> None:
    rows = [_row(0.9, 0.9, chosen="y"), _row(0.1, 0.2, chosen="x")]
    rows.append({"source": "human", "chosen": [{}], "votes": []})
    report = judge_report(rows)
    assert report == {
        "votes": 4,
        "order_consistency": 1.0,
        "picks_a": 0.525,
        "chosen": {"final": 1, "draft": 1},
    }
    assert judge_warning(report) is None
    assert judge_warning(judge_report([])) is None


def _config(tmp_path: Path, floor: float | None = None) -> Any:
    text = 'version = 1\n[run]\nout_dir = "run"\n'
    if floor is not None:
        text += f"[dpo]\nmin_judge_consistency = {floor}\n"
    cfg = parse_config(text, tmp_path / "train.toml")
    cfg.out_dir.mkdir(parents=True)
    return cfg


def _write(cfg: Any, rows: list[dict[str, Any]]) -> None:
    with (cfg.out_dir / "prefs.jsonl").open("w") as f:
        for i, row in enumerate(rows):
            pair = {"prompt": [{"role": "user", "content": f"q{i}"}]}
            f.write(json.dumps({**pair, **row}) + "\n")


def test_dpo_refuses_to_learn_a_position_biased_judge(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _write(cfg, [_row(0.2, 0.8, chosen="x") for _ in range(4)])
    with pytest.raises(ConfigError, match=r"only 0% of its votes .*min_judge_consistency = 0.6"):
        dpo_rows(cfg)


def test_human_pairs_are_kept_when_the_judge_fails_and_all_kept_at_floor_zero(
    tmp_path: Path,
) -> None:
    human = {"source": "human", "chosen": [{}], "rejected": [{}], "votes": []}
    cfg = _config(tmp_path)
    _write(cfg, [_row(0.2, 0.8, chosen="x"), _row(0.2, 0.8, chosen="x"), human])
    pairs, decided = dpo_rows(cfg)
    assert len(pairs) == 1 and decided["ai_pairs_left_out"] == 2
    assert decided["judge"]["order_consistency"] == 0.0
    cfg0 = _config(tmp_path / "zero", floor=0)
    _write(cfg0, [_row(0.2, 0.8, chosen="x"), _row(0.2, 0.8, chosen="x"), human])
    pairs, decided = dpo_rows(cfg0)
    assert len(pairs) == 3 and decided["ai_pairs_left_out"] == 0


def test_a_consistent_judge_trains(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _write(cfg, [_row(0.9, 0.9, chosen="y"), _row(0.1, 0.1, chosen="x")])
    pairs, decided = dpo_rows(cfg)
    assert len(pairs) == 2 and decided["ai_pairs_left_out"] == 0
