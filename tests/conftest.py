"""Shared fixtures: isolated CHARTER_HOME, in-process runtimes on the fake backend, and real
`charter serve` processes on free ports polled on /health (as a user would run them)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from charter.config import Settings
from charter.runtime import Runtime

_MODEL_VARS = ("CHARTER_BACKEND", "CHARTER_BACKEND_OPTIONS", "CHARTER_MODEL")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test ever touches the real user data directory."""
    home = tmp_path / "charter-home"
    monkeypatch.setenv("CHARTER_HOME", str(home))
    # Tests of other subsystems run ungoverned (explicitly, as a user would say it); the
    # constitution's tests (tests/constitution) turn it on with a constitution of their own.
    monkeypatch.setenv("CHARTER_CONSTITUTION", "off")
    for var in _MODEL_VARS:
        monkeypatch.delenv(var, raising=False)
    return home


def fake_settings(home: Path, **kw: object) -> Settings:
    opts = kw.pop("backend_options", {"script": "Hello there, friend."})
    return Settings(home=home, backend="fake", backend_options=opts, **kw)


@pytest.fixture
def fake_runtime(_isolated_home: Path) -> Iterator[Runtime]:
    rt = Runtime(fake_settings(_isolated_home))
    rt.load()
    yield rt
    rt.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m charter serve` in a subprocess on a free port, ready when /health is ok."""

    def __init__(
        self, home: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None
    ):
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        # The model and backend come from `env` only, never from the developer's shell.
        inherited = {k: v for k, v in os.environ.items() if k not in _MODEL_VARS}
        self.env = {**inherited, "CHARTER_HOME": str(home), **(env or {})}
        self.log = home.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "charter", "serve", "--port", str(self.port), *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not healthy in {timeout}s:\n{self.log.read_text()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def fake_env(**options: object) -> dict[str, str]:
    return {"CHARTER_BACKEND": "fake", "CHARTER_BACKEND_OPTIONS": json.dumps(options)}


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """Factory: start_server(*args, env=..., home=...) -> a running ServerProcess."""
    servers: list[ServerProcess] = []

    def start(
        *args: str, env: dict[str, str] | None = None, home: Path | None = None
    ) -> ServerProcess:
        srv = ServerProcess(home or tmp_path / "charter-home", *args, env=env).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `charter serve` on the real embedded model, shared by the slow tests."""
    home = tmp_path_factory.mktemp("real") / "charter-home"
    # Session fixtures start before the autouse environment above, so say "off" here too.
    srv = ServerProcess(home, env={"CHARTER_N_CTX": "2048", "CHARTER_CONSTITUTION": "off"}).start()
    yield srv
    srv.stop()
