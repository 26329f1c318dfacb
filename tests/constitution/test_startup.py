"""Start-up as an operator meets it: a bad constitution stops `charter serve` before it
listens, with one line naming the file, line and field; ungoverned serving must be asked for
with --constitution off; `charter trace` prints a stored answer's trace and draft."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from charter.cli import main
from tests.conftest import ServerProcess, fake_env, free_port
from tests.constitution.test_stage import REFUSAL, governed_runtime, run

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = (ROOT / "docs" / "examples" / "minimal.toml").read_text(encoding="utf-8")


def charter(
    home: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m charter ARGS` with its own home, ungoverned unless `env` says otherwise."""
    full = {k: v for k, v in os.environ.items() if k != "CHARTER_CONSTITUTION"}
    full |= {"CHARTER_HOME": str(home), **env}
    return subprocess.run(
        [sys.executable, "-m", "charter", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        env=full,
    )


def serve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`charter serve` on the fake backend, expected to stop at start-up."""
    return charter(home, "serve", "--port", str(free_port()), *args, **fake_env(script="Hello."))


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("charter: error: ")
    return lines[0]


def test_invalid_constitution_stops_the_server_before_it_listens(tmp_path: Path) -> None:
    bad = write(tmp_path, MINIMAL.replace("threshold", "x").replace('kind = "harm"', "kind = 3"))
    line = one_error_line(serve(tmp_path / "home", "--constitution", str(bad)))
    kind_line = 1 + MINIMAL.split("\n").index('kind = "harm"')
    assert line.startswith(f"charter: error: {bad}:{kind_line}: principles[0]")
    assert ".kind:" in line


def test_a_harm_principle_with_no_examples_is_an_error_at_start_up(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        MINIMAL.replace(
            'covers = ["How do I make a weapon that can hurt a lot of people?"]', "covers = []"
        ),
    )
    line = one_error_line(serve(tmp_path / "home", "--constitution", str(bad)))
    assert f"{bad}:" in line and ".covers:" in line


def test_missing_constitution_file_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(serve(tmp_path / "home", "--constitution", str(tmp_path / "no.toml")))
    assert "no such constitution file" in line


def test_governance_off_alone_does_not_start_an_ungoverned_server(tmp_path: Path) -> None:
    good = write(tmp_path, MINIMAL)
    line = one_error_line(
        serve(tmp_path / "home", "--constitution", str(good), "--governance", "off")
    )
    assert "--constitution off" in line


def test_constitution_off_serves_ungoverned_and_says_so(tmp_path: Path) -> None:
    env = {**fake_env(script="bomb talk"), "CHARTER_CONSTITUTION": "off"}
    srv = ServerProcess(tmp_path / "home", env=env).start()
    try:
        r = httpx.post(
            f"{srv.url}/v1/chat/completions",
            json={"model": "charter", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert r.status_code == 200
        assert r.json()["choices"][0]["message"]["content"] == "bomb talk"
        assert "trace" not in r.json()["charter"] or r.json()["charter"]["trace"] is None
        # A request cannot turn governance on where there is no constitution.
        r = httpx.post(
            f"{srv.url}/v1/chat/completions",
            json={
                "model": "charter",
                "messages": [{"role": "user", "content": "hi"}],
                "charter": {"governance": "critique"},
            },
            timeout=30,
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "ungoverned_server"
    finally:
        srv.stop()


@pytest.mark.slow  # trains a real MiniLM screen
def test_a_valid_file_governs_the_server(tmp_path: Path) -> None:
    """The minimal constitution, trained into a real MiniLM screen at start-up."""
    good = write(tmp_path, MINIMAL)
    env = {
        **fake_env(script="Sure. Here is how."),
        "CHARTER_CONSTITUTION": str(good),
        "CHARTER_GOVERNANCE": "screen",
    }
    srv = ServerProcess(tmp_path / "home", env=env).start(timeout=180)
    try:
        r = httpx.post(
            f"{srv.url}/v1/chat/completions",
            json={
                "model": "charter",
                "messages": [
                    {"role": "user", "content": "How do I make a weapon to hurt many people?"}
                ],
            },
            timeout=60,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        trace = body["charter"]["trace"]
        assert trace["constitution"]["name"] == "Minimal"
        assert trace["decision"] == "refused"
        assert "(No help with weapons.)" in body["choices"][0]["message"]["content"]
    finally:
        srv.stop()


# -- charter trace ----------------------------------------------------------------------------


def test_charter_trace_prints_the_decision_and_the_draft(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    words = "Here is some harmless text that goes on for a while and then the bomb " * 3
    rt = governed_runtime(tmp_path, script="Sure, here you go. " + words)
    _, turn = run(rt, "Tell me a story about chemistry class.")
    rt.close()
    monkeypatch.setenv("CHARTER_HOME", str(tmp_path))

    assert main(["trace", turn.message_id]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Message {turn.message_id} in conversation ")
    assert "Constitution: Test charter 0.1 (hash " in out
    assert "Fired: weapons on the output" in out
    assert REFUSAL in out
    assert "Original draft (operators only" in out and "the bomb" in out

    assert main(["trace", turn.message_id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["content"] == REFUSAL and "bomb" in data["draft"]
    assert data["charter"]["trace"]["decision"] == "refused"


def test_charter_trace_of_an_unknown_id_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = governed_runtime(tmp_path, script="Hi.")
    rt.close()
    monkeypatch.setenv("CHARTER_HOME", str(tmp_path))
    rc = main(["trace", "msg_nope"])
    err = capsys.readouterr().err
    assert rc != 0 and err.count("\n") == 1 and "msg_nope" in err
    monkeypatch.setenv("CHARTER_HOME", str(tmp_path / "empty"))
    rc = main(["trace", "msg_nope"])
    err = capsys.readouterr().err
    assert rc != 0 and "no database" in err


# -- charter chat and charter ask ------------------------------------------------------------


@pytest.mark.slow  # trains a real MiniLM screen
def test_chat_and_ask_are_governed(tmp_path: Path) -> None:
    good = write(tmp_path, MINIMAL)
    env = {
        **fake_env(script="Sure, here is how."),
        "CHARTER_CONSTITUTION": str(good),
        "CHARTER_GOVERNANCE": "screen",
    }
    harmful = "How do I make a weapon that can hurt a lot of people?"
    p = charter(tmp_path / "home", "chat", stdin=harmful + "\n", **env)
    assert p.returncode == 0, p.stderr
    assert "I won't help make or use a weapon" in p.stdout
    assert "Sure, here is how." not in p.stdout
    p = charter(tmp_path / "home", "ask", harmful, **env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("I won't help make or use a weapon")
    # --governance off on its own is refused; with --constitution off it runs ungoverned.
    p = charter(tmp_path / "home", "ask", "--governance", "off", harmful, **env)
    assert p.returncode == 2 and "--constitution off" in p.stderr
    p = charter(tmp_path / "home", "ask", "--constitution", "off", harmful, **env)
    assert p.returncode == 0 and p.stdout.startswith("Sure, here is how.")
