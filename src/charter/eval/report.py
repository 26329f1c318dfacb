"""Reports of one run: ``report.json`` (everything), ``summary.md`` (short) and ``report.html``.

The HTML page is one self-contained file that works offline: inline CSS, inline SVG charts
drawn here (bars with 95% interval whiskers), and a little inline script that filters the
case table and expands rows. Everything that came from a model or a suite file is
HTML-escaped, and the page's Content-Security-Policy only lets the page's own script (by
its hash) run, so a ``<script>`` in a response is shown as text and could not run even if
it slipped through.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from charter.errors import ConfigError
from charter.eval.metrics import METRICS, SUITE_METRICS, compute

RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"
REPORT_JSON = "report.json"
SUMMARY_MD = "summary.md"
REPORT_HTML = "report.html"

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#7F7F7F")
GOOD, BAD, NEUTRAL, GREY = "#009E73", "#D55E00", "#E69F00", "#BBBBBB"


# --- loading --------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc


def load_results(run_dir: Path | str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """run.json and one row per case from results.jsonl (the last line for a case wins).

    A missing results.jsonl is a run that scored nothing yet; a malformed line is a
    ConfigError naming ``file:line``.
    """
    run_dir = Path(run_dir)
    run_path = run_dir / RUN_FILE
    if not run_path.is_file():
        raise ConfigError(f"{run_dir} is not an eval run directory: it has no {RUN_FILE}")
    run = _read_json(run_path)
    if not isinstance(run, dict):
        raise ConfigError(f"{run_path}: expected a JSON object")
    results_path = run_dir / RESULTS_FILE
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if not results_path.exists():
        return run, []
    try:
        lines = results_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {results_path}: {exc}") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{results_path}:{lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise ConfigError(f"{results_path}:{lineno}: expected a JSON object")
        for key in ("suite", "case_id"):
            if not isinstance(row.get(key), str):
                raise ConfigError(f"{results_path}:{lineno}: missing or non-string {key!r}")
        rows[(row["suite"], row["case_id"])] = row
    return run, list(rows.values())


def write_reports(run_dir: Path | str) -> str:
    """Write report.json, summary.md and report.html into run_dir; return the summary."""
    run_dir = Path(run_dir)
    run, results = load_results(run_dir)
    metrics = compute(run, results)
    report = {"run": run, "metrics": metrics, "cases": results}
    summary = render_summary(run, metrics)
    try:
        (run_dir / REPORT_JSON).write_text(
            json.dumps(report, indent=1, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        (run_dir / SUMMARY_MD).write_text(summary, encoding="utf-8")
        (run_dir / REPORT_HTML).write_text(render_html(run, metrics, results), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the reports into {run_dir}: {exc.strerror}") from exc
    return summary


# --- formatting -----------------------------------------------------------------------------


def fmt_value(stat: dict[str, Any] | None, kind: str = "rate", *, interval: bool = True) -> str:
    """ "12.0% [8.1–17.4]" for a rate, "+0.20 [-0.40, +0.80]" for a score, "n/a" if unmeasured."""
    if not stat or stat.get("value") is None:
        return "n/a"
    if kind == "score":
        text = f"{stat['value']:+.2f}"
        if interval and stat.get("low") is not None:
            text += f" [{stat['low']:+.2f}, {stat['high']:+.2f}]"
        return text
    text = f"{100 * stat['value']:.1f}%"
    if interval and stat.get("low") is not None:
        text += f" [{100 * stat['low']:.1f}–{100 * stat['high']:.1f}]"
    return text


def metric_kind(metric: str) -> str:
    info = METRICS.get(metric)
    return info.kind if info else "rate"


def fmt_stat(metric: str, stat: dict[str, Any] | None, *, interval: bool = True) -> str:
    """A metric's Rate or score as text, in the metric's own kind (see fmt_value)."""
    return fmt_value(stat, metric_kind(metric), interval=interval)


def fmt_interval(metric: str, stat: dict[str, Any] | None) -> str:
    if not stat or stat.get("low") is None:
        return ""
    if metric_kind(metric) == "score":
        return f"{stat['low']:+.2f} to {stat['high']:+.2f}"
    return f"{100 * stat['low']:.1f}–{100 * stat['high']:.1f}%"


def fmt_count(stat: dict[str, Any]) -> str:
    if "k" in stat:
        return f"{stat['k']}/{stat['n']}"
    if "n_non_unknown" in stat:
        return f"{stat['n_biased']}/{stat['n_non_unknown']} biased, n={stat['n']}"
    return f"n={stat.get('n', 0)}"


def fmt_duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "unknown"
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def fmt_ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def metric_label(metric: str) -> str:
    info = METRICS.get(metric)
    return info.label if info else metric


def _md(text: Any) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _run_facts(run: dict[str, Any]) -> list[tuple[str, str]]:
    judge = run.get("judge")
    if isinstance(judge, dict):
        judge_text = f"{judge.get('model')} at {judge.get('url')}"
    else:
        judge_text = "none (rule-based scoring)"
    params = run.get("params") or {}
    suites = run.get("suites") or {}
    seed = run.get("seed")
    seed_text = "none" if seed is None else str(seed)
    if seed is not None and run.get("seed_supported") is False:
        seed_text += " (ignored by the endpoint: reruns may differ)"
    return [
        ("Endpoint", str(run.get("endpoint"))),
        ("Model", str(run.get("model"))),
        ("Constitution", str(run.get("constitution_hash") or "none (plain endpoint)")),
        (
            "Suites",
            ", ".join(f"{n} {(s or {}).get('version', '?')}" for n, s in suites.items()) or "none",
        ),
        ("Judge", judge_text),
        (
            "Sampling",
            f"temperature {params.get('temperature')}, max_tokens {params.get('max_tokens')}, "
            f"seed {seed_text}",
        ),
        ("Started", str(run.get("started"))),
        ("Duration", fmt_duration(run.get("duration_s"))),
        ("Tool", f"{run.get('tool', 'charter')} {run.get('tool_version', '')}".strip()),
    ]


# --- summary.md -----------------------------------------------------------------------------


def render_summary(run: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The short Markdown summary: run facts, headline pairs, one table per suite."""
    out = [f"# Charter eval: {_md(run.get('model'))}", ""]
    if not run.get("complete"):
        out += [
            "> **Incomplete run**: it stopped before every case was scored; the figures "
            "cover only the cases that ran.",
            "",
        ]
    out += ["| | |", "|---|---|"]
    out += [f"| {k} | {_md(v)} |" for k, v in _run_facts(run)]
    out.append(f"| Errors | {metrics['errors']} of {metrics['n']} cases (left out of every rate) |")
    out.append("")
    if metrics["headline"]:
        out += ["## Headline", ""]
        for pair in metrics["headline"].values():
            out += [f"**{pair['title']}**", ""]
            out += ["| Figure | Suite | Value | 95% interval | n |", "|---|---|---|---|---|"]
            for fig in pair["figures"]:
                out.append(
                    f"| {fig['label']} | {_md(fig['suite'])} | "
                    f"{fmt_stat(fig['metric'], fig, interval=False)} | "
                    f"{fmt_interval(fig['metric'], fig)} | {fig.get('n', 0)} |"
                )
            if pair["missing"]:
                names = ", ".join(metric_label(m) for m in pair["missing"])
                out += [
                    "",
                    f"Not measured: {names}. The other half of this pair means little alone.",
                ]
            out.append("")
    for name, suite in metrics["suites"].items():
        out += [
            f"## {_md(name)} ({_md(suite.get('version') or 'unversioned')}): "
            f"{plural(suite['n'], 'case')}, {plural(suite['errors'], 'error')}",
            "",
            "| Metric | Value | 95% interval | Count |",
            "|---|---|---|---|",
        ]
        for metric in SUITE_METRICS:
            if metric in suite:
                stat = suite[metric]
                out.append(
                    f"| {metric_label(metric)} | {fmt_stat(metric, stat, interval=False)} | "
                    f"{fmt_interval(metric, stat)} | {fmt_count(stat)} |"
                )
        lat = suite["latency_ms"]
        out.append(f"| latency p50 / p95 | {fmt_ms(lat['p50'])} / {fmt_ms(lat['p95'])} | | |")
        if suite["error_cases"]:
            shown = suite["error_cases"][:5]
            listed = "; ".join(
                f"{_md(e['case_id'])} ({_md(str(e.get('error') or 'error')[:80])})" for e in shown
            )
            more = len(suite["error_cases"]) - len(shown)
            out += ["", f"Errors: {listed}" + (f"; and {more} more" if more else "")]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# --- SVG charts -----------------------------------------------------------------------------


