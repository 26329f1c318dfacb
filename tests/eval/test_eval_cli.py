"""`charter eval` as a click group: default-to-run routing, subcommands, one-line errors."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from charter.errors import CharterError
from charter.eval.cli import eval_group
from tests.conftest import free_port
from tests.eval.test_runner import Scripted, StubScorer, completion, failure, write_suite


@pytest.fixture(autouse=True)
def _stub_scorer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("charter.eval.runner._make_scorer", lambda opts: StubScorer())


@pytest.fixture
def server() -> Iterator[Scripted]:
    srv = Scripted(lambda body, n: completion("I can't help with that."))
    yield srv
    srv.close()


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(eval_group, [str(a) for a in args])


def one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    err = result.stderr.strip().splitlines()
    assert err and err[-1].startswith("charter: error: "), result.stderr
    for n in needles:
        assert n in err[-1], err[-1]


def test_help_lists_subcommands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("run", "list", "report", "compare", "gate"):
        assert name in result.output
    assert invoke("run", "--help").exit_code == 0
    assert "--judge-url" in invoke("run", "--help").output


def test_list_shows_shipped_suites() -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["SUITE", "VERSION", "CASES", "CATEGORIES"]
    names = [ln.split()[0] for ln in lines[1:]]
    assert names == ["harmful", "jailbreak", "benign-edgy", "bias", "factual"]
    for ln in lines[1:]:
        _, version, cases, ncat = ln.split()[:4]
        assert version.startswith("1+") and len(version) == 14
        assert int(cases) > 0 and ncat.endswith(":")


@pytest.mark.parametrize("prefix", [(), ("run",)])
def test_suites_default_to_run(tmp_path: Path, server: Scripted, prefix: tuple[str, ...]) -> None:
    suite = write_suite(tmp_path, 1, "ab")
    out = tmp_path / "run"
    result = invoke(*prefix, suite, "--url", server.url, "--out", out, "--seed", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert "# Charter eval" in result.stdout  # the summary
    assert result.stderr == ""  # --quiet
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 3 and run["complete"] is True
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_options_first_also_run(tmp_path: Path, server: Scripted) -> None:
    suite = write_suite(tmp_path, 1, "a")
    result = invoke("--url", server.url, "--out", tmp_path / "r", "--max-tokens", "7", suite)
    assert result.exit_code == 0, result.output
    assert server.bodies[0]["max_tokens"] == 7
    assert "wrote" in result.stderr


def test_default_out_dir(tmp_path: Path, server: Scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(write_suite(tmp_path, 1, "a"), "--url", server.url, "--model", "a/b:c")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "eval-runs").iterdir()
    assert run_dir.name.startswith("a_b_c-") and run_dir.name.endswith("Z")
    assert (run_dir / "run.json").exists()


def test_errored_cases_exit_1_after_the_summary(tmp_path: Path) -> None:
    srv = Scripted(lambda body, n: failure(500, "kaboom"))
    try:
        out = tmp_path / "run"
        suite = write_suite(tmp_path, 1, "a")
        result = invoke(suite, "--url", srv.url, "--out", out, "--retry-backoff", "0", "--quiet")
    finally:
        srv.close()
    one_line_error(result, 1, "1 of 1 cases ended in errors", "HTTP 500: kaboom", f"--out {out}")
    assert "# Charter eval" in result.stdout


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    one_line_error(invoke("nosuch", "--url", url), 2, "unknown suite 'nosuch'")
    suite = write_suite(tmp_path, 1, "a")
    one_line_error(invoke(suite, "--url", url, "--judge-model", "j"), 2, "needs --judge-url")
    one_line_error(invoke(suite, "--url", url, "--concurrency", "0"), 2, "--concurrency")
    one_line_error(invoke(suite, "--url", "localhost:8000"), 2, "http://")
    one_line_error(invoke(suite, "--url", url), 1, f"cannot reach {url}: connection refused")
    missing = invoke(suite)
    assert missing.exit_code == 2 and "Missing option '--url'" in missing.output


def test_errors_propagate_when_nested() -> None:
    """Under `charter` (standalone_mode=False), charter.cli.main formats the error itself."""
    top = click.Group("charter")
    top.add_command(eval_group)
    with pytest.raises(CharterError, match="unknown suite"):
        top.main(["eval", "nosuch", "--url", "http://127.0.0.1:9"], standalone_mode=False)


def test_report_regenerates(tmp_path: Path, server: Scripted) -> None:
    pytest.importorskip("charter.eval.report")
    out = tmp_path / "run"
    first = invoke(write_suite(tmp_path, 1, "a"), "--url", server.url, "--out", out, "--quiet")
    assert first.exit_code == 0, first.output
    (out / "summary.md").unlink()
    (out / "report.html").unlink()
    result = invoke("report", out)
    assert result.exit_code == 0, result.output
    assert (out / "summary.md").exists() and (out / "report.html").exists()
    assert result.stdout.strip() == (out / "summary.md").read_text().strip()
    one_line_error(invoke("report", tmp_path / "nothing"), 2, "is not a run directory")


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: Any) -> None:
    mod = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(mod, k, v)
    monkeypatch.setitem(sys.modules, name, mod)


def run_dirs(tmp_path: Path, *names: str) -> list[Path]:
    dirs = []
    for n in names:
        (tmp_path / n).mkdir()
        (tmp_path / n / "run.json").write_text("{}")
        dirs.append(tmp_path / n)
    return dirs


def test_compare_wiring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[Path]] = []

    class Comparison:
        def markdown(self) -> str:
            return "| run | rate |"

        def write_html(self, path: Path) -> None:
            Path(path).write_text("<html>")

    def compare(dirs: list[Path]) -> Comparison:
        seen.append(dirs)
        return Comparison()

    fake_module(monkeypatch, "charter.eval.compare", compare=compare)
    a, b, c = run_dirs(tmp_path, "a", "b", "c")
    html = tmp_path / "cmp.html"
    result = invoke("compare", a, b, c, "--html", html)
    assert result.exit_code == 0, result.output
    assert seen == [[a, b, c]]
    assert result.stdout.strip() == "| run | rate |"
    assert html.read_text() == "<html>"
    one_line_error(invoke("compare", a), 2, "at least two run directories")
    one_line_error(invoke("compare", a, tmp_path / "zz"), 2, "zz is not a run directory")


def test_gate_wiring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    failures: list[str] = []

    def check(policy: Any, run_dir: Path, baseline_dir: Path | None = None) -> list[str]:
        calls.append((policy, run_dir, baseline_dir))
        return list(failures)

    fake_module(
        monkeypatch,
        "charter.eval.gate",
        load_policy=lambda path: {"from": Path(path).name},
        check=check,
    )
    run, base = run_dirs(tmp_path, "run", "base")
    policy = tmp_path / "gate.toml"
    policy.write_text("")

    passed = invoke("gate", "--policy", policy, run, "--baseline", base)
    assert passed.exit_code == 0, passed.output
    assert passed.stdout.strip() == "gate passed"
    assert calls == [({"from": "gate.toml"}, run, base)]

    failures[:] = ["harmful: attack success 12% > 5%", "factual: accuracy fell 4 points"]
    failed = invoke("gate", "--policy", policy, run)
    assert failed.exit_code == 1
    assert failed.stdout.splitlines() == [
        "gate failed: 2 check(s) not met",
        "  - harmful: attack success 12% > 5%",
        "  - factual: accuracy fell 4 points",
    ]
    assert calls[-1] == ({"from": "gate.toml"}, run, None)
    one_line_error(invoke("gate", "--policy", tmp_path / "no.toml", run), 2, "no such policy")


def test_end_to_end_run_compare_gate(tmp_path: Path) -> None:
    """Two runs through the real report, compare and gate modules: one that refuses
    everything, one that complies with everything."""
    refuser = Scripted(lambda body, n: completion("I can't help with that."))
    helper = Scripted(lambda body, n: completion("Sure, here is how."))
    suite = write_suite(tmp_path, 2, "abc")  # a: expected refuse; b, c: expected comply
    a, b = tmp_path / "A", tmp_path / "B"
    try:
        for srv, out in ((refuser, a), (helper, b)):
            result = invoke(suite, "--url", srv.url, "--out", out, "--quiet")
            assert result.exit_code == 0, result.output
    finally:
        refuser.close()
        helper.close()

    html = tmp_path / "cmp.html"
    cmp = invoke("compare", a, b, "--html", html)
    assert cmp.exit_code == 0, cmp.output
    assert "attack success" in cmp.stdout.lower() and "A" in cmp.stdout and "B" in cmp.stdout
    assert html.read_text().lstrip().lower().startswith("<!doctype html")

    policy = tmp_path / "gate.toml"
    policy.write_text('[thresholds]\n"mini.attack_success_rate" = { max = 0.5 }\n')
    assert invoke("gate", "--policy", policy, a).stdout.strip() == "gate passed"
    failed = invoke("gate", "--policy", policy, b)
    assert failed.exit_code == 1
    assert failed.stdout.startswith("gate failed: 1 check(s) not met")
    assert "attack" in failed.stdout and "mini" in failed.stdout

    policy.write_text(
        '[regression]\nmetrics = ["mini.over_refusal_rate"]\nmode = "value"\ntolerance = 0.0\n'
    )
    assert invoke("gate", "--policy", policy, b, "--baseline", a).exit_code == 0
    regressed = invoke("gate", "--policy", policy, a, "--baseline", b)
    assert regressed.exit_code == 1 and "over" in regressed.stdout.lower()

    policy.write_text('[thresholds]\n"mini.no_such_metric" = { max = 1 }\n')
    one_line_error(invoke("gate", "--policy", policy, a), 2, "no_such_metric")
