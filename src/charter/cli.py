"""The `charter` command: parse flags, call the library, print; errors become one line.

Every command here is a thin shell over a library function a test can call directly.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from charter.config import Settings, is_loopback, load_settings
from charter.errors import CharterError, ConfigError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Flags shared by every command that runs a model."""
    opts = [
        click.option(
            "--model",
            "model",
            type=click.Path(path_type=Path),
            default=None,
            help="A local GGUF file to run instead of the embedded SmolLM2-135M-"
            "Instruct (setting: CHARTER_MODEL).",
        ),
        click.option(
            "--backend",
            default=None,
            help="Model backend by name: llamacpp (default), openai (an OpenAI-"
            'compatible upstream; set CHARTER_BACKEND_OPTIONS=\'{"base_url": '
            "...}'), fake (tests).",
        ),
        click.option(
            "--n-ctx",
            type=int,
            default=None,
            help="Context size in tokens (default 4096; CHARTER_N_CTX).",
        ),
        click.option(
            "--threads",
            "n_threads",
            type=int,
            default=None,
            help="CPU threads for llama.cpp (default: all cores; CHARTER_N_THREADS).",
        ),
        click.option(
            "--gpu-layers",
            "n_gpu_layers",
            type=int,
            default=None,
            help="Layers to offload to a GPU, -1 for all (needs a GPU build of "
            "llama-cpp-python; CHARTER_N_GPU_LAYERS).",
        ),
        click.option(
            "--constitution",
            default=None,
            help="The constitution that governs answers: 'default' (shipped), a TOML file, "
            "or 'off' to run ungoverned (CHARTER_CONSTITUTION; see `charter constitution`).",
        ),
        click.option(
            "--governance",
            type=click.Choice(["critique", "screen", "off"]),
            default=None,
            help="screen (default): refuse what fires; critique: critique and revise what "
            "fires, refuse if the revision still fires (for larger models); off: no checks, "
            "only with --constitution off (CHARTER_GOVERNANCE).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def sampling_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--max-tokens",
            type=int,
            default=None,
            help="Longest answer in tokens (default 512, bounded by the context).",
        ),
        click.option(
            "--temperature",
            type=float,
            default=None,
            help="Sampling temperature, 0 for greedy (default 0.7).",
        ),
        click.option("--seed", type=int, default=None, help="Random seed, for repeatable answers."),
        click.option("--system", default=None, help="A system message to start with."),
        click.option(
            "--show-confidence",
            is_flag=True,
            default=False,
            help="Mark uncertain words (colour on a terminal) and print how sure the model "
            "was: mean and lowest token probability, least certain spans.",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _params(
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    show_confidence: bool = False,
) -> Any:
    from pydantic import ValidationError

    from charter.types import Params

    given = {
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": seed,
        "logprobs": show_confidence or None,
        "top_logprobs": 3 if show_confidence else None,
    }
    try:
        return Params(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None


def _token_printer(show_confidence: bool) -> Callable[[Any], None]:
    """Write each token as it comes; with confidence on a terminal, colour the unsure ones."""
    colour = show_confidence and sys.stdout.isatty()

    def write(ev: Any) -> None:
        text = ev.text
        if ev.kind == "replace":
            # The constitution stopped the answer: say so, then print the governed text.
            sys.stdout.write("\n")
            sys.stdout.flush()
            click.echo(
                "[the constitution replaced the answer above; see `charter trace`]", err=True
            )
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        if colour and ev.logprobs is not None:
            p = math.exp(ev.logprobs["logprob"])
            if p < 0.3:
                text = f"\x1b[4;31m{text}\x1b[0m"
            elif p < 0.6:
                text = f"\x1b[33m{text}\x1b[0m"
        sys.stdout.write(text)
        sys.stdout.flush()

    return write


def _confidence_line(turn: Any) -> str | None:
    """One line on how sure the model was, from the trace; None when not measured."""
    conf = turn.charter().get("confidence")
    if not conf:
        return None
    spans = ", ".join(
        f"{s['text'].strip()!r} (p {s['min_prob']:.2f})" for s in conf["least_certain"]
    )
    return (
        f"confidence: mean p {conf['mean_prob']:.2f}, lowest p {conf['min_prob']:.2f} over "
        f"{conf['tokens']} tokens; least certain: {spans}"
    )


def _print_citations(turn: Any) -> None:
    """After an answer from documents: its sources on stdout, removed marks on stderr."""
    if turn.retrieval is None:
        return
    from charter.retrieval.citations import format_sources

    record = next((s for s in turn.stages if s.stage == "retrieval"), None)
    dropped = record.detail.get("marks", {}).get("dropped", []) if record else []
    if dropped:
        marks = ", ".join(f"[{d['n']}]" for d in dropped)
        click.echo(f"(removed {marks}: no such source; the stored answer omits it)", err=True)
    lines = format_sources(turn.citations)
    if lines:
        click.echo("Sources:\n" + "\n".join(lines))


def _runtime(settings: Settings) -> Any:
    from charter.runtime import Runtime

    rt = Runtime(settings)
    rt.load()
    return rt


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="charter")
def cli() -> None:
    """Charter: a self-hostable constitutional AI assistant.

    Data (conversations, keys) lives under CHARTER_HOME. Start with `charter serve` and open
    the printed address, or talk in the terminal with `charter chat`.
    """


@cli.command(context_settings=CONTEXT)
@click.option(
    "--host",
    default=None,
    help="Address to bind (default 127.0.0.1). Any other address needs API keys "
    "(charter keys create) unless --insecure.",
)
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@click.option(
    "--insecure", is_flag=True, default=None, help="Allow a non-loopback address without API keys."
)
@model_options
def serve(host: str | None, port: int | None, insecure: bool | None, **model: Any) -> None:
    """Serve the OpenAI-compatible API and the chat page."""
    import uvicorn

    from charter.server import create_app

    settings = load_settings(host=host, port=port, insecure=insecure, **model)
    rt = _runtime(settings)
    if settings.keys_required and not any(k["revoked_at"] is None for k in rt.store.list_keys()):
        raise ConfigError(
            f"serving on {settings.host} requires API keys and none exist: create one with "
            "`charter keys create NAME`, or pass --insecure to serve without keys"
        )
    if rt.constitution is not None:
        from charter.constitution.loader import advice

        for line in advice(rt.constitution):
            click.echo(f"warning: constitution: {line}", err=True)
    info = rt.info
    size = f" ({_count(info['parameter_count'])} parameters)" if info.get("parameter_count") else ""
    url = f"http://{settings.host}:{settings.port}"
    click.echo(f"Charter: serving {info['id']}{size} on {url}  (chat page: {url}/)", err=True)
    if not is_loopback(settings.host) and not settings.keys_required:
        click.echo(
            "warning: --insecure: anyone who can reach this address can use the "
            "model without a key",
            err=True,
        )
    uvicorn.run(
        create_app(rt),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=3,
    )


@cli.command(context_settings=CONTEXT)
@click.option(
    "--conversation",
    "conversation_id",
    default=None,
    help="Continue a stored conversation (its id, as listed by the API or page).",
)
@click.option(
    "--collection",
    default=None,
    help="Answer from this document collection, citing sources as [n] (see `charter docs`; "
    "default: CHARTER_RETRIEVAL_COLLECTION, none).",
)
@click.option(
    "--k",
    "k",
    type=click.IntRange(1, 20),
    default=None,
    help="Passages given to the model per answer with --collection (default 4).",
)
@model_options
@sampling_options
def chat(
    conversation_id: str | None,
    collection: str | None,
    k: int | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    system: str | None,
    show_confidence: bool,
    **model: Any,
) -> None:
    """Talk with the assistant in the terminal (streaming).

    /reset starts a new conversation, /exit (or Ctrl-D) quits, Ctrl-C stops an answer.
    Conversations are stored, and appear in the web page too.
    """
    with contextlib.suppress(ImportError):  # not on every platform
        import readline  # noqa: F401  (line editing and history for input())
    from charter.errors import RequestError
    from charter.types import Message

    settings = load_settings(**model)
    params = _params(max_tokens, temperature, seed, show_confidence)
    write = _token_printer(show_confidence)
    rt = _runtime(settings)
    if conversation_id:
        rt.store.get_conversation(conversation_id, with_messages=False)
    if k is not None and not (collection or settings.retrieval_collection):
        raise ConfigError("--k needs --collection (or CHARTER_RETRIEVAL_COLLECTION)")
    retrieval = rt.retrieval_request(collection, k)
    click.echo(
        f"Charter chat with {rt.info['id']}. /reset for a new conversation, /exit to quit.",
        err=True,
    )
    pending_system = system
    while True:
        try:
            line = input("you> ")
        except EOFError:
            click.echo("", err=True)
            break
        except KeyboardInterrupt:
            click.echo("", err=True)
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            conversation_id, pending_system = None, system
            click.echo("(new conversation)", err=True)
            continue
        if text.startswith("/"):
            click.echo("commands: /reset (new conversation), /exit", err=True)
            continue
        messages = [Message(role="user", content=line)]
        if pending_system and conversation_id is None:
            messages.insert(0, Message(role="system", content=pending_system))
        turn = rt.new_turn(
            messages, params, conversation_id=conversation_id, source="cli", retrieval=retrieval
        )
        events = rt.pipeline.stream(turn)
        try:
            for ev in events:
                if ev.kind in ("token", "replace"):
                    write(ev)
            sys.stdout.write("\n")
            _print_citations(turn)
            line = _confidence_line(turn) if show_confidence else None
            if line:
                click.echo(line, err=True)
        except KeyboardInterrupt:
            events.close()
            click.echo("\n(stopped)", err=True)
        except RequestError as exc:
            click.echo(f"error: {exc.message}", err=True)
            continue
        conversation_id = turn.conversation_id or conversation_id
    rt.close()


@cli.command(context_settings=CONTEXT)
@click.argument("question")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the full response object (OpenAI chat.completion with `charter`).",
)
@click.option(
    "--conversation",
    "conversation_id",
    default=None,
    help="Ask within a stored conversation (its history is sent to the model).",
)
@click.option(
    "--collection",
    default=None,
    help="Answer from this document collection, citing sources as [n] (see `charter docs`; "
    "default: CHARTER_RETRIEVAL_COLLECTION, none).",
)
@click.option(
    "--k",
    "k",
    type=click.IntRange(1, 20),
    default=None,
    help="Passages given to the model with --collection (default 4).",
)
@model_options
@sampling_options
def ask(
    question: str,
    as_json: bool,
    conversation_id: str | None,
    collection: str | None,
    k: int | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    system: str | None,
    show_confidence: bool,
    **model: Any,
) -> None:
    """Ask one question and print the answer. QUESTION '-' reads it from standard input."""
    from charter.server.protocol import completion_response
    from charter.types import Message

    if question == "-":
        question = sys.stdin.read()
    if not question.strip():
        raise ConfigError("the question is empty")
    settings = load_settings(**model)
    params = _params(max_tokens, temperature, seed, show_confidence)
    if k is not None and not (collection or settings.retrieval_collection):
        raise ConfigError("--k needs --collection (or CHARTER_RETRIEVAL_COLLECTION)")
    rt = _runtime(settings)
    retrieval = rt.retrieval_request(collection, k)
    messages = [Message(role="user", content=question)]
    if system:
        messages.insert(0, Message(role="system", content=system))
    turn = rt.new_turn(
        messages, params, conversation_id=conversation_id, source="cli", retrieval=retrieval
    )
    if as_json:
        rt.pipeline.run(turn)
        logprobs = [lp for _, _, lp in turn.token_logprobs] if show_confidence else None
        click.echo(json.dumps(completion_response(turn, logprobs), indent=2, ensure_ascii=False))
    else:
        rt.pipeline.run(turn, on_token=_token_printer(show_confidence))
        sys.stdout.write("\n")
        _print_citations(turn)
        line = _confidence_line(turn) if show_confidence else None
        if line:
            click.echo(line, err=True)
    rt.close()


@cli.command(context_settings=CONTEXT)
@click.option(
    "--model",
    "model",
    type=click.Path(path_type=Path),
    default=None,
    help="Also list this GGUF file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models(model: Path | None, as_json: bool) -> None:
    """List the models Charter can run: the embedded one and GGUF files in CHARTER_HOME/models.

    Sizes and parameter counts are read from each file's GGUF header.
    """
    from charter.models import format_count, format_size, list_models

    settings = load_settings(model=model)
    extra = [settings.model] if settings.model else []
    entries = list_models(extra_paths=extra, models_dir=settings.models_dir)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    rows = [("MODEL", "SIZE", "ARCH", "PARAMS", "CONTEXT", "FILE")]
    for e in entries:
        if e.info is None:
            rows.append(
                (e.path.name.removesuffix(".gguf"), "-", "-", "-", "-", f"(error: {e.error})")
            )
            continue
        i = e.info
        rows.append(
            (
                e.path.name.removesuffix(".gguf"),
                format_size(i.file_size),
                i.architecture or "?",
                format_count(i.parameter_count),
                str(i.context_length or "?"),
                str(i.path),
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1])


@cli.group(context_settings=CONTEXT)
def keys() -> None:
    """Manage API keys (needed when serving beyond 127.0.0.1)."""


def _store() -> Any:
    from charter.store import Store

    return Store(load_settings().db_path)


@keys.command("create", context_settings=CONTEXT)
@click.argument("name")
def keys_create(name: str) -> None:
    """Create a key called NAME and print it (shown only this once)."""
    rec, secret = _store().create_key(name)
    click.echo(secret)
    click.echo(
        f"created key {rec['id']} ({name}); it is stored hashed and will not be shown again",
        err=True,
    )


@keys.command("list", context_settings=CONTEXT)
def keys_list() -> None:
    """List keys (id, name, prefix, created, last used, revoked)."""
    import datetime as dt

    def when(t: float | None) -> str:
        return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "-"

    for k in _store().list_keys():
        state = f"revoked {when(k['revoked_at'])}" if k["revoked_at"] else "active"
        click.echo(
            f"{k['id']}  {k['name']:<20} {k['prefix']}…  created {when(k['created_at'])}"
            f"  last used {when(k['last_used_at'])}  {state}"
        )


@keys.command("revoke", context_settings=CONTEXT)
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke the key with id or name KEY."""
    rec = _store().revoke_key(key)
    click.echo(f"revoked {rec['id']} ({rec['name']})")


@cli.command(context_settings=CONTEXT)
@click.option(
    "--url", required=True, help="Root of an OpenAI-compatible server, e.g. http://127.0.0.1:8000"
)
@click.option("--model", default=None, help="Model id to request (default: the first listed).")
@click.option(
    "--concurrency",
    default="1,2,4,8",
    show_default=True,
    help="Comma-separated concurrency levels.",
)
@click.option(
    "--requests",
    "requests_per_level",
    type=int,
    default=8,
    show_default=True,
    help="Requests per concurrency level (at least the concurrency).",
)
@click.option(
    "--prompt-tokens",
    type=int,
    default=50,
    show_default=True,
    help="Approximate prompt length in tokens.",
)
@click.option(
    "--max-tokens",
    type=int,
    default=64,
    show_default=True,
    help="Output length requested per answer.",
)
@click.option("--api-key", default=None, help="Bearer key, if the server needs one.")
@click.option(
    "--same-prompt",
    is_flag=True,
    help="Send one prompt every time (measures KV-cache reuse, not prompt evaluation).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the full results as JSON here.",
)
def bench(
    url: str,
    model: str | None,
    concurrency: str,
    requests_per_level: int,
    prompt_tokens: int,
    max_tokens: int,
    api_key: str | None,
    output: Path | None,
    same_prompt: bool,
) -> None:
    """Benchmark any OpenAI-compatible endpoint: TTFT, TPOT, latency, throughput."""
    from charter.bench import format_table, run_bench

    try:
        levels = [int(c) for c in concurrency.split(",") if c.strip()]
    except ValueError:
        raise ConfigError(
            f"--concurrency must be numbers like 1,2,4,8, not {concurrency!r}"
        ) from None
    if not levels or min(levels) < 1:
        raise ConfigError("--concurrency needs at least one level of 1 or more")
    result = run_bench(
        url,
        model=model,
        concurrencies=levels,
        requests_per_level=requests_per_level,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        api_key=api_key,
        distinct_prompts=not same_prompt,
        progress=lambda s: click.echo(s, err=True),
    )
    click.echo(format_table(result))
    if output:
        output.write_text(json.dumps(result, indent=2))
        click.echo(f"wrote {output}", err=True)


@cli.command("inspect", context_settings=CONTEXT)
@click.argument("model_path", metavar="[MODEL]", required=False, type=click.Path(path_type=Path))
@click.option("--compare", is_flag=True, help="Place the model among well-known models.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--context",
    metavar="LIST",
    default=None,
    help="Context lengths for the KV-cache table, e.g. 4096,32k (default: 4096 and the "
    "model's own). The first one is used for the decode-speed bound.",
)
@click.option(
    "--batch", metavar="LIST", default="1", show_default=True, help="Batch sizes, e.g. 1,8."
)
@click.option(
    "--kv-type",
    type=click.Choice(["f16", "q8_0", "q4_0", "bf16", "f32"]),
    default="f16",
    show_default=True,
    help="KV-cache element type.",
)
@click.option(
    "--bandwidth",
    metavar="GBPS",
    type=float,
    default=None,
    help="This machine's memory bandwidth in GB/s (default: measured, ~0.2 s).",
)
def inspect_cmd(
    model_path: Path | None,
    compare: bool,
    as_json: bool,
    context: str | None,
    batch: str,
    kv_type: str,
    bandwidth: float | None,
) -> None:
    """Parameters, architecture, memory, GPU fit and speed bound of MODEL, from its headers.

    MODEL is a .gguf file, a .safetensors file or folder (with its config.json), or a bare
    config.json; default: the embedded SmolLM2-135M. Weights are never loaded.
    """
    from charter.models import embedded_model_path
    from charter.models.view import build_inspection, format_inspection, parse_sizes

    data = build_inspection(
        model_path or embedded_model_path(),
        contexts=parse_sizes(context, "--context") if context else None,
        batches=parse_sizes(batch, "--batch"),
        kv_type=kv_type,
        bandwidth_gbps=bandwidth,
        compare=compare,
    )
    click.echo(json.dumps(data, indent=2) if as_json else format_inspection(data))


@cli.command(context_settings=CONTEXT)
@click.argument("prompt")
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    default=None,
    help="A llama-architecture GGUF file (dequantised) or a Hugging Face model folder "
    "(default: the embedded SmolLM2-135M-Instruct; CHARTER_MODEL).",
)
@click.option("--answer", default=None, help="Score this answer instead of generating one.")
@click.option(
    "--max-tokens", type=int, default=8, show_default=True, help="Longest generated answer."
)
@click.option("--top-k", type=int, default=5, show_default=True, help="Top tokens per layer.")
@click.option("--layers", default="all", show_default=True, help="Layers to show: all, or every:N.")
@click.option("--source", "sources", multiple=True, help="A source text put in the prompt.")
@click.option(
    "--source-file",
    "source_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A UTF-8 text file used as a source.",
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write a self-contained HTML heat map here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the table.")
def lens(
    prompt: str,
    model: Path | None,
    answer: str | None,
    max_tokens: int,
    top_k: int,
    layers: str,
    sources: tuple[str, ...],
    source_files: tuple[Path, ...],
    html_out: Path | None,
    as_json: bool,
) -> None:
    """Logit lens: what each layer predicts at each answer position, and how much attention
    the answer pays to each --source. Needs: pip install 'charter[interp]'."""
    from charter.interp.lens import read_sources, run_lens
    from charter.interp.render import format_table, render_html

    settings = load_settings(model=model)
    result = run_lens(
        prompt,
        model_path=settings.model,
        answer=answer,
        max_tokens=max_tokens,
        top_k=top_k,
        layers=layers,
        sources=read_sources(sources, source_files),
        n_threads=settings.n_threads,
    )
    if html_out:
        html_out.write_text(render_html(result), encoding="utf-8")
        click.echo(f"wrote {html_out}", err=True)
    click.echo(
        json.dumps(result.to_dict(), ensure_ascii=False) if as_json else format_table(result)
    )


def _register_subsystems() -> None:
    """Command groups that live beside their subsystems (evaluation, retrieval)."""
    from charter.constitution.cli import constitution_group
    from charter.constitution.trace import trace_cmd
    from charter.eval.cli import eval_group
    from charter.retrieval.cli import docs_group, ingest_cmd, search_cmd
    from charter.store.feedback_cli import feedback_group
    from charter.train.cli import train_group

    for command in (
        eval_group,
        ingest_cmd,
        docs_group,
        search_cmd,
        trace_cmd,
        constitution_group,
        feedback_group,
        train_group,
    ):
        cli.add_command(command)


_register_subsystems()


def _count(n: int | None) -> str:
    from charter.models import format_count

    return format_count(n) if n else "?"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; CharterErrors become `charter: error: ...` and an exit code."""
    try:
        rv = cli.main(args=argv, prog_name="charter", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except CharterError as exc:
        click.echo(f"charter: error: {exc.message}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    sys.exit(main())
