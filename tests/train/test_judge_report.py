"""The judge's own report card: position bias and order consistency from its votes."""

from __future__ import annotations

from typing import Any

from charter.train.prefs import judge_report, judge_warning


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
