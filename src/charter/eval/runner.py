"""Run evaluation suites against any OpenAI-compatible endpoint, resumably.

The run directory holds ``run.json`` (what was measured, against what, and how: written
atomically) and ``results.jsonl`` (one line per case, appended and flushed as soon as the case
is scored, so that a killed run loses at most the cases in flight). Running the same command
again with the same ``--out`` skips the cases already recorded as ``ok`` and re-runs the ones
that ended in errors; when reading, the last line for a case wins.

Errors (the endpoint failed after retries, or refused the request) are recorded with status
``error`` and outcome ``error``: never scored, so never counted as a pass or a refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from charter.errors import CharterError, ConfigError, UpstreamError
from charter.eval.cases import Case
from charter.eval.suites import Suite, list_suites, load_suite, sample

RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"
REPORT_FILES = ("report.json", "report.html", "summary.md")
PROBE_TIMEOUT = 5.0
#: Longest wait a Retry-After header may impose before one retry.
MAX_RETRY_AFTER = 120.0
#: The keys of run.json that must match for a run directory to be resumed.
CONFIG_KEYS = ("endpoint", "model", "params", "seed", "suites", "limit", "judge")


@dataclass
class EvalOptions:
    """Everything `charter eval` takes; the defaults are the CLI's."""

    url: str
    suites: list[str] = field(default_factory=list)  # names or .jsonl paths; empty = all shipped
    model: str | None = None
    concurrency: int = 1
    limit: int | None = None
    seed: int | None = None
    out: Path | None = None
    max_tokens: int = 128
    temperature: float = 0.0
    api_key: str | None = None
    judge_url: str | None = None
    judge_model: str | None = None
    judge_api_key: str | None = None
    restart: bool = False
    quiet: bool = False
    retries: int = 3
    #: First retry delay in seconds; doubles with each retry (Retry-After wins when given).
    backoff: float = 1.0
    #: Seconds to wait for one answer (a busy server may queue the request first).
    request_timeout: float = 600.0


@dataclass
class RunOutcome:
    out_dir: Path
    summary: str | None
    total: int  # cases selected
    resumed: int  # already done before this invocation
    errors: int  # cases whose latest result is an error
    first_error: str | None = None


# --- small helpers --------------------------------------------------------------------------


def normalize_url(url: str, flag: str = "--url") -> str:
    """The server root: no trailing slash, no trailing /v1 (both spellings are common)."""
    u = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/]", u):
        raise ConfigError(f"{flag} must start with http:// or https://, not {url!r}")
    if u.endswith("/v1"):
        u = u[: -len("/v1")]
    return u


_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}


def same_endpoint(a: str, b: str) -> bool:
    """Whether two server roots are the same server (loopback spellings are one host)."""

    def key(url: str) -> tuple[str, int, str]:
        u = httpx.URL(url)
        host = u.host.lower()
        host = "loopback" if host in _LOOPBACK else host
        return host, u.port or (443 if u.scheme == "https" else 80), u.path.rstrip("/")

    return key(a) == key(b)


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _transport_reason(exc: httpx.TransportError) -> str:
    text = str(exc)
    low = text.lower()
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if "refused" in low or "all connection attempts failed" in low:
        return "connection refused"
    if any(s in low for s in ("name or service not known", "nodename nor servname", "getaddrinfo")):
        return "host name not found"
    return one_line(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, 200)


def _error_message(resp: httpx.Response) -> str:
    """An error response's message, from an OpenAI-style body when there is one."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    msg: Any = None
    if isinstance(body, dict):
        err = body.get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        msg = msg or body.get("detail") or body.get("message")
    if msg is None:
        msg = resp.text
    if not isinstance(msg, str):
        msg = json.dumps(msg)
    return one_line(
        f"HTTP {resp.status_code}: {msg}" if msg.strip() else f"HTTP {resp.status_code}"
    )


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("charter")
    except PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def constitution_hash(charter: Any) -> str | None:
    """The constitution hash a response's `charter` object carries, if any."""
    if not isinstance(charter, dict):
        return None
    # Charter puts it in the trace (`charter.trace.constitution.hash`).
    trace = charter.get("trace")
    c = trace.get("constitution") if isinstance(trace, dict) else None
    if isinstance(c, dict) and isinstance(c.get("hash"), str):
        return c["hash"]
    c = charter.get("constitution")
    if isinstance(c, dict) and isinstance(c.get("hash"), str):
        return c["hash"]
    h = charter.get("constitution_hash")
    return h if isinstance(h, str) else None


