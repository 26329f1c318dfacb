"""The model card's evaluation section: read from `charter eval` reports, bad runs refused."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from charter.train.cli import eval_summary, train_group


def _report(run_dir: Path, *, k: int = 3, n: int = 10) -> Path:
    run_dir.mkdir(parents=True)
    rate = {"value": k / n, "k": k, "n": n, "low": 0.1, "high": 0.6}
    report = {
        "run": {"seed": 0, "limit": 10, "constitution_hash": None, "complete": True},
        "metrics": {
            "suites": {
                "harmful": {"n": n, "attack_success_rate": rate, "latency_ms": {"p50": 1.0}},
                "benign-edgy": {"over_refusal_rate": dict(rate, k=1, value=0.1)},
            }
        },
    }
    (run_dir / "report.json").write_text(json.dumps(report))
    return run_dir


def test_eval_summary_lists_every_rate_with_its_interval(tmp_path: Path) -> None:
    s = eval_summary(_report(tmp_path / "tuned-off"))
    assert s["figures"] == {
        "harmful: attack success rate": "30.0% [10.0%-60.0%] (3/10)",
        "benign-edgy: over refusal rate": "10.0% [10.0%-60.0%] (1/10)",
    }
    assert s["limit per suite"] == 10
    assert s["constitution hash"].startswith("none")


def test_export_refuses_a_missing_or_broken_eval_run(tmp_path: Path) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text('version = 1\n[run]\nout_dir = "run"\n')
    runner = CliRunner()
    r = runner.invoke(
        train_group, ["export", "--config", str(cfg), "--eval", str(tmp_path / "nope")]
    )
    assert r.exit_code != 0 and "report.json: no such file" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "report.json").write_text("{not json")
    r = runner.invoke(train_group, ["export", "--config", str(cfg), "--eval", str(bad)])
    assert r.exit_code != 0 and "not a charter eval report" in r.output
    assert not (tmp_path / "run" / "run.json").exists()  # nothing recorded from a bad run
