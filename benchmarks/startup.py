"""How long `charter serve` takes from process start to its first answer.

The target is 5 s on a 2-core CPU; this starts a fresh server on a free port each time, in a
fresh data directory, and times /health and the first streamed chat completion.
Usage: python benchmarks/startup.py [--repeats 3] [--json OUT] [-- extra serve args]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _machine import ForeignLoad, free_port, stop

RESULTS = Path(__file__).resolve().parent / "results"
POLL_S = 0.02


def charter_command() -> list[str]:
    """The `charter` next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "charter"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("charter")
    if found is None:
        raise SystemExit("charter is not installed: pip install -e .")
    return [found]


def first_answer(client: httpx.Client, base: str, model: str | None, start: float) -> dict:
    """Stream one short chat completion; return when its first token and its end arrived."""
    body = {
        "messages": [{"role": "user", "content": "Say hello."}],
        "stream": True,
        "max_tokens": 16,
        "temperature": 0,
    }
    # Asking /v1/models first is what a client that knows nothing would do; it counts.
    body["model"] = model or client.get(f"{base}/v1/models").json()["data"][0]["id"]
    first = None
    text = []
    with client.stream("POST", f"{base}/v1/chat/completions", json=body) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.read()[:200]!r}")
        for line in resp.iter_lines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            for choice in json.loads(line[5:]).get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    text.append(content)
                    if first is None:
                        first = time.perf_counter() - start
    return {
        "first_token_s": first,
        "answer_s": time.perf_counter() - start,
        "answer": "".join(text),
    }


def one_start(
    cmd: list[str], extra: list[str], model: str | None, deadline_s: float, log: Path
) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="charter-startup-") as home, open(log, "a") as out:
        # A fresh data directory each time: the first start on a new machine is the one a
        # user meets, migrations and all.
        env = dict(
            os.environ,
            XDG_DATA_HOME=home,
            XDG_CONFIG_HOME=home,
            XDG_CACHE_HOME=home,
            CHARTER_HOME=home,
        )
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*cmd, "serve", "--port", str(port), *extra],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(timeout=30) as client:
                health = None
                while health is None:
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"charter serve exited with {proc.returncode}; see {log}"
                        )
                    if time.perf_counter() - start > deadline_s:
                        raise RuntimeError(f"no /health within {deadline_s} s; see {log}")
                    try:
                        if client.get(f"{base}/health").status_code == 200:
                            health = time.perf_counter() - start
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(POLL_S)
                answer = first_answer(client, base, model, start)
        finally:
            stop(proc)
    return {
        "health_s": round(health, 4),
        "first_token_s": round(answer["first_token_s"], 4)
        if answer["first_token_s"] is not None
        else None,
        "answer_s": round(answer["answer_s"], 4),
        "answer": answer["answer"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--model", default=None, help="model to request (default: the first of /v1/models)"
    )
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=RESULTS / "startup.json")
    parser.add_argument("serve_args", nargs="*", help="extra arguments for `charter serve`")
    args = parser.parse_args()

    cmd = charter_command()
    log = Path(tempfile.gettempdir()) / "charter-startup.log"
    log.write_text("")
    runs = []
    for i in range(args.repeats):
        with ForeignLoad() as load:
            run = one_start(cmd, args.serve_args, args.model, args.deadline, log)
        run["machine_load"] = load.report()
        runs.append(run)
        print(
            f"start {i + 1}: health {run['health_s'] * 1000:.0f} ms, first token "
            f"{(run['first_token_s'] or 0) * 1000:.0f} ms, answer {run['answer_s'] * 1000:.0f}"
            f" ms: {run['answer'][:40]!r} (others used "
            f"{run['machine_load']['foreign_share']:.0%} of the CPU)"
        )
    worst = max(r["answer_s"] for r in runs)
    median = statistics.median(r["answer_s"] for r in runs)
    result = {
        "command": [*cmd, "serve", "--port", "<free>", *args.serve_args],
        "environment": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "poll_interval_s": POLL_S,
        "runs": runs,
        "median_answer_s": median,
        "max_answer_s": worst,
    }
    print(
        f"start to full first answer: median {median:.2f} s, worst {worst:.2f} s "
        f"(target <= 5 s: {'pass' if worst <= 5 else 'FAIL'})"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
