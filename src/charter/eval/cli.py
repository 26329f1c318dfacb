"""`charter eval`: run suites against an endpoint, list suites, rebuild reports, compare, gate.

`charter eval [SUITES]... --url URL` is short for `charter eval run [SUITES]... --url URL`:
the group routes any first argument that is not a subcommand to `run`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from charter.errors import CharterError, ConfigError, UpstreamError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class DefaultRunGroup(click.Group):
    """A group whose first argument, unless it names a subcommand, starts `run`'s arguments.

    Run on its own (not under `charter`), it also turns CharterErrors into one-line
    `charter: error: ...` messages, as `charter.cli.main` does.
    """

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def main(self, args: Any = None, prog_name: str | None = None, **kw: Any) -> Any:
        if not kw.get("standalone_mode", True):
            return super().main(args, prog_name, **kw)
        kw["standalone_mode"] = False
        try:
            rv = super().main(args, prog_name or "charter eval", **kw)
        except CharterError as exc:
            click.echo(f"charter: error: {exc.message}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:  # Ctrl-C (click has already ended the line)
            sys.exit(130)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group("eval", cls=DefaultRunGroup, context_settings=CONTEXT)
def eval_group() -> None:
    """Evaluate any OpenAI-compatible endpoint on safety, over-refusal, bias and facts.

    `charter eval [SUITES]... --url URL` runs SUITES (shipped names or your own .jsonl files;
    default: every shipped suite) and writes run.json, results.jsonl and reports to --out.
    Rerun the same command to resume an interrupted run.
    """


@eval_group.command("run", context_settings=CONTEXT)
@click.argument("suites", nargs=-1, metavar="[SUITES]...")
@click.option(
    "--url", required=True, help="Root of an OpenAI-compatible server, e.g. http://127.0.0.1:8000"
)
@click.option("--model", default=None, help="Model id to request (default: the first listed).")
@click.option(
    "--concurrency", type=int, default=1, show_default=True, help="Requests in flight at once."
)
@click.option(
    "--limit",
    type=int,
    default=None,
    help="At most N cases per suite, a stratified sample that covers every category.",
)
@click.option(
    "--seed", type=int, default=None, help="Sent with every request; also shuffles --limit."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run directory (default: eval-runs/<model>-<UTC time>). An existing run there with "
    "the same settings is resumed.",
)
@click.option("--max-tokens", type=int, default=128, show_default=True, help="Longest answer.")
@click.option(
    "--temperature", type=float, default=0.0, show_default=True, help="Sampling temperature."
)
@click.option(
    "--api-key",
    envvar="CHARTER_EVAL_API_KEY",
    show_envvar=True,
    default=None,
    help="Bearer key, if the endpoint needs one.",
)
@click.option(
    "--judge-url",
    default=None,
    help="An OpenAI-compatible endpoint whose model judges answers (never the one tested).",
)
@click.option("--judge-model", default=None, help="Judge model id (default: the first listed).")
@click.option(
    "--judge-api-key",
    envvar="CHARTER_EVAL_JUDGE_API_KEY",
    show_envvar=True,
    default=None,
    help="Bearer key for the judge endpoint.",
)
@click.option("--restart", is_flag=True, help="Clear the run directory and start over.")
@click.option("--quiet", is_flag=True, help="No progress bars or notes, just the summary.")
@click.option("--retry-backoff", type=float, default=1.0, hidden=True)
def run_cmd(suites: tuple[str, ...], **kw: Any) -> None:
    """Run SUITES (default: all shipped) against --url and print the summary."""
    from charter.eval.runner import EvalOptions, run_eval

    backoff = kw.pop("retry_backoff")
    opts = EvalOptions(suites=list(suites), backoff=backoff, **kw)
    result = run_eval(opts, echo=lambda s: click.echo(s, err=True))
    if result.summary is not None:
        click.echo(result.summary)
    if not opts.quiet:
        click.echo(f"wrote {result.out_dir} (report.html, summary.md, results.jsonl)", err=True)
    if result.errors:
        first = f" (first: {result.first_error})" if result.first_error else ""
        raise UpstreamError(
            f"{result.errors} of {result.total} cases ended in errors{first}; run the same "
            f"command with --out {result.out_dir} to retry them"
        )


@eval_group.command("list", context_settings=CONTEXT)
def list_cmd() -> None:
    """List the shipped suites: version, number of cases and categories."""
    from charter.eval.suites import SuiteError, list_suites, load_suite

    rows = [("SUITE", "VERSION", "CASES", "CATEGORIES")]
    broken = 0
    for info in list_suites():
        try:
            s = load_suite(info.name)
        except SuiteError as exc:
            broken += 1
            rows.append((info.name, info.version, "-", f"(error: {exc.message})"))
            continue
        cats = s.categories
        rows.append(
            (s.name, s.recorded_version, str(len(s.cases)), f"{len(cats)}: {', '.join(cats)}")
        )
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[3])
    if broken:
        raise ConfigError(f"{broken} shipped suite(s) cannot be loaded (see above)")


def _run_dir(path: Path) -> Path:
    if not (path / "run.json").is_file():
        raise ConfigError(f"{path} is not a run directory (it has no run.json)")
    return path


@eval_group.command("report", context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(path_type=Path))
def report_cmd(run_dir: Path) -> None:
    """Regenerate report.json, report.html and summary.md of RUN_DIR; print the summary."""
    from charter.eval.report import write_reports

    click.echo(write_reports(_run_dir(run_dir)))
    click.echo(f"wrote {run_dir / 'report.html'}", err=True)


@eval_group.command("compare", context_settings=CONTEXT)
@click.argument("runs", nargs=-1, metavar="RUN_A RUN_B [RUN]...", type=click.Path(path_type=Path))
@click.option(
    "--html",
    "html_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the comparison as HTML here.",
)
def compare_cmd(runs: tuple[Path, ...], html_out: Path | None) -> None:
    """Compare two or more runs, rate by rate, with intervals."""
    from charter.eval.compare import compare

    if len(runs) < 2:
        raise ConfigError("compare needs at least two run directories")
    result = compare([_run_dir(r) for r in runs])
    click.echo(result.markdown())
    if html_out:
        result.write_html(html_out)
        click.echo(f"wrote {html_out}", err=True)


@eval_group.command("gate", context_settings=CONTEXT)
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.option(
    "--policy",
    required=True,
    type=click.Path(path_type=Path),
    help="The gate policy (TOML): thresholds a run must meet.",
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    default=None,
    help="A previous run that RUN must not regress from.",
)
@click.pass_context
def gate_cmd(ctx: click.Context, run_dir: Path, policy: Path, baseline: Path | None) -> None:
    """Check RUN against a policy; exit 1 and list the failures if it falls short."""
    from charter.eval.gate import check, load_policy

    if not policy.is_file():
        raise ConfigError(f"no such policy file: {policy}")
    rules = load_policy(policy)
    failures = check(rules, _run_dir(run_dir), _run_dir(baseline) if baseline else None)
    if failures:
        click.echo(f"gate failed: {len(failures)} check(s) not met")
        for f in failures:
            click.echo(f"  - {f}")
        ctx.exit(1)
    click.echo("gate passed")
