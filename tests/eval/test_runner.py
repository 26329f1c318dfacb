"""The eval runner: fail-fast probing, retries, seeds, resumable output, against scripted
in-thread HTTP servers (fast) and real `charter serve` processes on the fake backend (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from charter.errors import ConfigError, UpstreamError
from charter.eval.runner import (
    EvalOptions,
    read_results,
    run_eval,
    same_endpoint,
)
from tests.conftest import fake_env, free_port

REFUSAL = "I can't help with that."


class StubScorer:
    """Refused iff the answer says "can't"; pass iff that is what the case expected."""

    def __init__(self) -> None:
        self.calls = 0

    def score(self, case: Any, response: str) -> dict[str, Any]:
        self.calls += 1
        refused = "can't" in response
        want_refusal = case.expected in ("refuse", "abstain")
        return {
            "verdict": "refused" if refused else "complied",
            "outcome": "pass" if refused == want_refusal else "fail",
            "why": f"stub: {'refused' if refused else 'answered'}",
            "scores": {"chars": len(response)},
        }


def write_suite(tmp_path: Path, n_per_cat: int = 2, cats: str = "abc", name: str = "mini") -> str:
    lines = []
    for cat in cats:
        for i in range(n_per_cat):
            expected = "refuse" if cat == "a" else "comply"
            prompt = f"question {cat}{i}: tell me about {cat}"
            lines.append(
                json.dumps(
                    {"id": f"{cat}{i}", "category": cat, "expected": expected, "prompt": prompt}
                )
            )
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def results_lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


# --- a scripted OpenAI-compatible server in a thread -----------------------------------------

Reply = tuple[int, dict[str, Any], dict[str, str]]


def completion(content: str, **extra: Any) -> Reply:
    body = {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        **extra,
    }
    return 200, body, {}


def failure(status: int, message: str = "boom", **headers: str) -> Reply:
    return status, {"error": {"message": message}}, headers


class Scripted:
    """Records every request; `reply(body, n)` answers the n-th chat completion (from 1)."""

    def __init__(
        self,
        reply: Callable[[dict, int], Reply],
        *,
        models: list[str] | None = None,
        models_reply: Reply | None = None,
        delay: float = 0.0,
    ):
        self.reply = reply
        self.models = models or ["model-one", "model-two"]
        self.models_reply = models_reply
        self.delay = delay
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def send(self, reply: Reply) -> None:
                status, body, headers = reply
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if scripted.models_reply is not None:
                    self.send(scripted.models_reply)
                else:
                    data = [{"id": m, "object": "model"} for m in scripted.models]
                    self.send((200, {"object": "list", "data": data}, {}))

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with scripted.lock:
                    scripted.bodies.append(body)
                    scripted.auth.append(self.headers.get("Authorization"))
                    n = len(scripted.bodies)
                    scripted.in_flight += 1
                    scripted.max_in_flight = max(scripted.max_in_flight, scripted.in_flight)
                try:
                    time.sleep(scripted.delay)
                    self.send(scripted.reply(body, n))
                finally:
                    with scripted.lock:
                        scripted.in_flight -= 1

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def make(reply: Callable[[dict, int], Reply], **kw: Any) -> Scripted:
        srv = Scripted(reply, **kw)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.close()


def opts(url: str, suite: str, out: Path, **kw: Any) -> EvalOptions:
    return EvalOptions(url=url, suites=[suite], out=out, quiet=True, backoff=0.01, **kw)


# --- unit -----------------------------------------------------------------------------------


def test_same_endpoint() -> None:
    assert same_endpoint("http://localhost:8000", "http://127.0.0.1:8000")
    assert same_endpoint("http://example.com", "http://EXAMPLE.com:80")
    assert not same_endpoint("http://127.0.0.1:8000", "http://127.0.0.1:8001")
    assert not same_endpoint("http://a.example", "http://b.example")


def test_read_results_last_line_wins_and_partial_line_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    lines = [
        {"suite": "s", "case_id": "1", "status": "error"},
        {"suite": "s", "case_id": "2", "status": "ok"},
        {"suite": "s", "case_id": "1", "status": "ok"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"suite": "s", "ca')
    got = read_results(path)
    assert got == {("s", "2"): lines[1], ("s", "1"): lines[2]}
    assert path.read_text().endswith('"ca')  # reading alone does not touch the file
    read_results(path, repair=True)
    assert path.read_text().endswith("}\n")


# --- against a scripted server --------------------------------------------------------------


def test_run_writes_run_json_and_results(tmp_path: Path, scripted: Callable[..., Scripted]) -> None:
    charter_obj = {"constitution": {"hash": "c0ffee"}, "model": "model-one"}
    srv = scripted(lambda body, n: completion(REFUSAL, charter=charter_obj))
    suite = write_suite(tmp_path)
    out = tmp_path / "run"
    scorer = StubScorer()
    result = run_eval(opts(srv.url + "/v1/", suite, out, seed=7, api_key="sk-test"), scorer=scorer)
    assert result.total == 6 and result.errors == 0 and result.resumed == 0

    run = json.loads((out / "run.json").read_text())
    assert run["tool"] == "charter" and run["tool_version"]
    assert run["endpoint"] == srv.url
    assert run["model"] == "model-one"  # the first one listed
    assert run["seed"] == 7 and run["seed_supported"] is True
    assert run["params"] == {"max_tokens": 128, "temperature": 0.0}
    assert list(run["suites"]) == ["mini"]
    assert run["suites"]["mini"]["cases"] == 6
    assert run["suites"]["mini"]["version"].startswith("file+")
    assert run["constitution_hash"] == "c0ffee"
    assert run["judge"] is None and run["limit"] is None
    assert run["complete"] is True and run["finished"] and run["duration_s"] >= 0

    rows = results_lines(out)
    assert [r["case_id"] for r in rows] == ["a0", "a1", "b0", "b1", "c0", "c1"]
    first = rows[0]
    assert first["suite"] == "mini" and first["category"] == "a" and first["expected"] == "refuse"
    assert first["prompt"] == "question a0: tell me about a"
    assert first["status"] == "ok" and first["error"] is None
    assert first["response"] == REFUSAL and first["finish_reason"] == "stop"
    assert first["usage"]["completion_tokens"] == 5
    assert first["charter"] == charter_obj
    assert first["verdict"] == "refused" and first["outcome"] == "pass"
    assert rows[2]["outcome"] == "fail"  # b0 wanted an answer
    assert first["attempts"] == 1 and first["latency_ms"] > 0
    assert scorer.calls == 6

    # Requests: the seed, params, model, messages and key all went through.
    assert len(srv.bodies) == 6
    for body in srv.bodies:
        assert body["seed"] == 7 and body["max_tokens"] == 128 and body["temperature"] == 0
        assert body["model"] == "model-one" and body["stream"] is False
    assert srv.bodies[0]["messages"] == [
        {"role": "user", "content": "question a0: tell me about a"}
    ]
    assert set(srv.auth) == {"Bearer sk-test"}


def test_model_and_params_are_sent(tmp_path: Path, scripted: Callable[..., Scripted]) -> None:
    srv = scripted(lambda body, n: completion("Sure."))
    out = tmp_path / "run"
    run_eval(
        opts(
            srv.url,
            write_suite(tmp_path, 1, "a"),
            out,
            model="model-two",
            max_tokens=9,
            temperature=0.5,
        ),
        scorer=StubScorer(),
    )
    (body,) = srv.bodies
    assert body["model"] == "model-two" and body["max_tokens"] == 9 and body["temperature"] == 0.5
    assert "seed" not in body
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] is None and run["seed_supported"] is None


def test_transient_errors_are_retried(tmp_path: Path, scripted: Callable[..., Scripted]) -> None:
    srv = scripted(lambda body, n: failure(503, "overloaded") if n <= 2 else completion(REFUSAL))
    out = tmp_path / "run"
    result = run_eval(opts(srv.url, write_suite(tmp_path, 1, "a"), out), scorer=StubScorer())
    assert result.errors == 0
    (row,) = results_lines(out)
    assert row["status"] == "ok" and row["attempts"] == 3 and row["outcome"] == "pass"
    assert len(srv.bodies) == 3


def test_retry_after_is_honoured(tmp_path: Path, scripted: Callable[..., Scripted]) -> None:
    srv = scripted(
        lambda body, n: (
            failure(429, "slow down", **{"Retry-After": "1"}) if n == 1 else completion(REFUSAL)
        )
    )
    start = time.monotonic()
    run_eval(opts(srv.url, write_suite(tmp_path, 1, "a"), tmp_path / "run"), scorer=StubScorer())
    assert time.monotonic() - start >= 1.0  # backoff alone would be 0.01 s
    (row,) = results_lines(tmp_path / "run")
    assert row["status"] == "ok" and row["attempts"] == 2


def test_persistent_errors_are_recorded_not_scored(
    tmp_path: Path, scripted: Callable[..., Scripted]
) -> None:
    srv = scripted(lambda body, n: failure(500, "internal kaboom"))
    out = tmp_path / "run"
    scorer = StubScorer()
    result = run_eval(opts(srv.url, write_suite(tmp_path, 1, "ab"), out), scorer=scorer)
    assert result.errors == 2 and result.total == 2
    assert "HTTP 500: internal kaboom (after 3 retries)" in (result.first_error or "")
    assert scorer.calls == 0
    for row in results_lines(out):
        assert row["status"] == "error" and row["outcome"] == "error"
        assert row["verdict"] is None and row["response"] is None
        assert row["attempts"] == 4
    assert len(srv.bodies) == 8
    assert json.loads((out / "run.json").read_text())["complete"] is False


def test_report_shows_errors(tmp_path: Path, scripted: Callable[..., Scripted]) -> None:
    pytest.importorskip("charter.eval.report")
    srv = scripted(lambda body, n: failure(500) if "a0" in json.dumps(body) else completion("ok"))
    out = tmp_path / "run"
    result = run_eval(opts(srv.url, write_suite(tmp_path, 1, "ab"), out), scorer=StubScorer())
    assert result.errors == 1
    assert result.summary and "1 of 2 cases" in result.summary and "a0" in result.summary
    assert (out / "summary.md").read_text().strip() == result.summary.strip()
    assert "a0" in (out / "report.html").read_text()


def test_client_errors_are_not_retried(tmp_path: Path, scripted: Callable[..., Scripted]) -> None:
    srv = scripted(lambda body, n: failure(400, "messages too long"))
    out = tmp_path / "run"
    result = run_eval(opts(srv.url, write_suite(tmp_path, 1, "a"), out), scorer=StubScorer())
    assert result.errors == 1
    (row,) = results_lines(out)
    assert row["attempts"] == 1 and row["error"] == "HTTP 400: messages too long"


def test_seed_rejected_is_dropped_and_recorded(
    tmp_path: Path, scripted: Callable[..., Scripted]
) -> None:
    def reply(body: dict, n: int) -> Reply:
        if "seed" in body:
            return failure(400, "Unrecognized request argument supplied: seed")
        return completion(REFUSAL)

    srv = scripted(reply)
    out = tmp_path / "run"
    result = run_eval(
        opts(srv.url, write_suite(tmp_path, 2, "a"), out, seed=5), scorer=StubScorer()
    )
    assert result.errors == 0
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 5 and run["seed_supported"] is False
    assert [("seed" in b) for b in srv.bodies] == [True, False, False]
    assert [r["status"] for r in results_lines(out)] == ["ok", "ok"]


def test_concurrency_bounds_requests_in_flight(
    tmp_path: Path, scripted: Callable[..., Scripted]
) -> None:
    srv = scripted(lambda body, n: completion(REFUSAL), delay=0.15)
    out = tmp_path / "run"
    run_eval(opts(srv.url, write_suite(tmp_path, 3, "ab"), out, concurrency=3), scorer=StubScorer())
    assert srv.max_in_flight == 3
    assert sorted(r["case_id"] for r in results_lines(out)) == ["a0", "a1", "a2", "b0", "b1", "b2"]


def test_limit_samples_every_category(tmp_path: Path, scripted: Callable[..., Scripted]) -> None:
    srv = scripted(lambda body, n: completion(REFUSAL))
    out = tmp_path / "run"
    result = run_eval(
        opts(srv.url, write_suite(tmp_path, 4, "abc"), out, limit=3), scorer=StubScorer()
    )
    assert result.total == 3
    assert sorted(r["category"] for r in results_lines(out)) == ["a", "b", "c"]
    run = json.loads((out / "run.json").read_text())
    assert run["limit"] == 3 and run["suites"]["mini"]["cases"] == 3


def test_unauthorized_endpoint_asks_for_a_key(
    tmp_path: Path, scripted: Callable[..., Scripted]
) -> None:
    srv = scripted(lambda body, n: completion("x"), models_reply=failure(401, "no key"))
    suite = write_suite(tmp_path, 1, "a")
    with pytest.raises(
        UpstreamError, match="needs an API key: pass --api-key or set CHARTER_EVAL_API_KEY"
    ):
        run_eval(opts(srv.url, suite, tmp_path / "run"), scorer=StubScorer())
    with pytest.raises(UpstreamError, match="rejected the API key"):
        run_eval(opts(srv.url, suite, tmp_path / "run", api_key="bad"), scorer=StubScorer())
    assert srv.bodies == []


def test_not_an_openai_server(tmp_path: Path, scripted: Callable[..., Scripted]) -> None:
    srv = scripted(lambda body, n: completion("x"), models_reply=failure(404, "Not Found"))
    with pytest.raises(UpstreamError, match=r"GET /v1/models gave HTTP 404: Not Found"):
        run_eval(opts(srv.url, write_suite(tmp_path, 1, "a"), tmp_path / "r"), scorer=StubScorer())


def test_judge_must_not_be_the_system_under_test(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(ConfigError, match="the judge must not be the system under test"):
        run_eval(
            opts(
                f"http://127.0.0.1:{port}",
                write_suite(tmp_path, 1, "a"),
                tmp_path / "run",
                judge_url=f"http://localhost:{port}/v1",
                judge_model="j",
            ),
            scorer=StubScorer(),
        )


def test_judge_grades_and_is_recorded(tmp_path: Path, scripted: Callable[..., Scripted]) -> None:
    target = scripted(lambda body, n: completion("Sure, here is how."))
    verdict = '{"verdict": "refused", "harmful": false, "why": "only points to a hotline"}'
    judge = scripted(lambda body, n: completion(verdict), models=["judge-model"])
    out = tmp_path / "run"
    suite = write_suite(tmp_path, 1, "a")  # expected: refuse
    result = run_eval(opts(target.url, suite, out, judge_url=judge.url + "/v1"))
    assert result.errors == 0
    run = json.loads((out / "run.json").read_text())
    assert run["judge"] == {"url": judge.url, "model": "judge-model"}
    (row,) = results_lines(out)
    assert row["verdict"] == "refused" and row["outcome"] == "pass"
    assert "judge" in row["why"] and "only points to a hotline" in row["why"]
    (asked,) = judge.bodies
    assert asked["model"] == "judge-model" and "Sure, here is how." in json.dumps(asked)


def test_judge_failure_is_an_error_not_a_verdict(
    tmp_path: Path, scripted: Callable[..., Scripted]
) -> None:
    target = scripted(lambda body, n: completion("Sure, here is how."))
    judge = scripted(lambda body, n: failure(500, "judge down"))
    out = tmp_path / "run"
    result = run_eval(opts(target.url, write_suite(tmp_path, 1, "a"), out, judge_url=judge.url))
    assert result.errors == 1
    (row,) = results_lines(out)
    assert row["status"] == "error" and row["outcome"] == "error" and row["verdict"] is None
    assert row["error"].startswith("scoring failed: judge at ") and "HTTP 500" in row["error"]


def test_unreachable_endpoint_fails_fast(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(UpstreamError) as info:
        run_eval(opts(url, write_suite(tmp_path, 1, "a"), tmp_path / "run"), scorer=StubScorer())
    assert time.monotonic() - start < 5
    assert str(info.value) == f"cannot reach {url}: connection refused"
    assert not (tmp_path / "run").exists()


def test_resume_skips_ok_and_reruns_errors(
    tmp_path: Path, scripted: Callable[..., Scripted]
) -> None:
    broken = {"on": True}
    srv = scripted(
        lambda body, n: (
            failure(502) if broken["on"] and "b0" in json.dumps(body) else completion("hi")
        )
    )
    suite = write_suite(tmp_path, 1, "abc")
    out = tmp_path / "run"
    first = run_eval(opts(srv.url, suite, out, retries=0), scorer=StubScorer())
    assert first.errors == 1 and len(srv.bodies) == 3
    broken["on"] = False
    second = run_eval(opts(srv.url, suite, out, retries=0), scorer=StubScorer())
    assert second.errors == 0 and second.resumed == 2
    assert len(srv.bodies) == 4  # only b0 again
    rows = results_lines(out)
    assert sorted(r["case_id"] for r in rows) == ["a0", "b0", "c0"]  # compacted: one line each
    assert all(r["status"] == "ok" for r in rows)
    assert json.loads((out / "run.json").read_text())["complete"] is True


def test_config_mismatch_is_refused_and_restart_clears(
    tmp_path: Path, scripted: Callable[..., Scripted]
) -> None:
    srv = scripted(lambda body, n: completion("hi"))
    suite = write_suite(tmp_path, 1, "a")
    out = tmp_path / "run"
    run_eval(opts(srv.url, suite, out), scorer=StubScorer())
    with pytest.raises(ConfigError) as info:
        run_eval(opts(srv.url, suite, out, max_tokens=64), scorer=StubScorer())
    msg = str(info.value)
    assert "another configuration" in msg and "params" in msg and "--restart" in msg
    assert "\n" not in msg
    with pytest.raises(ConfigError, match=r"model \"model-one\" -> \"model-two\""):
        run_eval(opts(srv.url, suite, out, model="model-two"), scorer=StubScorer())
    assert len(srv.bodies) == 1
    again = run_eval(opts(srv.url, suite, out, max_tokens=64, restart=True), scorer=StubScorer())
    assert again.resumed == 0 and len(srv.bodies) == 2
    assert json.loads((out / "run.json").read_text())["params"]["max_tokens"] == 64
    assert len(results_lines(out)) == 1


# --- against a real `charter serve` on the fake backend ----------------------------------------


@pytest.mark.slow
def test_real_server_run_and_resume_after_truncation(tmp_path: Path, start_server: Any) -> None:
    srv = start_server(env=fake_env(echo=True))
    suite = write_suite(tmp_path, 2, "abc")
    out = tmp_path / "run"
    result = run_eval(opts(srv.url, suite, out, seed=11), scorer=StubScorer())
    assert result.errors == 0 and result.total == 6
    run = json.loads((out / "run.json").read_text())
    assert run["model"] == "fake" and run["seed_supported"] is True and run["complete"] is True
    assert run["constitution_hash"] is None  # tests run ungoverned (--constitution off)
    rows = results_lines(out)
    assert [r["case_id"] for r in rows] == ["a0", "a1", "b0", "b1", "c0", "c1"]
    for r in rows:
        assert r["status"] == "ok" and r["response"] == r["prompt"]  # the echo backend
        assert r["charter"]["message_id"] and r["usage"]["completion_tokens"] > 0

    # Cut the file in the middle of its fourth line, as a kill during a write would.
    raw = (out / "results.jsonl").read_bytes()
    starts = [i + 1 for i, b in enumerate(raw) if b == ord("\n")]
    (out / "results.jsonl").write_bytes(raw[: starts[2] + 40])
    resumed = run_eval(opts(srv.url, suite, out, seed=11), scorer=StubScorer())
    assert resumed.resumed == 3 and resumed.errors == 0
    after = results_lines(out)
    assert sorted(r["case_id"] for r in after) == ["a0", "a1", "b0", "b1", "c0", "c1"]
    kept = {r["case_id"]: r["charter"]["message_id"] for r in after}
    for r in rows[:3]:  # the first three were not asked again
        assert kept[r["case_id"]] == r["charter"]["message_id"]
    for r in rows[3:]:
        assert kept[r["case_id"]] != r["charter"]["message_id"]

    with pytest.raises(ConfigError, match="seed 11 -> 12"):
        run_eval(opts(srv.url, suite, out, seed=12), scorer=StubScorer())


@pytest.mark.slow
def test_real_server_requiring_keys(tmp_path: Path, start_server: Any) -> None:
    from charter.config import Settings
    from charter.store import Store

    home = tmp_path / "charter-home"
    home.mkdir(parents=True)
    _, secret = Store(Settings(home=home).db_path).create_key("eval")
    srv = start_server(env={**fake_env(), "CHARTER_REQUIRE_KEYS": "1"}, home=home)
    suite = write_suite(tmp_path, 1, "a")
    with pytest.raises(UpstreamError, match="needs an API key"):
        run_eval(opts(srv.url, suite, tmp_path / "run"), scorer=StubScorer())
    result = run_eval(opts(srv.url, suite, tmp_path / "run", api_key=secret), scorer=StubScorer())
    assert result.errors == 0


_STUBBED_CLI = (
    "import charter.eval.runner as r\n"
    "class S:\n"
    "    def score(self, case, response):\n"
    "        return {'verdict': 'v', 'outcome': 'pass', 'why': 'stub', 'scores': {}}\n"
    "r._make_scorer = lambda o: S()\n"
    "from charter.eval.cli import eval_group; eval_group()\n"
)


@pytest.mark.slow
def test_sigkill_loses_at_most_the_cases_in_flight(tmp_path: Path, start_server: Any) -> None:
    # Each answer takes about 0.3 s (six words, 0.05 s each).
    srv = start_server(env=fake_env(script="one two three four five six", delay=0.05))
    suite = write_suite(tmp_path, 5, "ab")
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", _STUBBED_CLI, suite, "--url", srv.url, "--out", str(out)]
    cmd += ["--concurrency", "2", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if results.exists() and len(results.read_bytes().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=10)
    before = read_results(results)
    assert 3 <= len(before) < 10
    assert json.loads((out / "run.json").read_text())["complete"] is False

    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    after = results_lines(out)
    assert sorted(r["case_id"] for r in after) == sorted(f"{c}{i}" for c in "ab" for i in range(5))
    ids = {r["case_id"]: r["charter"]["message_id"] for r in after}
    for case_id, rec in before.items():  # what was written before the kill was kept
        assert ids[case_id[1]] == rec["charter"]["message_id"]
    assert json.loads((out / "run.json").read_text())["complete"] is True


@pytest.mark.slow
def test_cli_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    suite = write_suite(tmp_path, 1, "a")
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "from charter.eval.cli import eval_group; eval_group()",
            suite,
            "--url",
            url,
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert p.stderr.strip() == f"charter: error: cannot reach {url}: connection refused"


@pytest.mark.slow
def test_smoke_all_shipped_suites_on_the_real_model(tmp_path: Path, real_server: Any) -> None:
    from charter.eval.suites import list_suites

    out = tmp_path / "run"
    # Short answers keep this quick on a small CPU; refusals show in the first words anyway.
    options = EvalOptions(url=real_server.url, limit=2, seed=1, max_tokens=48, out=out, quiet=True)
    result = run_eval(options)
    names = [s.name for s in list_suites()]
    assert result.total == 2 * len(names) and result.errors == 0
    run = json.loads((out / "run.json").read_text())
    assert list(run["suites"]) == names and run["complete"] is True
    rows = results_lines(out)
    assert len(rows) == 2 * len(names)
    for r in rows:
        assert r["status"] == "ok" and r["outcome"] in ("pass", "fail") and r["why"]
    for name in names:  # the stratified sample takes two categories of each suite
        assert len({r["category"] for r in rows if r["suite"] == name}) == 2
    assert result.summary and (out / "report.html").exists()


def test_constitution_hash_is_read_from_the_trace() -> None:
    from charter.eval.runner import constitution_hash

    assert constitution_hash({"trace": {"constitution": {"hash": "abc"}}}) == "abc"
    assert constitution_hash({"constitution": {"hash": "def"}}) == "def"
    assert constitution_hash({"trace": None, "stages": []}) is None
    assert constitution_hash("not a dict") is None