def default_out_dir(model: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
    return Path("eval-runs") / f"{safe}-{stamp}"


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_results(path: Path, *, repair: bool = False) -> dict[tuple[str, str], dict]:
    """The latest result per (suite, case_id) in a results.jsonl, in first-seen order.

    A partial last line (a run killed while writing) is ignored; with ``repair`` it is also
    cut off the file, so that appending continues on a fresh line.
    """
    if not path.exists():
        return {}
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        cut = raw.rfind(b"\n") + 1
        raw = raw[:cut]
        if repair:
            with open(path, "r+b") as f:
                f.truncate(cut)
    out: dict[tuple[str, str], dict] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "suite" in rec and "case_id" in rec:
            key = (rec["suite"], rec["case_id"])
            out.pop(key, None)  # last line wins, and takes the last place
            out[key] = rec
    return out


# --- the endpoint ---------------------------------------------------------------------------


async def list_model_ids(
    client: httpx.AsyncClient, url: str, *, has_key: bool, key_hint: str
) -> list[str]:
    """GET {url}/v1/models within 5 s, or a one-line UpstreamError that names the URL."""
    try:
        resp = await client.get(f"{url}/v1/models", timeout=PROBE_TIMEOUT)
    except httpx.TimeoutException:
        raise UpstreamError(
            f"cannot reach {url}: no answer to GET /v1/models within {PROBE_TIMEOUT:g} s"
        ) from None
    except httpx.TransportError as exc:
        raise UpstreamError(f"cannot reach {url}: {_transport_reason(exc)}") from None
    if resp.status_code in (401, 403):
        if has_key:
            raise UpstreamError(
                f"{url} rejected the API key (HTTP {resp.status_code})", status=resp.status_code
            )
        raise UpstreamError(f"{url} needs an API key: {key_hint}", status=resp.status_code)
    if resp.status_code != 200:
        raise UpstreamError(
            f"{url} does not answer like an OpenAI-compatible server: GET /v1/models gave "
            f"{_error_message(resp)}"
        )
    try:
        ids = [str(m["id"]) for m in resp.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise UpstreamError(f"{url}: GET /v1/models did not return a model list") from None
    return ids


def _response_fields(data: Any) -> dict[str, Any]:
    """Content, finish_reason, usage and charter from a chat.completion body."""
    choice = data["choices"][0]
    message = choice.get("message") or {}
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise TypeError("content is not text")
    charter = data.get("charter")
    return {
        "response": content,
        "finish_reason": choice.get("finish_reason"),
        "usage": data.get("usage"),
        "charter": charter if isinstance(charter, dict) else None,
    }


def _score_dict(result: Any) -> dict[str, Any]:
    if is_dataclass(result) and not isinstance(result, type):
        result = asdict(result)
    elif not isinstance(result, dict):
        result = vars(result)
    return {k: result.get(k) for k in ("verdict", "outcome", "why", "scores")}


# --- the run --------------------------------------------------------------------------------


class _Run:
    def __init__(
        self,
        opts: EvalOptions,
        client: httpx.AsyncClient,
        model: str,
        out: Path,
        meta: dict[str, Any],
        scorer: Any,
        echo: Callable[[str], None],
    ):
        self.opts = opts
        self.client = client
        self.model = model
        self.out = out
        self.meta = meta
        self.scorer = scorer
        self.echo = echo
        self.seed_supported: bool | None = meta.get("seed_supported")
        self.sem = asyncio.Semaphore(opts.concurrency)
        self.results = open(out / RESULTS_FILE, "a", encoding="utf-8")  # noqa: SIM115

    def save_meta(self) -> None:
        self.meta["seed_supported"] = self.seed_supported
        write_json_atomic(self.out / RUN_FILE, self.meta)

    async def request(self, case: Case) -> dict[str, Any]:
        """Ask the endpoint, with retries; the result fields, with status ok or error."""
        o = self.opts
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in case.messages],
            "max_tokens": o.max_tokens,
            "temperature": o.temperature,
            "stream": False,
        }
        if o.seed is not None and self.seed_supported is not False:
            body["seed"] = o.seed
        attempts = retries = 0
        while True:
            attempts += 1
            transient, wait, error = False, None, ""
            start = time.perf_counter()
            try:
                resp = await self.client.post(
                    f"{o.url}/v1/chat/completions",
                    json=body,
                    headers={"X-Charter-Source": "eval"},
                )
            except httpx.TransportError as exc:
                transient, error = True, _transport_reason(exc)
            else:
                latency = (time.perf_counter() - start) * 1000
                if resp.status_code == 200:
                    try:
                        fields = _response_fields(resp.json())
                    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                        error = "malformed response: " + one_line(resp.text, 200)
                    else:
                        if "seed" in body and self.seed_supported is None:
                            self.seed_supported = True
                        return {
                            "status": "ok",
                            "error": None,
                            **fields,
                            "latency_ms": round(latency, 1),
                            "attempts": attempts,
                        }
                else:
                    error = _error_message(resp)
                    if resp.status_code == 400 and "seed" in body and "seed" in error.lower():
                        # The server does not take a seed: go on without one, and say so.
                        if self.seed_supported is not False:
                            self.seed_supported = False
                            self.save_meta()
                        del body["seed"]
                        continue
                    if resp.status_code == 429 or resp.status_code >= 500:
                        transient, wait = True, _retry_after(resp)
            if transient and retries < o.retries:
                delay = wait if wait is not None else o.backoff * (2**retries)
                retries += 1
                await asyncio.sleep(delay)
                continue
            if transient and retries:
                error = f"{error} (after {retries} retries)"
            return {
                "status": "error",
                "error": error,
                "response": None,
                "finish_reason": None,
                "latency_ms": None,
                "usage": None,
                "charter": None,
                "attempts": attempts,
            }

    async def one(self, case: Case, bar: Any) -> dict[str, Any]:
        async with self.sem:
            got = await self.request(case)
        score: dict[str, Any] = {"verdict": None, "outcome": "error", "why": None, "scores": None}
        if got["status"] == "ok":
            try:
                score = _score_dict(
                    await asyncio.to_thread(self.scorer.score, case, got["response"])
                )
            except CharterError as exc:  # e.g. the judge failed: the case is retried on resume
                got["status"], got["error"] = "error", f"scoring failed: {one_line(exc.message)}"
            else:
                if self.meta.get("constitution_hash") is None:
                    h = constitution_hash(got["charter"])
                    if h is not None:
                        self.meta["constitution_hash"] = h
                        self.save_meta()
        bias = case.bias or {}
        rec = {
            "suite": case.suite,
            "case_id": case.id,
            "category": case.category,
            "expected": case.expected,
            "transform": case.transform,
            "attribute": bias.get("attribute"),
            "context": bias.get("context"),
            "prompt": case.prompt,
            "status": got["status"],
            "error": got["error"],
            "response": got["response"],
            "finish_reason": got["finish_reason"],
            "latency_ms": got["latency_ms"],
            "usage": got["usage"],
            "charter": got["charter"],
            **score,
            "attempts": got["attempts"],
        }
        self.results.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.results.flush()
        bar.update(1)
        return rec