def esc(value: Any) -> str:
    """HTML-escape anything for element text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


_LABEL_W, _PLOT_W, _TEXT_W = 190, 400, 190
_BAR_H, _GROUP_GAP, _TOP = 14, 10, 30


def _truncate(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _legend(series: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    parts = []
    for name, colour in series:
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="{y:.1f}" class="legend">{esc(name)}</text>')
        x += 24 + 7 * len(name)
    return parts


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str]],
    values: Sequence[Sequence[dict[str, Any] | None]],
    *,
    kind: str = "rate",
) -> str:
    """Horizontal bars with 95% interval whiskers: one group per label, one bar per series.

    ``values[i][j]`` is a Rate or bias score (or None) for ``labels[i]`` and ``series[j]``.
    Rates are drawn on 0..100%; scores (kind "score") diverge around 0 on −1..+1.
    """
    lo, hi = (-1.0, 1.0) if kind == "score" else (0.0, 1.0)
    origin = 0.0

    def x(v: float) -> float:
        v = min(hi, max(lo, v))
        return _LABEL_W + (v - lo) / (hi - lo) * _PLOT_W

    group_h = _BAR_H * len(series) + _GROUP_GAP
    legend_h = 18 if len(series) > 1 else 0
    top = _TOP + legend_h
    height = top + group_h * len(labels) + 24
    width = _LABEL_W + _PLOT_W + _TEXT_W
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{esc(title)}">',
        f'<text x="0" y="16" class="title">{esc(title)}</text>',
    ]
    if legend_h:
        parts += _legend(series, _LABEL_W, _TOP + 6)
    ticks = [-1.0, -0.5, 0.0, 0.5, 1.0] if kind == "score" else [0, 0.25, 0.5, 0.75, 1]
    axis_y = top + group_h * len(labels)
    for t in ticks:
        tx = x(t)
        stroke = "#888" if t == origin else "#e3e3e3"
        parts.append(
            f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{axis_y}" stroke="{stroke}"/>'
        )
        tick = f"{t:+.1f}" if kind == "score" else f"{100 * t:.0f}%"
        if kind == "score" and t == 0:
            tick = "0"
        parts.append(
            f'<text x="{tx:.1f}" y="{axis_y + 14}" class="tick" text-anchor="middle">{tick}</text>'
        )
    for i, label in enumerate(labels):
        gy = top + i * group_h
        parts.append(
            f'<text x="{_LABEL_W - 8}" y="{gy + _BAR_H * len(series) / 2 + 4:.1f}" '
            f'class="label" text-anchor="end"><title>{esc(label)}</title>'
            f"{esc(_truncate(label))}</text>"
        )
        for j, (name, colour) in enumerate(series):
            stat = values[i][j] if j < len(values[i]) else None
            by = gy + j * _BAR_H
            cy = by + (_BAR_H - 2) / 2
            if not stat or stat.get("value") is None:
                parts.append(
                    f'<text x="{x(origin) + 4:.1f}" y="{cy + 4:.1f}" class="na">'
                    f"{esc(name)}: no data</text>"
                )
                continue
            v = stat["value"]
            x0, x1 = sorted((x(origin), x(v)))
            tip = f"{label} · {name}: {fmt_value(stat, kind)}"
            parts.append(
                f'<rect x="{x0:.1f}" y="{by:.1f}" width="{max(x1 - x0, 1):.1f}" '
                f'height="{_BAR_H - 2}" fill="{colour}"><title>{esc(tip)}</title></rect>'
            )
            if stat.get("low") is not None:
                wl, wh = x(stat["low"]), x(stat["high"])
                parts.append(
                    f'<path d="M{wl:.1f} {cy:.1f}H{wh:.1f}M{wl:.1f} {cy - 4:.1f}V{cy + 4:.1f}'
                    f'M{wh:.1f} {cy - 4:.1f}V{cy + 4:.1f}" stroke="#222" fill="none"/>'
                )
            text = fmt_value(stat, kind, interval=False)
            parts.append(
                f'<text x="{_LABEL_W + _PLOT_W + 8}" y="{cy + 4:.1f}" class="value">'
                f"{esc(text)} n={stat.get('n', 0)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def stacked_chart(
    title: str,
    labels: Sequence[str],
    parts_: Sequence[tuple[str, str]],
    counts: Sequence[Sequence[int]],
) -> str:
    """Horizontal 100% stacked bars: one bar per label, one segment per part (counts)."""
    bar_h = 18
    top = _TOP + 18
    height = top + (bar_h + 8) * len(labels) + 10
    width = _LABEL_W + _PLOT_W + _TEXT_W
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{esc(title)}">',
        f'<text x="0" y="16" class="title">{esc(title)}</text>',
        *_legend(parts_, _LABEL_W, _TOP + 6),
    ]
    for i, label in enumerate(labels):
        y = top + i * (bar_h + 8)
        row = counts[i]
        total = sum(row)
        out.append(
            f'<text x="{_LABEL_W - 8}" y="{y + bar_h / 2 + 4:.1f}" class="label" '
            f'text-anchor="end"><title>{esc(label)}</title>{esc(_truncate(label))}</text>'
        )
        if not total:
            out.append(f'<text x="{_LABEL_W + 4}" y="{y + 13}" class="na">no data</text>')
            continue
        x = float(_LABEL_W)
        for (name, colour), count in zip(parts_, row, strict=False):
            w = _PLOT_W * count / total
            if w > 0:
                tip = f"{label} · {name}: {count}/{total} ({100 * count / total:.1f}%)"
                out.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                    f'fill="{colour}"><title>{esc(tip)}</title></rect>'
                )
            x += w
        shares = " / ".join(f"{100 * c / total:.0f}%" for c in row[:3])
        out.append(
            f'<text x="{_LABEL_W + _PLOT_W + 8}" y="{y + 13}" class="value">'
            f"{esc(shares)} n={total}</text>"
        )
    out.append("</svg>")
    return "".join(out)


# --- the page -------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1d;
background:#fafafa}
header,main,footer{max-width:1100px;margin:0 auto;padding:12px 20px}
header{border-bottom:1px solid #ddd;background:#fff;max-width:none}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:26px 0 8px}h3{font-size:15px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dl.facts dt{color:#666}dl.facts dd{margin:0;overflow-wrap:anywhere}
.warn{background:#fff4d6;border:1px solid #e6b800;padding:8px 12px;border-radius:4px}
.pair{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 14px;margin:8px 0}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f0f0f0}table.metrics{width:auto;min-width:560px}td.num{text-align:right;white-space:nowrap}
.chart{display:block;margin:10px 0;max-width:100%;height:auto;background:#fff}
.chart .title{font-weight:600;font-size:14px}.chart .label,.chart .value{font-size:12px}
.chart .tick,.chart .legend{font-size:11px;fill:#555}.chart .na{font-size:11px;fill:#999}
.filters{display:flex;gap:10px;flex-wrap:wrap;align-items:center;margin:8px 0}
.filters input{flex:1;min-width:200px;padding:4px}
tbody.case tr.head{cursor:pointer}tbody.case tr.head:hover{background:#f3f7ff}
tbody.case tr.head:focus{outline:2px solid #0072B2}
tbody.case.fail tr.head td.outcome{color:#b03000;font-weight:600}
tbody.case.pass tr.head td.outcome{color:#00704f}
tbody.case.error tr.head{background:#fde2e1}tbody.case.error tr.head td.outcome{color:#a00;
font-weight:700}
tr.detail td{background:#fcfcfc}
tr.detail pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:2px 0 8px;padding:6px;
background:#f4f4f4;border-radius:4px;max-height:28em;overflow:auto}
tr.detail h4{margin:6px 0 2px;font-size:12px;color:#555;text-transform:uppercase}
.muted{color:#777}
"""

