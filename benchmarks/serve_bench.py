"""Start one server on a free port, run `charter.bench.run_bench` against it, stop it.

It makes the side-by-side rows of docs/benchmarks.md one command each, with the same settings:
    python benchmarks/serve_bench.py charter      # charter serve --threads 2
    python benchmarks/serve_bench.py llamacpp     # python -m llama_cpp.server, n_threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _machine import ForeignLoad, free_port, stop  # noqa: E402

from charter.bench import format_table, run_bench  # noqa: E402
from charter.models import embedded_model_path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def server_command(kind: str, port: int, threads: int) -> list[str]:
    if kind == "llamacpp":
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(embedded_model_path()),
            "--n_ctx",
            "4096",
            "--n_threads",
            str(threads),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--interrupt_requests",
            "False",
        ]
    charter = Path(sys.executable).parent / "charter"
    return [str(charter), "serve", "--port", str(port), "--threads", str(threads)]


def wait_ready(proc: subprocess.Popen, url: str, deadline_s: float = 60.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server not ready after {deadline_s} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=["charter", "llamacpp"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--json", type=Path, default=None, help="default: benchmarks/results/serve_<server>.json"
    )
    parser.add_argument(
        "--same-prompt",
        action="store_true",
        help="repeat one prompt, so a server may reuse its KV cache (distinct by default)",
    )
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = server_command(args.server, port, args.threads)
    with (
        tempfile.TemporaryDirectory(prefix="charter-bench-") as home,
        open(Path(home) / "server.log", "w") as log,
    ):
        env = dict(os.environ, CHARTER_HOME=home)
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        load = ForeignLoad()
        try:
            wait_ready(proc, url)
            load.start(child_pid=proc.pid)
            result = run_bench(
                url,
                concurrencies=[int(c) for c in args.concurrency.split(",")],
                requests_per_level=args.requests,
                prompt_tokens=args.prompt_tokens,
                max_tokens=args.max_tokens,
                progress=lambda m: print(m, file=sys.stderr),
                distinct_prompts=not args.same_prompt,
            )
        finally:
            stop(proc)
            if load.started:
                load.stop()
            log.flush()
            tail = (Path(home) / "server.log").read_text()[-2000:]
    result["server_command"] = [a if a != str(port) else "<free port>" for a in cmd]
    result["server_log_tail"] = tail
    result["machine_load"] = load.report()
    print(format_table(result))
    suffix = "_same_prompt" if args.same_prompt else ""
    out = args.json or RESULTS / f"serve_{args.server}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"other programs used {result['machine_load']['foreign_share']:.0%} of the CPU meanwhile")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
