"""charter.eval.report: loading a run directory, the three reports, and an HTML page that
model output cannot script (checked by parsing, and in a real headless Chromium)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from charter.errors import ConfigError
from charter.eval.report import load_results, write_reports
from tests.eval.test_metrics import bias_row, refuse_rows, row, write_run

XSS = '<script>alert("xss")</script><img src=x onerror="alert(1)">'


def full_run(directory: Path, **run_overrides: Any) -> Path:
    rows = refuse_rows("harmful", complied=3, refused=7, category="cyber")
    rows += [
        row("jailbreak", "j1", "refuse", "complied", transform="roleplay"),
        row("jailbreak", "j2", "refuse", "refused", transform="base64"),
    ]
    rows += [row("benign-edgy", f"b{i}", "comply", "complied") for i in range(4)]
    rows.append(row("benign-edgy", "b-refused", "comply", "refused"))
    rows.append(row("benign-edgy", "b-err", "comply", None, status="error"))
    rows += [
        bias_row("q1", "age", "ambiguous", correct=True, biased=False, unknown=True),
        bias_row("q2", "age", "ambiguous", correct=False, biased=True, unknown=False),
        bias_row("q3", "age", "disambiguated", correct=True, biased=True, unknown=False),
    ]
    rows += [
        row("factual", "f1", "answer", "correct"),
        row("factual", "f2", "answer", "incorrect"),
        row("factual", "u1", "abstain", "abstained"),
    ]
    return write_run(directory, rows, **run_overrides)


# --- loading --------------------------------------------------------------------------------


def test_load_results_last_line_wins(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [row("harmful", "h1", "refuse", "complied")])
    with (run_dir / "results.jsonl").open("a") as f:
        f.write("\n")  # blank lines are fine
        f.write(json.dumps(row("harmful", "h2", "refuse", "refused")) + "\n")
        f.write(json.dumps(row("harmful", "h1", "refuse", "refused")) + "\n")  # a retry
    run, results = load_results(run_dir)
    assert run["model"] == "test-model"
    assert [(r["case_id"], r["verdict"]) for r in results] == [("h1", "refused"), ("h2", "refused")]


def test_load_results_same_id_in_two_suites_are_two_cases(tmp_path: Path) -> None:
    rows = [row("a", "x", "refuse", "refused"), row("b", "x", "refuse", "complied")]
    _, results = load_results(write_run(tmp_path / "run", rows))
    assert len(results) == 2


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('{"suite": "harmful", "case_id": ', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"suite": "harmful"}', "case_id"),
    ],
)
def test_malformed_result_line_names_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    run_dir = write_run(tmp_path / "run", [row("harmful", "h1", "refuse", "refused")] * 2)
    with (run_dir / "results.jsonl").open("a") as f:
        f.write(line + "\n")
    with pytest.raises(ConfigError, match=rf"results\.jsonl:3: .*{why}") as exc:
        load_results(run_dir)
    assert "\n" not in str(exc.value)


def test_load_results_without_run_json_or_results(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no run.json"):
        load_results(tmp_path)
    run_dir = write_run(tmp_path / "run", [])
    (run_dir / "results.jsonl").unlink()
    assert load_results(run_dir)[1] == []  # stopped before the first case: nothing scored
    (run_dir / "run.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"run\.json:1: not valid JSON"):
        load_results(run_dir)


# --- the reports ----------------------------------------------------------------------------


def test_write_reports_files_and_summary(tmp_path: Path) -> None:
    run_dir = full_run(tmp_path / "run")
    summary = write_reports(run_dir)
    assert (run_dir / "summary.md").read_text() == summary
    report = json.loads((run_dir / "report.json").read_text())
    assert set(report) == {"run", "metrics", "cases"}
    assert report["metrics"]["suites"]["harmful"]["attack_success_rate"]["k"] == 3
    assert len(report["cases"]) == 24
    for needle in (
        "http://127.0.0.1:8000/v1",
        "test-model",
        "c0ffee123456",
        "harmful 1+aaaaaaaaaaaa",
        "10m 12s",
        "Attack success vs over-refusal",
        # 3/10 complied: Wilson 95% interval 10.8–60.3%.
        "| attack success | harmful | 30.0% | 10.8–60.3% | 10 |",
        "| over-refusal | benign-edgy | 20.0% | 3.6–62.4% | 5 |",
        "Accuracy vs bias score",
        "Factual accuracy vs abstention on unanswerables",
        "1 of 24 cases",
        "## benign-edgy (1+aaaaaaaaaaaa): 6 cases, 1 error",
        "Errors: b-err (upstream timed out)",
        "| attack success | 30.0% | 10.8–60.3% | 3/10 |",
    ):
        assert needle in summary, needle
    assert "Incomplete run" not in summary
    assert "Not measured" not in summary


def test_summary_flags_incomplete_run_and_missing_pair_half(tmp_path: Path) -> None:
    run_dir = write_run(
        tmp_path / "run", refuse_rows("harmful", complied=1, refused=1), complete=False
    )
    summary = write_reports(run_dir)
    assert "**Incomplete run**" in summary
    assert "Not measured: over-refusal" in summary
    assert "incomplete run" in (run_dir / "report.html").read_text().lower()


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <script> element."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def xss_run(directory: Path) -> Path:
    rows = [
        row(
            "harmful",
            "evil",
            "refuse",
            "complied",
            prompt=XSS,
            response=f"Sure! {XSS} </td></tr></table></script>",
            why=XSS,
            category=XSS,
            scores={"harmful_content": {"flagged": True, "why": XSS}},
        ),
        row("harmful", "fine", "refuse", "refused"),
        row("harmful", "broke", "refuse", None, status="error", error=XSS),
    ]
    return write_run(directory, rows, model=XSS)


def test_model_text_is_inert_in_html(tmp_path: Path) -> None:
    run_dir = xss_run(tmp_path / "run")
    write_reports(run_dir)
    page = (run_dir / "report.html").read_text()
    parser = _Tags()
    parser.feed(page)
    names = [t for t, _ in parser.tags]
    assert names.count("script") == 1  # ours, at the end
    assert "img" not in names
    for tag, attrs in parser.tags:
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        assert "src" not in attrs and tag != "link"  # nothing loaded from anywhere
        assert attrs.get("href", "#").startswith("#")
    assert XSS not in page
    assert html_escaped(XSS) in page
    # Our one script is the only one the Content-Security-Policy lets run.
    csp = next(
        a["content"] for t, a in parser.tags if a.get("http-equiv") == "Content-Security-Policy"
    )
    digest = base64.b64encode(hashlib.sha256(parser.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp
    # The summary is Markdown: the model name is shown, the table is intact.
    assert "| Model |" in (run_dir / "summary.md").read_text()


def html_escaped(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def test_html_has_charts_and_case_table(tmp_path: Path) -> None:
    run_dir = full_run(tmp_path / "run")
    write_reports(run_dir)
    page = (run_dir / "report.html").read_text()
    for title in (
        "harmful: attack success and refusal by category",
        "jailbreak: attack success by transform",
        "benign-edgy: over-refusal by category",
        "bias: bias score by attribute",
        "factual: outcomes on answerable questions",
        "factual: unanswerable questions",
    ):
        assert f'aria-label="{title}' in page, title
    assert page.count("<svg") == 8
    # Whiskers: one path per bar that has an interval.
    assert len(re.findall(r'<path d="M[\d.]+ [\d.]+H', page)) >= 10
    assert page.count('<tbody class="case') == 24
    assert page.count('<tbody class="case error"') == 1
    assert 'data-outcome="error"' in page
    for option in ('value="harmful"', 'value="pass"', 'value="fail"', 'value="error"'):
        assert option in page


# --- in a real browser ----------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run scripts/install-browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.mark.browser
@pytest.mark.slow
def test_report_page_in_browser(tmp_path: Path, chromium: Any) -> None:
    run_dir = xss_run(tmp_path / "run")
    write_reports(run_dir)
    page = chromium.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    console: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: console.append(m.text))
    page.goto((run_dir / "report.html").as_uri())
    # Our script ran (the CSP hash matches), and it is the only script that ran.
    page.wait_for_selector("html[data-ready=true]", timeout=10_000)
    assert page.locator("#f-count").inner_text() == "3 of 3 cases"
    page.select_option("#f-outcome", "error")
    assert page.locator("#f-count").inner_text() == "1 of 3 cases"
    assert page.locator("tbody.case:visible").count() == 1
    page.select_option("#f-outcome", "")
    page.fill("#f-text", "sure!")
    assert page.locator("#f-count").inner_text() == "1 of 3 cases"
    evil = page.locator("tbody.case:visible")
    evil.locator("tr.head").click()
    detail = evil.locator("tr.detail")
    assert detail.is_visible()
    assert XSS in detail.inner_text()  # shown as text
    assert page.locator("img").count() == 0
    page.wait_for_timeout(200)
    assert dialogs == [] and errors == []
    assert not [m for m in console if "Content Security Policy" in m]
    page.close()
