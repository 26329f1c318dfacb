"""A real, throw-away PostgreSQL (with pgvector) for tests, from the `pgserver` wheel's binaries.

`pgserver` ships PostgreSQL 16 with pgvector inside (pgserver/pginstall). We use its binaries
but not its `get_server()`: run as root, that adds a system user with `useradd` and widens the
permissions of every folder above the venv. PostgreSQL itself refuses to run as root, so here,
when we are root, initdb and postgres run as the unprivileged `nobody` (no user is created) in
a temporary folder handed to it; as any other user they simply run as that user. The server
listens on a Unix socket in that folder only (no TCP port, so no port to race for), runs with
fsync off, and is stopped and its folder deleted by `stop()`.

    server = PgServer.start()         # or PgUnavailable with the reason it cannot
    dsn = server.create_database()    # a fresh, empty database per test
    server.stop()
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

# The unprivileged account PostgreSQL runs as when the tests run as root.
UNPRIVILEGED_USER = "nobody"


class PgUnavailable(Exception):
    """PostgreSQL cannot run on this machine; the message says why (a skip reason)."""


def pginstall() -> Path:
    """pgserver's bundled PostgreSQL prefix (bin/, lib/, share/), found without importing it."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PgUnavailable("pgserver is not installed (pip install -e '.[test]')")
    prefix = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (prefix / "bin" / "postgres").exists():
        raise PgUnavailable(f"pgserver has no PostgreSQL binaries at {prefix}/bin")
    return prefix


class _RunAs:
    """subprocess keyword arguments that run a command as `nobody` when we are root."""

    def __init__(self) -> None:
        self.kwargs: dict = {}
        self.uid = os.geteuid()
        self.gid = os.getegid()
        if self.uid == 0:
            try:
                entry = pwd.getpwnam(UNPRIVILEGED_USER)
            except KeyError:
                raise PgUnavailable(
                    f"running as root and there is no '{UNPRIVILEGED_USER}' user to run "
                    "PostgreSQL as (it refuses to run as root)"
                ) from None
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
            self.kwargs = {"user": self.uid, "group": self.gid, "extra_groups": []}

    @property
    def switching(self) -> bool:
        return bool(self.kwargs)

    def run(self, args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_clean_env(),
            **self.kwargs,
        )


def _clean_env() -> dict[str, str]:
    """The environment without libpq settings that could point a tool at another server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _last_lines(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) or "(no output)"


class PgServer:
    """One running PostgreSQL in its own temporary folder; `stop()` ends it and deletes it."""

    def __init__(self, base: Path, bindir: Path, proc: subprocess.Popen, run_as: _RunAs):
        self.base = base
        self.bindir = bindir
        self.proc = proc
        self.run_as = run_as
        self.socket_dir = base
        self.log = base / "postgres.log"

    # -- life cycle --------------------------------------------------------------------
    @classmethod
    def start(cls, timeout: float = 60.0, settings: dict[str, str] | None = None) -> PgServer:
        """initdb a fresh cluster in a new temp folder and start postgres on a Unix socket there.

        `settings` are extra server settings (`-c name=value`). Raises PgUnavailable (with the
        reason) when it cannot be done on this machine.
        """
        extra = [arg for k, v in (settings or {}).items() for arg in ("-c", f"{k}={v}")]
        prefix = pginstall()
        run_as = _RunAs()
        # mkdtemp under the system temp dir keeps the socket path short (Unix sockets: 107 bytes).
        base = Path(tempfile.mkdtemp(prefix="charter-pg-"))
        try:
            if run_as.switching:
                os.chown(base, run_as.uid, run_as.gid)
                prefix = _reachable_prefix(prefix, base, run_as)
            bindir = prefix / "bin"
            data = base / "data"
            init = run_as.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                cwd=base,
            )
            if init.returncode != 0:
                raise PgUnavailable(
                    f"initdb failed (exit {init.returncode}): {_last_lines(init.stderr)}"
                )
            log = open(base / "postgres.log", "ab")  # noqa: SIM115 (the server keeps it)
            try:
                proc = subprocess.Popen(
                    [
                        str(bindir / "postgres"),
                        "-D",
                        str(data),
                        "-k",
                        str(base),
                        "-c",
                        "listen_addresses=",
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "max_connections=40",
                        *extra,
                    ],
                    cwd=base,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_clean_env(),
                    start_new_session=True,
                    **run_as.kwargs,
                )
            finally:
                log.close()
            server = cls(base, bindir, proc, run_as)
            server._wait_ready(timeout)
            return server
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                raise PgUnavailable(
                    f"postgres exited at start (exit {self.proc.returncode}): {_last_lines(log)}"
                )
            try:
                psycopg.connect(self.dsn(), connect_timeout=2).close()
                return
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PgUnavailable(
                        f"postgres not accepting connections in {timeout:.0f}s: {err}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnects clients), then delete the folder."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)

    # -- use ---------------------------------------------------------------------------
    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its DSN."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        name = conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def sql(self, dsn: str, statement: str) -> list[tuple]:
        """Run one statement as the superuser on `dsn`; its rows (if any)."""
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []


def _reachable_prefix(prefix: Path, base: Path, run_as: _RunAs) -> Path:
    """`prefix` if the unprivileged user can run its binaries, else a copy of it inside `base`.

    A venv under /root (mode 0700) is not reachable by `nobody`. PostgreSQL finds its lib/ and
    share/ relative to the binary, and the wheel's binaries find their shared libraries at
    $ORIGIN/../../../pgserver.libs, so a copy of both (~40 MB), laid out alike, works as well.
    """
    if _runs(prefix, base, run_as) is None:
        return prefix
    site = base / "site"
    copy = site / "pgserver" / "pginstall"
    shutil.copytree(prefix, copy, symlinks=True)
    libs = prefix.parent.parent / "pgserver.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / "pgserver.libs", symlinks=True)
    for folder in (site, site / "pgserver", copy):
        os.chmod(folder, 0o755)
    problem = _runs(copy, base, run_as)
    if problem is not None:
        raise PgUnavailable(
            f"'{UNPRIVILEGED_USER}' cannot run PostgreSQL's binaries even from a copy in "
            f"{base}: {problem}"
        )
    return copy


def _runs(prefix: Path, base: Path, run_as: _RunAs) -> str | None:
    """None if `postgres --version` from `prefix` runs as the test server's user, else why not."""
    try:
        probe = run_as.run([str(prefix / "bin" / "postgres"), "--version"], cwd=base, timeout=30)
    except OSError as err:
        return str(err)
    return None if probe.returncode == 0 else _last_lines(probe.stderr)