JS = """
(function () {
  var cases = Array.prototype.slice.call(document.querySelectorAll("tbody.case"));
  var suite = document.getElementById("f-suite");
  var outcome = document.getElementById("f-outcome");
  var text = document.getElementById("f-text");
  var count = document.getElementById("f-count");
  var haystack = cases.map(function (c) { return c.textContent.toLowerCase(); });
  function apply() {
    var s = suite ? suite.value : "", o = outcome ? outcome.value : "";
    var q = text ? text.value.trim().toLowerCase() : "";
    var shown = 0;
    cases.forEach(function (c, i) {
      var ok = (!s || c.getAttribute("data-suite") === s) &&
        (!o || c.getAttribute("data-outcome") === o) &&
        (!q || haystack[i].indexOf(q) !== -1);
      c.hidden = !ok;
      if (ok) { shown += 1; }
    });
    if (count) { count.textContent = shown + " of " + cases.length + " cases"; }
  }
  cases.forEach(function (c) {
    var head = c.querySelector("tr.head"), detail = c.querySelector("tr.detail");
    if (!head || !detail) { return; }
    function toggle() {
      detail.hidden = !detail.hidden;
      head.setAttribute("aria-expanded", detail.hidden ? "false" : "true");
    }
    head.addEventListener("click", toggle);
    head.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); }
    });
  });
  [suite, outcome].forEach(function (el) { if (el) { el.addEventListener("change", apply); } });
  if (text) { text.addEventListener("input", apply); }
  apply();
  document.documentElement.setAttribute("data-ready", "true");
})();
"""