def _load_suites(names: list[str]) -> list[Suite]:
    chosen = names or [s.name for s in list_suites()]
    suites: dict[str, Suite] = {}
    for n in chosen:
        s = load_suite(n)
        if s.name in suites:
            if suites[s.name].path != s.path:
                raise ConfigError(f"two suites are named {s.name!r}; rename one of the files")
            continue
        suites[s.name] = s
    return list(suites.values())


def _check_options(o: EvalOptions) -> None:
    if o.concurrency < 1:
        raise ConfigError("--concurrency must be 1 or more")
    if o.limit is not None and o.limit < 1:
        raise ConfigError("--limit must be 1 or more")
    if o.max_tokens < 1:
        raise ConfigError("--max-tokens must be 1 or more")
    if o.temperature < 0:
        raise ConfigError("--temperature must be 0 or more")
    if o.judge_model and not o.judge_url:
        raise ConfigError("--judge-model needs --judge-url")


def _config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    diffs = []
    for k in CONFIG_KEYS:
        if old.get(k) != new.get(k):
            a, b = json.dumps(old.get(k)), json.dumps(new.get(k))
            diffs.append(f"{k} {a} -> {b}" if len(a) + len(b) < 80 else k)
    return diffs


def _prepare_out(out: Path, meta: dict[str, Any], restart: bool) -> dict[str, Any] | None:
    """Create or check the run directory; the stored run.json when resuming, else None."""
    run_file, results_file = out / RUN_FILE, out / RESULTS_FILE
    if restart:
        for name in (RUN_FILE, RUN_FILE + ".tmp", RESULTS_FILE, *REPORT_FILES):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    if not run_file.exists():
        if results_file.exists():
            raise ConfigError(
                f"{out} has {RESULTS_FILE} but no {RUN_FILE}; pass a new --out, or --restart "
                "to clear it"
            )
        return None
    try:
        old = json.loads(run_file.read_text(encoding="utf-8"))
        if not isinstance(old, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read {run_file} ({one_line(str(exc), 80)}); pass a new --out, or --restart "
            "to clear it"
        ) from None
    diffs = _config_diff(old, meta)
    if diffs:
        raise ConfigError(
            f"{out} holds a run with another configuration ({'; '.join(diffs)}); pass a new "
            "--out, or --restart to clear it"
        )
    return old


