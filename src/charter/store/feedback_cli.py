"""`charter feedback list | export`: read reviewers' labels and turn them into training pairs.

The labels come from the web page's thumbs and the feedback API; `export` writes the
preference pairs of `export_pairs` as JSONL for TRL's DPO trainer and says what it held back.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import click

from charter.config import load_settings
from charter.errors import ConfigError
from charter.store.db import Store
from charter.store.feedback import ExportSummary, export_pairs, summarize

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The Charter database to read (default: CHARTER_HOME/charter.db).",
)


@contextlib.contextmanager
def opened_store(db_path: Path | None) -> Iterator[Store]:
    """The store at --db, else the configured one; it must exist. Closed on leaving."""
    path = db_path if db_path is not None else load_settings().db_path
    if not path.is_file():
        raise ConfigError(f"no Charter database at {path} (nothing has been stored there yet)")
    store = Store(path)
    try:
        yield store
    finally:
        store.close()


@click.group("feedback", context_settings=CONTEXT)
def feedback_group() -> None:
    """Reviewers' labels on answers (thumbs up/down, better answers) and the preference
    pairs they make. See docs/feedback.md."""


@feedback_group.command("list", context_settings=CONTEXT)
@click.option("--message", "message_id", default=None, help="Only the labels on this answer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, one labelled answer a line.")
@db_option
def list_cmd(message_id: str | None, as_json: bool, db_path: Path | None) -> None:
    """Show labelled answers with every reviewer's label.

    Each answer is shown with each reviewer's rating, better answer and note, and whether
    the reviewers disagree."""
    with opened_store(db_path) as store:
        if message_id is not None:
            message = store.get_message(message_id)
            items = [{"message": message, "labels": store.list_feedback(message_id)}]
        else:
            items = list(store.iter_feedback())
    if not any(it["labels"] for it in items):
        click.echo(
            "no feedback yet" if message_id is None else f"no feedback on {message_id}", err=True
        )
        return
    for it in items:
        message, labels = it["message"], it["labels"]
        summary = summarize(labels)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "message_id": message["id"],
                        "conversation_id": message["conversation_id"],
                        "content": message["content"],
                        "summary": summary,
                        "labels": labels,
                    },
                    ensure_ascii=False,
                )
            )
            continue
        flag = "  reviewers disagree" if summary["disagreement"] else ""
        click.echo(
            f"{message['id']}  ({message['conversation_id']})  "
            f"up {summary['up']}  down {summary['down']}{flag}"
        )
        click.echo(f"  answer: {_gist(message['content'])}")
        for lb in labels:
            line = f"  {lb['reviewer']:<20} {lb['rating']:<4}"
            if lb["better"]:
                line += f"  better: {_gist(lb['better'])}"
            if lb["note"]:
                line += f"  note: {_gist(lb['note'])}"
            click.echo(line)


@feedback_group.command("export", context_settings=CONTEXT)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The JSONL file to write (refused if it exists, unless --force).",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Export pairs at least this share of their reviewers agree with (default 1.0: "
    "all of them; 0 with --include-disagreements).",
)
@click.option(
    "--include-disagreements",
    is_flag=True,
    help="Also export pairs the reviewers disagree on, each with its agreement figure.",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@db_option
def export_cmd(
    out: Path,
    min_agreement: float | None,
    include_disagreements: bool,
    force: bool,
    db_path: Path | None,
) -> None:
    """Write preference pairs (TRL's DPO format) as JSONL.

    A better answer is chosen over the answer it improves; an up-rated answer over a
    down-rated one to the same prompt. A down-rated answer with neither gives no pair.
    By default only pairs every reviewer agrees with are written; the summary on stderr
    says how many were held back and which answers the reviewers disagree on.
    """
    if min_agreement is None:
        min_agreement = 0.0 if include_disagreements else 1.0
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; name a file")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the directory {out.parent} does not exist")
    if out.exists() and not force:
        raise ConfigError(f"--out {out} exists; pass --force to replace it")
    summary = ExportSummary()
    partial = out.with_name(f".{out.name}.partial")
    with opened_store(db_path) as store:
        try:
            with partial.open("w", encoding="utf-8") as f:
                for pair in export_pairs(store, min_agreement=min_agreement, summary=summary):
                    f.write(json.dumps(pair, ensure_ascii=False) + "\n")
            # Written whole or not at all: a failed export never leaves half a file at --out.
            os.replace(partial, out)
        except OSError as exc:
            raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)
    for line in summary.lines():
        click.echo(line, err=True)
    click.echo(f"wrote {summary.pairs} pair(s) to {out}", err=True)


def _gist(text: str, width: int = 70) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
