"""Put runs side by side: metrics with their intervals and deltas, then case by case.

The first run is the reference. A delta is marked when the two 95% intervals do not
overlap: a conservative sign that the difference is not noise (overlapping intervals do not
prove the opposite). Case by case, a case whose outcome went fail → pass is *fixed*,
pass → fail *broken*; any change to or from an error is listed apart, since it says
nothing about the model's behaviour. Cases are matched by (suite, case_id).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charter.errors import ConfigError
from charter.eval.metrics import METRICS, SUITE_METRICS, compute
from charter.eval.report import (
    CSS,
    PALETTE,
    bar_chart,
    esc,
    fmt_stat,
    load_results,
    metric_kind,
    metric_label,
    page,
)

SNIPPET = 80
MAX_LISTED = 200


@dataclass
class RunData:
    """One loaded run: its directory, a short label (A, B, ...), run.json, metrics, cases."""

    path: Path
    label: str
    run: dict[str, Any]
    metrics: dict[str, Any]
    cases: dict[tuple[str, str], dict[str, Any]]

    @property
    def title(self) -> str:
        return f"{self.label}: {self.path.name}"


@dataclass
class CaseChange:
    suite: str
    case_id: str
    prompt: str
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def kind(self) -> str:
        """fixed (fail → pass), broken (pass → fail) or other (errors and the rest)."""
        a, b = self.before.get("outcome"), self.after.get("outcome")
        if a == "fail" and b == "pass":
            return "fixed"
        if a == "pass" and b == "fail":
            return "broken"
        return "other"


@dataclass
class RunDiff:
    """The case-by-case difference between the reference run and one other run."""

    base: RunData
    other: RunData
    changes: list[CaseChange] = field(default_factory=list)
    only_base: list[tuple[str, str]] = field(default_factory=list)
    only_other: list[tuple[str, str]] = field(default_factory=list)

    def group(self, kind: str) -> list[CaseChange]:
        return [c for c in self.changes if c.kind == kind]


@dataclass
class MetricRow:
    suite: str
    metric: str
    stats: list[dict[str, Any] | None]  # one per run, None where the run lacks it

    def delta(self, i: int) -> float | None:
        a, b = self.stats[0], self.stats[i]
        if not a or not b or a.get("value") is None or b.get("value") is None:
            return None
        return b["value"] - a["value"]

    def apart(self, i: int) -> bool:
        """True when run i's 95% interval and the reference's do not overlap."""
        a, b = self.stats[0], self.stats[i]
        if not a or not b or a.get("low") is None or b.get("low") is None:
            return False
        return a["high"] < b["low"] or b["high"] < a["low"]

    def direction(self, i: int) -> str | None:
        """ "better" or "worse" for run i against the reference, None if unknown or equal."""
        delta = self.delta(i)
        info = METRICS.get(self.metric)
        if delta is None or delta == 0 or info is None or info.better is None:
            return None
        if info.better == "zero":
            a, b = abs(self.stats[0]["value"]), abs(self.stats[i]["value"])  # type: ignore[index]
            return None if a == b else ("better" if b < a else "worse")
        return "better" if (delta < 0) == (info.better == "lower") else "worse"


def _labels(n: int) -> list[str]:
    letters = string.ascii_uppercase
    return [letters[i] if i < 26 else f"R{i + 1}" for i in range(n)]


def _snippet(text: Any, width: int = SNIPPET) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _md(text: Any) -> str:
    """A Markdown table cell: one line, pipes escaped, no raw HTML tags."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "\\<")


