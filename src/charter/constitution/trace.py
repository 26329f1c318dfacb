"""`charter trace MESSAGE_ID`: what the constitution saw and decided for one answer, in plain
words, for operators (it includes the original draft of a replaced answer)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

DECISIONS = {
    "pass": "passed: the answer was sent as the model wrote it",
    "refused": "refused: the answer was replaced by the constitution's refusal",
    "revised": "revised: the answer was replaced by the model's revision, which passed",
    "ungoverned": "ungoverned: governance was off for this answer",
}


def _top(scores: dict[str, float], thresholds: dict[str, float], n: int = 3) -> str:
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(
        f"{pid} {s:.2f} (threshold {thresholds.get(pid, 0.5):.2f})" for pid, s in ranked
    )


def describe(trace: dict[str, Any]) -> list[str]:
    """The trace as lines of plain words."""
    lines: list[str] = []
    c = trace.get("constitution") or {}
    lines.append(
        f"Constitution: {c.get('name')} {c.get('version')} (hash {str(c.get('hash'))[:12]}), "
        f"mode {trace.get('mode')}"
    )
    th = trace.get("thresholds") or {}
    ms = trace.get("ms") or {}
    inp = trace.get("input")
    if inp is not None:
        fired = inp.get("fired") or []
        what = ("fired " + ", ".join(fired)) if fired else "nothing fired"
        lines.append(
            f"Input screen ({ms.get('input_screen', inp.get('ms'))} ms): {what}. Highest: "
            f"{_top(inp.get('scores') or {}, th)}"
        )
        if inp.get("views"):
            seen = ", ".join(f"{pid} via {v}" for pid, v in inp["views"].items())
            lines.append(f"  seen through: {seen}")
        if inp.get("judged"):
            lines.append(f"  escalated to the judge: {inp['judged']}")
    out = trace.get("output")
    if out is not None:
        at = out.get("fired_at_tokens")
        what = f"fired after {at} tokens" if at else "nothing fired"
        lines.append(
            f"Output screen ({out.get('checks', 0)} checks, {round(out.get('ms', 0.0), 1)} ms, "
            f"{out.get('waited_ms', 0.0)} ms of it waited for): "
            f"{what}. Highest: {_top(out.get('scores') or {}, th)}"
        )
    for f in trace.get("fired") or []:
        lines.append(f"Fired: {f['principle']} on the {f['stage']}")
    crit = trace.get("critique")
    if crit:
        lines.append(
            f"Critique under {crit['principle']} ({ms.get('critique')} ms): {crit['text']!r}"
        )
    rev = trace.get("revision")
    if rev:
        verdict = "accepted" if rev.get("accepted") else "rejected"
        why = ""
        if rev.get("fired"):
            why = f" (still fired: {', '.join(rev['fired'])})"
        elif rev.get("why"):
            why = f" ({rev['why']})"
        lines.append(f"Revision ({ms.get('revision')} ms), {verdict}{why}: {rev['text']!r}")
    if trace.get("not_screened"):
        lines.append(
            "Not screened by a classifier (upheld by critique and training): "
            + ", ".join(trace["not_screened"])
        )
    decision = trace.get("decision", "?")
    lines.append(f"Decision: {DECISIONS.get(decision, decision)}")
    return lines


def describe_message(row: dict[str, Any]) -> str:
    charter = json.loads(row["charter"]) if row.get("charter") else {}
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"]))
    lines = [
        f"Message {row['id']} in conversation {row['conversation_id']} ({row['role']}, "
        f"{row['status']}, {when})"
    ]
    trace = charter.get("trace")
    if trace is None:
        lines.append("No constitution trace: the answer was made without a constitution.")
    else:
        lines += describe(trace)
    stages = charter.get("stages") or []
    if stages:
        lines.append("Stages: " + ", ".join(f"{s['stage']} {s['ms']} ms" for s in stages))
    lines.append("")
    lines.append("Answer as sent:")
    lines.append(row["content"])
    if row.get("draft") is not None:
        lines.append("")
        lines.append("Original draft (operators only; the user was not shown it):")
        lines.append(row["draft"])
    return "\n".join(lines)


@click.command("trace")
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help="Print the stored message as JSON.")
def trace_cmd(message_id: str, as_json: bool) -> None:
    """Show what the constitution saw and decided for one stored answer (with its draft).

    MESSAGE_ID is in every response's `charter.message_id` and the X-Charter-Message-Id
    header. This reads the local database directly: it is the operator's view.
    """
    from charter.config import load_settings
    from charter.server.admin import message_detail
    from charter.store import Store

    settings = load_settings()
    if not settings.db_path.exists():
        from charter.errors import NotFoundError

        raise NotFoundError(
            f"no message with id {message_id!r} (no database at {settings.db_path})"
        )
    store = Store(settings.db_path)
    try:
        row = store.get_message(message_id)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(message_detail(row), indent=2, ensure_ascii=False))
    else:
        click.echo(describe_message(row))