def _make_scorer(opts: EvalOptions) -> Any:
    from charter.eval.scorers import Scorer

    judge = None
    if opts.judge_url:
        from charter.eval.judge import Judge

        judge = Judge(opts.judge_url, opts.judge_model, api_key=opts.judge_api_key)
    return Scorer(judge=judge)


def _compact(path: Path, latest: dict[tuple[str, str], dict]) -> None:
    """Rewrite results.jsonl with one line per case (the latest), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in latest.values():
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_reports(out: Path) -> str | None:
    import importlib

    try:
        report = importlib.import_module("charter.eval.report")
    except ModuleNotFoundError as exc:  # tolerated only while the module does not exist
        if exc.name != "charter.eval.report":
            raise
        return None
    return report.write_reports(out)


async def run_eval_async(
    opts: EvalOptions,
    *,
    scorer: Any = None,
    echo: Callable[[str], None] | None = None,
) -> RunOutcome:
    say = echo or (lambda s: print(s, file=sys.stderr))
    info = (lambda s: None) if opts.quiet else say
    _check_options(opts)
    opts.url = normalize_url(opts.url)
    if opts.judge_url:
        opts.judge_url = normalize_url(opts.judge_url, "--judge-url")
        if same_endpoint(opts.url, opts.judge_url):
            raise ConfigError(
                f"--judge-url {opts.judge_url} is the endpoint being evaluated: the judge must "
                "not be the system under test"
            )
    suites = _load_suites(opts.suites)

    headers = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}
    timeout = httpx.Timeout(opts.request_timeout, connect=10.0, pool=None)
    limits = httpx.Limits(max_connections=opts.concurrency + 2)
    async with httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits) as client:
        ids = await list_model_ids(
            client,
            opts.url,
            has_key=bool(opts.api_key),
            key_hint="pass --api-key or set CHARTER_EVAL_API_KEY",
        )
        model = opts.model
        if model is None:
            if not ids:
                raise UpstreamError(f"{opts.url} lists no models; pass --model")
            model = ids[0]
        elif ids and model not in ids:
            say(f"warning: {opts.url} does not list model {model!r} (it lists {', '.join(ids)})")
        if opts.judge_url:
            judge_headers = {"Authorization": f"Bearer {opts.judge_api_key}"}
            async with httpx.AsyncClient(headers=judge_headers if opts.judge_api_key else {}) as jc:
                judge_ids = await list_model_ids(
                    jc,
                    opts.judge_url,
                    has_key=bool(opts.judge_api_key),
                    key_hint="pass --judge-api-key or set CHARTER_EVAL_JUDGE_API_KEY",
                )
            if opts.judge_model is None:
                if not judge_ids:
                    raise UpstreamError(f"{opts.judge_url} lists no models; pass --judge-model")
                opts.judge_model = judge_ids[0]
        if scorer is None:
            scorer = _make_scorer(opts)

        selected = {s.name: sample(s.cases, opts.limit, opts.seed) for s in suites}
        meta: dict[str, Any] = {
            "tool": "charter",
            "tool_version": _tool_version(),
            "endpoint": opts.url,
            "model": model,
            "seed": opts.seed,
            "seed_supported": None,
            "params": {"max_tokens": opts.max_tokens, "temperature": opts.temperature},
            "suites": {
                s.name: {"version": s.recorded_version, "cases": len(selected[s.name])}
                for s in suites
            },
            "limit": opts.limit,
            "constitution_hash": None,
            "judge": {"url": opts.judge_url, "model": opts.judge_model} if opts.judge_url else None,
            "started": _now(),
            "finished": None,
            "duration_s": None,
            "complete": False,
        }
        out = opts.out or default_out_dir(model)
        old = _prepare_out(out, meta, opts.restart)
        previous_s = 0.0
        if old is not None:
            meta["started"] = old.get("started") or meta["started"]
            meta["seed_supported"] = old.get("seed_supported")
            meta["constitution_hash"] = old.get("constitution_hash")
            previous_s = float(old.get("duration_s") or 0.0)
        done = read_results(out / RESULTS_FILE, repair=True)
        ok = {k for k, r in done.items() if r.get("status") == "ok"}
        total = sum(len(c) for c in selected.values())
        resumed = sum(1 for s, cs in selected.items() for c in cs if (s, c.id) in ok)
        verb = f"resuming {out}: {resumed} of {total} cases done" if old else f"writing {out}"
        info(f"charter eval: {total} cases, {len(suites)} suites, {opts.url} model {model}; {verb}")

        run = _Run(opts, client, model, out, meta, scorer, say)
        run.save_meta()
        t0 = time.monotonic()
        bars = _progress_bars(suites, selected, ok, opts.quiet)
        try:
            async with asyncio.TaskGroup() as tg:
                for s in suites:
                    for case in selected[s.name]:
                        if (s.name, case.id) not in ok:
                            tg.create_task(run.one(case, bars[s.name]))
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None
        except asyncio.CancelledError:  # Ctrl-C: what was scored is on disk
            say(f"interrupted: results so far are in {out}; run the same command to resume")
            raise
        finally:
            run.results.close()
            for bar in bars.values():
                bar.close()
            meta["duration_s"] = round(previous_s + time.monotonic() - t0, 3)
            run.save_meta()

    latest = read_results(out / RESULTS_FILE)
    wanted = [(s, c.id) for s, cs in selected.items() for c in cs]
    errors = [latest[k] for k in wanted if k in latest and latest[k].get("status") != "ok"]
    missing = [k for k in wanted if k not in latest]
    _compact(out / RESULTS_FILE, latest)
    meta["finished"] = _now()
    meta["complete"] = not errors and not missing
    run.save_meta()
    summary = _write_reports(out)
    return RunOutcome(
        out_dir=out,
        summary=summary,
        total=total,
        resumed=resumed,
        errors=len(errors) + len(missing),
        first_error=errors[0].get("error") if errors else None,
    )


def _progress_bars(
    suites: list[Suite], selected: dict[str, list[Case]], ok: set, quiet: bool
) -> dict[str, Any]:
    from tqdm import tqdm

    disable = quiet or not sys.stderr.isatty()
    width = max(len(s.name) for s in suites)
    return {
        s.name: tqdm(
            total=len(selected[s.name]),
            initial=sum(1 for c in selected[s.name] if (s.name, c.id) in ok),
            desc=s.name.ljust(width),
            unit="case",
            file=sys.stderr,
            position=i,
            leave=True,
            disable=disable,
            dynamic_ncols=True,
        )
        for i, s in enumerate(suites)
    }


def run_eval(
    opts: EvalOptions, *, scorer: Any = None, echo: Callable[[str], None] | None = None
) -> RunOutcome:
    """Run (or resume) an evaluation; see :class:`EvalOptions`. Raises CharterError."""
    return asyncio.run(run_eval_async(opts, scorer=scorer, echo=echo))