class Comparison:
    """Two or more runs, the first being the reference."""

    def __init__(self, runs: list[RunData]):
        self.runs = runs
        self.diffs = [self._diff(runs[0], other) for other in runs[1:]]

    # --- data -------------------------------------------------------------------------------

    @staticmethod
    def _diff(base: RunData, other: RunData) -> RunDiff:
        diff = RunDiff(base, other)
        for key, before in base.cases.items():
            after = other.cases.get(key)
            if after is None:
                diff.only_base.append(key)
            elif before.get("outcome") != after.get("outcome"):
                prompt = before.get("prompt") or after.get("prompt") or ""
                diff.changes.append(CaseChange(key[0], key[1], prompt, before, after))
        diff.only_other = [key for key in other.cases if key not in base.cases]
        return diff

    def suites(self) -> list[str]:
        names: list[str] = []
        for r in self.runs:
            names += [n for n in r.metrics["suites"] if n not in names]
        return names

    def metric_rows(self) -> list[MetricRow]:
        """Every top-level metric any run has, suite by suite, with each run's figure."""
        rows = []
        for suite in self.suites():
            per_run = [r.metrics["suites"].get(suite, {}) for r in self.runs]
            for metric in SUITE_METRICS:
                if any(metric in m for m in per_run):
                    rows.append(MetricRow(suite, metric, [m.get(metric) for m in per_run]))
        return rows

    def version_notes(self) -> list[str]:
        notes = []
        for suite in self.suites():
            versions = [
                (r.run.get("suites") or {}).get(suite, {}).get("version") for r in self.runs
            ]
            if len({v for v in versions if v is not None}) > 1:
                shown = ", ".join(
                    f"{r.label} {v}" for r, v in zip(self.runs, versions, strict=True)
                )
                notes.append(f"suite {suite} differs between runs ({shown}): cases may not match")
        return notes

    # --- Markdown ---------------------------------------------------------------------------

    def _cell(self, row: MetricRow, i: int) -> str:
        return fmt_stat(row.metric, row.stats[i]) if row.stats[i] else "—"

    def _delta_text(self, row: MetricRow, i: int) -> str:
        delta = row.delta(i)
        if delta is None:
            return "—"
        score = metric_kind(row.metric) == "score"
        text = f"{delta:+.2f}" if score else f"{100 * delta:+.1f} pts"
        direction = row.direction(i)
        if row.apart(i):
            text = f"**{text}** ✱"
            if direction:
                text += f" {direction}"
        return text

    def markdown(self) -> str:
        out = ["# Charter eval comparison", ""]
        for r in self.runs:
            run = r.run
            complete = "" if run.get("complete") else ", **incomplete**"
            out.append(
                f"- **{r.label}**: `{_md(r.path)}`: {_md(run.get('model'))}, constitution "
                f"{_md(run.get('constitution_hash') or 'none')}, started "
                f"{_md(run.get('started'))}{complete}"
            )
        out.append("")
        for note in self.version_notes():
            out += [f"> Note: {_md(note)}", ""]
        out += [
            "## Metrics",
            "",
            f"Values with 95% intervals; Δ is against {self.runs[0].label}. ✱ marks a delta "
            "whose two intervals do not overlap.",
            "",
        ]
        header = ["Suite", "Metric", self.runs[0].label]
        for r in self.runs[1:]:
            header += [r.label, f"Δ {r.label}"]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.metric_rows():
            cells = [_md(row.suite), metric_label(row.metric), self._cell(row, 0)]
            for i in range(1, len(self.runs)):
                cells += [self._cell(row, i), self._delta_text(row, i)]
            out.append("| " + " | ".join(cells) + " |")
        errors = [str(r.metrics["errors"]) for r in self.runs]
        out += ["", f"Errors (left out of every rate): {' / '.join(errors)}.", ""]
        for diff in self.diffs:
            out += self._diff_markdown(diff)
        return "\n".join(out).rstrip() + "\n"

    def _diff_markdown(self, diff: RunDiff) -> list[str]:
        a, b = diff.base.label, diff.other.label
        out = [f"## Cases: {a} → {b}", ""]
        if not diff.changes:
            out += ["No case changed outcome.", ""]
        titles = {
            "fixed": "Fixed (fail → pass)",
            "broken": "Broken (pass → fail)",
            "other": "Other changes (errors)",
        }
        for kind, title in titles.items():
            changes = diff.group(kind)
            if not changes:
                continue
            out += [
                f"### {title}: {len(changes)}",
                "",
                f"| Suite | Case | {a} | {b} | Prompt |",
                "|---|---|---|---|---|",
            ]
            for c in changes[:MAX_LISTED]:
                out.append(
                    f"| {_md(c.suite)} | {_md(c.case_id)} | {_md(_state(c.before))} | "
                    f"{_md(_state(c.after))} | {_md(_snippet(c.prompt))} |"
                )
            if len(changes) > MAX_LISTED:
                out.append(f"| … | {len(changes) - MAX_LISTED} more | | | |")
            out.append("")
        for label, keys in ((a, diff.only_base), (b, diff.only_other)):
            if keys:
                listed = ", ".join(f"{s}/{c}" for s, c in keys[:20])
                more = f" and {len(keys) - 20} more" if len(keys) > 20 else ""
                out += [f"Only in {label} ({len(keys)}): {_md(listed)}{more}", ""]
        return out

    # --- HTML -------------------------------------------------------------------------------

    def html(self) -> str:
        runs = self.runs
        colours = [(r.title, PALETTE[i % len(PALETTE)]) for i, r in enumerate(runs)]
        body = ["<header><h1>Charter eval comparison</h1><ul>"]
        for r in runs:
            complete = "" if r.run.get("complete") else " <strong>(incomplete)</strong>"
            body.append(
                f"<li><strong>{esc(r.label)}</strong>: {esc(r.path)} · {esc(r.run.get('model'))}"
                f" · constitution {esc(r.run.get('constitution_hash') or 'none')} · started "
                f"{esc(r.run.get('started'))}{complete}</li>"
            )
        body.append("</ul>")
        body += [f'<p class="warn">{esc(n)}</p>' for n in self.version_notes()]
        body.append("</header><main><h2>Metrics</h2>")
        body.append(self._metrics_table_html())
        rows = self.metric_rows()
        for suite in self.suites():
            for kind in ("rate", "score"):
                suite_rows = [r for r in rows if r.suite == suite and metric_kind(r.metric) == kind]
                if suite_rows:
                    body.append(
                        bar_chart(
                            f"{suite}: {'bias scores' if kind == 'score' else 'rates'} by run",
                            [metric_label(r.metric) for r in suite_rows],
                            colours,
                            [r.stats for r in suite_rows],
                            kind=kind,
                        )
                    )
        for diff in self.diffs:
            body.append(self._diff_html(diff))
        body.append("</main>")
        return page("Charter eval comparison", "\n".join(body), script=None, css=CSS + _CSS)

    def write_html(self, path: Path | str) -> None:
        path = Path(path)
        try:
            path.write_text(self.html(), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc

    def _metrics_table_html(self) -> str:
        head = "<th>Suite</th><th>Metric</th>" + f"<th>{esc(self.runs[0].label)}</th>"
        for r in self.runs[1:]:
            head += f"<th>{esc(r.label)}</th><th>Δ {esc(r.label)}</th>"
        rows = []
        for row in self.metric_rows():
            cells = [esc(row.suite), esc(metric_label(row.metric)), esc(self._cell(row, 0))]
            for i in range(1, len(self.runs)):
                delta = self._delta_text(row, i).replace("**", "")
                cls = row.direction(i) if row.apart(i) else ""
                cells += [esc(self._cell(row, i)), f'<span class="{cls}">{esc(delta)}</span>']
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        return (
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            '<p class="muted">✱ the two 95% intervals do not overlap.</p>'
        )

    def _diff_html(self, diff: RunDiff) -> str:
        a, b = diff.base.label, diff.other.label
        out = [f"<h2>Cases: {esc(a)} → {esc(b)}</h2>"]
        if not diff.changes:
            out.append("<p>No case changed outcome.</p>")
        else:
            out.append(
                '<table class="changes"><thead><tr><th>Change</th><th>Suite</th><th>Case</th>'
                f"<th>{esc(a)}</th><th>{esc(b)}</th><th>Prompt</th></tr></thead><tbody>"
            )
            order = {"broken": 0, "fixed": 1, "other": 2}
            for c in sorted(diff.changes, key=lambda c: order[c.kind]):
                out.append(
                    f'<tr class="{c.kind}"><td>{c.kind}</td><td>{esc(c.suite)}</td>'
                    f"<td>{esc(c.case_id)}</td><td>{esc(_state(c.before))}</td>"
                    f"<td>{esc(_state(c.after))}</td><td><details><summary>"
                    f"{esc(_snippet(c.prompt))}</summary>"
                    f"<h4>Prompt</h4><pre>{esc(c.prompt)}</pre>"
                    f"<h4>{esc(a)}: response</h4><pre>{esc(c.before.get('response'))}</pre>"
                    f"<p>{esc(c.before.get('why'))}</p>"
                    f"<h4>{esc(b)}: response</h4><pre>{esc(c.after.get('response'))}</pre>"
                    f"<p>{esc(c.after.get('why'))}</p></details></td></tr>"
                )
            out.append("</tbody></table>")
        for label, keys in ((a, diff.only_base), (b, diff.only_other)):
            if keys:
                listed = ", ".join(f"{s}/{c}" for s, c in keys[:50])
                more = f" and {len(keys) - 50} more" if len(keys) > 50 else ""
                out.append(f"<p>Only in {esc(label)} ({len(keys)}): {esc(listed)}{more}</p>")
        return "".join(out)


_CSS = """
tr.broken td:first-child{color:#b03000;font-weight:700}
tr.fixed td:first-child{color:#00704f;font-weight:700}
span.better{color:#00704f;font-weight:600}span.worse{color:#b03000;font-weight:600}
details pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f4f4f4;padding:6px;
max-height:20em;overflow:auto}details h4{margin:6px 0 2px;font-size:12px;color:#555}
header ul{margin:4px 0 8px}
"""


def _state(row: dict[str, Any]) -> str:
    return f"{row.get('outcome')} ({row.get('verdict')})"


def compare(run_dirs: list[Path]) -> Comparison:
    """Load two or more run directories; the first is the reference."""
    if len(run_dirs) < 2:
        raise ConfigError("compare needs at least two run directories")
    labels = _labels(len(run_dirs))
    runs = []
    for label, path in zip(labels, run_dirs, strict=True):
        path = Path(path)
        run, results = load_results(path)
        cases = {(r["suite"], r["case_id"]): r for r in results}
        runs.append(RunData(path, label, run, compute(run, results), cases))
    return Comparison(runs)