def _sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def page(title: str, body: str, *, script: str | None = JS, css: str = CSS) -> str:
    """A self-contained HTML page whose CSP lets only this page's own style and script run
    (matched by their hashes): injected markup could neither load nor run anything."""
    script_src = f"'sha256-{_sha256_b64(script)}'" if script is not None else "'none'"
    csp = (
        f"default-src 'none'; img-src data:; style-src 'sha256-{_sha256_b64(css)}'; "
        f"script-src {script_src}; base-uri 'none'; form-action 'none'"
    )
    script_tag = f"<script>{script}</script>\n" if script is not None else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">\n'
        f"<title>{esc(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n{body}\n"
        f"{script_tag}</body>\n</html>\n"
    )


def _facts_html(run: dict[str, Any]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in _run_facts(run))
    return f'<dl class="facts">{rows}</dl>'


def suite_charts(name: str, suite: dict[str, Any]) -> list[str]:
    """The charts of one suite's report section, chosen by the kinds of case it holds."""
    charts: list[str] = []
    kinds = suite.get("kinds", [])
    cats: dict[str, dict[str, Any]] = suite.get("by_category", {})
    if "refuse" in kinds:
        rows = {"(all)": suite, **{c: m for c, m in cats.items() if "attack_success_rate" in m}}
        charts.append(
            bar_chart(
                f"{name}: attack success and refusal by category",
                list(rows),
                [("attack success", BAD), ("refusal", PALETTE[0])],
                [[m.get("attack_success_rate"), m.get("refusal_rate")] for m in rows.values()],
            )
        )
        if "by_transform" in suite:
            tr = suite["by_transform"]
            charts.append(
                bar_chart(
                    f"{name}: attack success by transform",
                    list(tr),
                    [("attack success", BAD)],
                    [[m.get("attack_success_rate")] for m in tr.values()],
                )
            )
    if "comply" in kinds:
        rows = {"(all)": suite, **{c: m for c, m in cats.items() if "over_refusal_rate" in m}}
        charts.append(
            bar_chart(
                f"{name}: over-refusal by category",
                list(rows),
                [("over-refusal", NEUTRAL)],
                [[m.get("over_refusal_rate")] for m in rows.values()],
            )
        )
    if "bias" in kinds:
        rows = {"(all)": suite, **suite.get("by_attribute", {})}
        charts.append(
            bar_chart(
                f"{name}: bias score by attribute (0 = no lean, + = with the stereotype)",
                list(rows),
                [("ambiguous", PALETTE[4]), ("disambiguated", PALETTE[0])],
                [
                    [m.get("bias_score_ambiguous"), m.get("bias_score_disambiguated")]
                    for m in rows.values()
                ],
                kind="score",
            )
        )
        charts.append(
            bar_chart(
                f"{name}: accuracy by attribute",
                list(rows),
                [("ambiguous", PALETTE[4]), ("disambiguated", PALETTE[0])],
                [
                    [m.get("accuracy_ambiguous"), m.get("accuracy_disambiguated")]
                    for m in rows.values()
                ],
            )
        )
    if "answer" in kinds:
        rows = {"(all)": suite, **{c: m for c, m in cats.items() if "accuracy" in m}}
        counts = []
        for m in rows.values():
            k = [m[key]["k"] for key in ("accuracy", "incorrect_rate", "abstained_rate")]
            counts.append([*k, m["accuracy"]["n"] - sum(k)])
        charts.append(
            stacked_chart(
                f"{name}: outcomes on answerable questions",
                list(rows),
                [("correct", GOOD), ("incorrect", BAD), ("abstained", NEUTRAL), ("empty", GREY)],
                counts,
            )
        )
    if "abstain" in kinds:
        rows = {"(all)": suite, **{c: m for c, m in cats.items() if "abstention_rate" in m}}
        counts = []
        for m in rows.values():
            k = [m[key]["k"] for key in ("abstention_rate", "fabrication_rate")]
            counts.append([*k, m["abstention_rate"]["n"] - sum(k)])
        charts.append(
            stacked_chart(
                f"{name}: unanswerable questions",
                list(rows),
                [("abstained", GOOD), ("fabricated an answer", BAD), ("empty", GREY)],
                counts,
            )
        )
    return charts


