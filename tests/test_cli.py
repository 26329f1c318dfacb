"""The `charter` command as a user runs it: real subprocesses, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from charter.cli import main
from tests.conftest import fake_env

# Each test starts real `charter` processes (about a second of imports each).
slow = pytest.mark.slow


def charter(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "charter", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(p: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert p.returncode != 0
    err = p.stderr.strip()
    assert "Traceback" not in p.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("charter: error:") or err.startswith("Error:"), err
    for n in needles:
        assert n in err, err


@slow
def test_help_on_every_command() -> None:
    for cmd in (
        [],
        ["serve"],
        ["chat"],
        ["ask"],
        ["models"],
        ["keys"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["bench"],
        ["inspect"],
        ["lens"],
        ["feedback"],
        ["feedback", "export"],
        ["train"],
        ["train", "run"],
        ["train", "sl-data"],
        ["train", "prefs"],
    ):
        p = charter(*cmd, "--help")
        assert p.returncode == 0, p.stderr
        assert "Usage: charter" in p.stdout
        # every option line carries a help text
        opts = [ln for ln in p.stdout.splitlines() if ln.strip().startswith("--")]
        for ln in opts:
            assert len(ln.split("  ")) > 1 or ln.rstrip().endswith("..."), ln


@slow
def test_ask_prints_answer(_isolated_home: Path) -> None:
    p = charter("ask", "hello?", env=fake_env(script="Hi from the script."))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "Hi from the script."


@slow
def test_ask_json_prints_full_response_object() -> None:
    p = charter("ask", "hello?", "--json", env=fake_env(script="A B C"))
    obj = json.loads(p.stdout)
    assert obj["object"] == "chat.completion"
    assert obj["choices"][0]["message"]["content"] == "A B C"
    assert obj["charter"]["conversation_id"].startswith("conv_")
    assert obj["usage"]["completion_tokens"] == 3


@slow
def test_ask_reads_stdin_and_keeps_conversation(_isolated_home: Path) -> None:
    env = fake_env(echo=True)
    first = json.loads(charter("ask", "-", "--json", env=env, stdin="first question").stdout)
    assert first["choices"][0]["message"]["content"] == "first question"
    conv = first["charter"]["conversation_id"]
    p = charter("ask", "second", "--conversation", conv, env=env)
    assert p.stdout.strip() == "second"


@slow
def test_chat_session_streams_resets_and_exits(_isolated_home: Path) -> None:
    from charter.store import Store

    p = charter(
        "chat",
        env=fake_env(echo=True),
        stdin="hello there\n/help\nsecond line\n/reset\nnew topic\n/exit\n",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("hello there") == 1 and "new topic" in p.stdout
    assert "(new conversation)" in p.stderr
    convs = Store(_isolated_home / "charter.db").list_conversations()
    assert sorted(c["message_count"] for c in convs) == [2, 4]  # history kept, then reset
    assert {c["source"] for c in convs} == {"cli"}


@slow
def test_chat_ends_on_eof() -> None:
    p = charter("chat", env=fake_env(), stdin="hi\n")
    assert p.returncode == 0 and "Hello" in p.stdout


@slow
def test_models_lists_embedded_model_with_header_figures(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a model")
    p = charter("models", "--model", str(bad))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:5] == ["MODEL", "SIZE", "ARCH", "PARAMS", "CONTEXT"]
    smol = next(ln for ln in lines if "SmolLM2-135M-Instruct.Q4_1.gguf" in ln)
    assert "98.4 MB" in smol and "llama" in smol and "134.5M" in smol
    assert "broken.gguf" in p.stdout and "error" in p.stdout
    data = json.loads(charter("models", "--json").stdout)
    assert data[0]["source"] == "embedded" and data[0]["parameter_count"] == 134_515_008


@slow
def test_missing_model_file_is_one_line_error(tmp_path: Path) -> None:
    p = charter("ask", "hi", "--model", str(tmp_path / "nope.gguf"))
    assert_one_line_error(p, "nope.gguf")


@slow
def test_corrupt_model_file_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)
    assert_one_line_error(charter("serve", "--model", str(bad)), "corrupt.gguf")


@slow
def test_bad_settings_and_flags_are_one_line_errors() -> None:
    assert_one_line_error(charter("ask", "hi", env={"CHARTER_N_CTX": "many"}), "N_CTX")
    assert_one_line_error(charter("ask", "hi", "--backend", "nonesuch"), "nonesuch")
    assert_one_line_error(charter("ask", "hi", "--temperature", "9", env=fake_env()), "temperature")
    assert_one_line_error(charter("ask", "   ", env=fake_env()), "empty")
    assert_one_line_error(
        charter("ask", "hi", "--conversation", "conv_nope", env=fake_env()), "conv_nope"
    )
    assert_one_line_error(
        charter("ask", "hi", env=fake_env(colour="red")), "colour", "unknown option"
    )
    assert_one_line_error(charter("ask", "hi", env={"CHARTER_BACKEND": "openai"}), "base_url")
    assert_one_line_error(
        charter("ask", "hi", env={"CHARTER_BACKEND_OPTIONS": "{oops"}), "BACKEND_OPTIONS"
    )
    p = charter("ask", "word " * 100, env=fake_env(context_size=20))
    assert_one_line_error(p, "context is 20")


@slow
def test_serve_refuses_public_address_without_keys() -> None:
    p = charter("serve", "--host", "0.0.0.0", "--port", "0", env=fake_env())
    assert_one_line_error(p, "API keys", "--insecure")


@slow
def test_keys_create_list_revoke(_isolated_home: Path) -> None:
    p = charter("keys", "create", "laptop")
    assert p.returncode == 0
    secret = p.stdout.strip()
    assert secret.startswith("ck-") and len(secret) > 40
    listed = charter("keys", "list").stdout
    assert "laptop" in listed and "active" in listed and secret not in listed
    assert "revoked" in charter("keys", "revoke", "laptop").stdout
    assert "revoked" in charter("keys", "list").stdout
    assert_one_line_error(charter("keys", "revoke", "laptop"), "laptop")
    # stored hashed: the secret is nowhere in the database file
    assert secret.encode() not in (_isolated_home / "charter.db").read_bytes()


def test_main_returns_exit_codes_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list"]) == 0
    assert main(["ask", "hi", "--backend", "nope"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


@slow
def test_show_confidence_prints_summary_and_json_logprobs() -> None:
    p = charter("ask", "hi", "--show-confidence", env=fake_env(script="A B C D"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "A B C D"  # no colour codes when not on a terminal
    assert "confidence: mean p" in p.stderr and "least certain: 'C'" in p.stderr
    obj = json.loads(
        charter("ask", "hi", "--show-confidence", "--json", env=fake_env(script="A B")).stdout
    )
    assert [t["token"] for t in obj["choices"][0]["logprobs"]["content"]] == ["A", " B"]
    assert obj["charter"]["confidence"]["tokens"] == 2