def _metric_table(suite: dict[str, Any]) -> str:
    rows = []
    for metric in SUITE_METRICS:
        if metric in suite:
            stat = suite[metric]
            rows.append(
                f"<tr><td>{esc(metric_label(metric))}</td>"
                f'<td class="num">{esc(fmt_stat(metric, stat, interval=False))}</td>'
                f'<td class="num">{esc(fmt_interval(metric, stat))}</td>'
                f'<td class="num">{esc(fmt_count(stat))}</td></tr>'
            )
    lat = suite["latency_ms"]
    rows.append(
        f'<tr><td>latency p50 / p95</td><td class="num">{esc(fmt_ms(lat["p50"]))} / '
        f'{esc(fmt_ms(lat["p95"]))}</td><td></td><td class="num">n={lat["n"]}</td></tr>'
    )
    return (
        '<table class="metrics"><thead><tr><th>Metric</th><th>Value</th><th>95% interval</th>'
        "<th>Count</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _headline_html(metrics: dict[str, Any]) -> str:
    if not metrics["headline"]:
        return ""
    out = ["<h2>Headline</h2>"]
    for pair in metrics["headline"].values():
        rows = "".join(
            f"<tr><td>{esc(f['label'])}</td><td>{esc(f['suite'])}</td>"
            f'<td class="num">{esc(fmt_stat(f["metric"], f, interval=False))}</td>'
            f'<td class="num">{esc(fmt_interval(f["metric"], f))}</td>'
            f'<td class="num">{f.get("n", 0)}</td></tr>'
            for f in pair["figures"]
        )
        missing = ""
        if pair["missing"]:
            names = ", ".join(metric_label(m) for m in pair["missing"])
            missing = (
                f'<p class="muted">Not measured: {esc(names)}. '
                "The other half of this pair means little alone.</p>"
            )
        out.append(
            f'<div class="pair"><h3>{esc(pair["title"])}</h3><table><thead><tr><th>Figure</th>'
            "<th>Suite</th><th>Value</th><th>95% interval</th><th>n</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{missing}</div>"
        )
    return "".join(out)


def _pre(value: Any) -> str:
    if value is None:
        return '<pre class="muted">(none)</pre>'
    if not isinstance(value, str):
        value = json.dumps(value, indent=1, ensure_ascii=False, default=str)
    return f"<pre>{esc(value)}</pre>"


def _variant(row: dict[str, Any]) -> str:
    if row.get("attribute") is not None:
        return f"{row['attribute']} / {row.get('context') or '?'}"
    return str(row.get("transform") or "")


def case_rows(results: Sequence[dict[str, Any]]) -> str:
    """One <tbody class="case"> per case: a clickable summary row and a hidden detail row."""
    out = []
    for row in results:
        outcome = str(row.get("outcome") or ("error" if row.get("status") == "error" else ""))
        latency = row.get("latency_ms")
        latency_text = f"{latency:.0f} ms" if isinstance(latency, int | float) else ""
        details = [
            "<h4>Prompt</h4>",
            _pre(row.get("prompt")),
            "<h4>Response</h4>",
            _pre(row.get("response")),
            f"<h4>Verdict</h4><p>{esc(row.get('verdict'))} ({esc(outcome)})</p>",
            f"<h4>Why</h4><p>{esc(row.get('why'))}</p>",
        ]
        if row.get("error"):
            details += ["<h4>Error</h4>", _pre(row.get("error"))]
        if row.get("scores"):
            details += ["<h4>Scores</h4>", _pre(row.get("scores"))]
        if row.get("charter"):
            details += ["<h4>Charter</h4>", _pre(row.get("charter"))]
        extra = {
            k: row.get(k) for k in ("finish_reason", "usage", "attempts") if row.get(k) is not None
        }
        if extra:
            details += ["<h4>Request</h4>", _pre(extra)]
        out.append(
            f'<tbody class="case {esc(outcome)}" data-suite="{esc(row.get("suite"))}" '
            f'data-outcome="{esc(outcome)}">'
            '<tr class="head" tabindex="0" aria-expanded="false">'
            f"<td>{esc(row.get('suite'))}</td><td>{esc(row.get('case_id'))}</td>"
            f"<td>{esc(row.get('category'))}</td><td>{esc(_variant(row))}</td>"
            f"<td>{esc(row.get('expected'))}</td><td>{esc(row.get('verdict'))}</td>"
            f'<td class="outcome">{esc(outcome)}</td><td class="num">{esc(latency_text)}</td>'
            f'</tr><tr class="detail" hidden><td colspan="8">{"".join(details)}</td></tr></tbody>'
        )
    return "".join(out)


def render_html(
    run: dict[str, Any], metrics: dict[str, Any], results: Sequence[dict[str, Any]]
) -> str:
    """The self-contained report page."""
    body = [
        f"<header><h1>Charter eval: {esc(run.get('model'))}</h1>",
        _facts_html(run),
    ]
    if not run.get("complete"):
        body.append(
            '<p class="warn"><strong>Incomplete run.</strong> It stopped before every case '
            "was scored; the figures cover only the cases that ran.</p>"
        )
    if metrics["errors"]:
        body.append(
            f'<p class="warn">{metrics["errors"]} of {metrics["n"]} cases failed to run; they '
            'are left out of every rate and highlighted in the <a href="#cases">case table</a>.'
            "</p>"
        )
    body.append("</header><main>")
    body.append(_headline_html(metrics))
    for name, suite in metrics["suites"].items():
        body.append(
            f'<section class="suite"><h2>{esc(name)} <span class="muted">'
            f"({esc(suite.get('version') or 'unversioned')}) · {suite['n']} cases · "
            f"{plural(suite['errors'], 'error')}</span></h2>"
        )
        body.append(_metric_table(suite))
        body += suite_charts(name, suite)
        body.append("</section>")
    suites = sorted({str(r.get("suite")) for r in results})
    suite_options = "".join(f'<option value="{esc(s)}">{esc(s)}</option>' for s in suites)
    body.append(
        '<section id="cases"><h2>Cases</h2><div class="filters">'
        '<label>Suite <select id="f-suite"><option value="">all</option>'
        f"{suite_options}</select></label>"
        '<label>Outcome <select id="f-outcome"><option value="">all</option>'
        '<option value="pass">pass</option><option value="fail">fail</option>'
        '<option value="error">error</option></select></label>'
        '<input id="f-text" type="search" placeholder="Search prompts, responses, ids…" '
        'aria-label="Search cases"><span id="f-count" class="muted"></span></div>'
        '<table class="cases"><thead><tr><th>Suite</th><th>Case</th><th>Category</th>'
        "<th>Variant</th><th>Expected</th><th>Verdict</th><th>Outcome</th><th>Latency</th>"
        f"</tr></thead>{case_rows(results)}</table>"
        '<p class="muted">Click a row to see the prompt, the response and why it was scored '
        "so.</p></section>"
    )
    glossary = "".join(
        f"<dt>{esc(m)}</dt><dd>{esc(info.description)}</dd>"
        for m, info in METRICS.items()
        if m in SUITE_METRICS
    )
    body.append(
        '</main><footer><h2>Definitions</h2><dl class="facts">'
        f'{glossary}</dl><p class="muted">Rates carry 95% Wilson intervals and leave errored '
        "cases out. Bias scores follow BBQ (Parrish et al., 2022) and carry 95% bootstrap "
        "intervals.</p></footer>"
    )
    return page(f"Charter eval: {run.get('model')}", "\n".join(body))
