"""Show a `LensResult`: a compact terminal table, or one self-contained HTML page.

Token texts are model output: the page escapes every one of them (and the prompt's sources),
so nothing a model writes can become markup or script.
"""

from __future__ import annotations

from html import escape

from charter.interp.lens import LensResult, SourceAttention

_CELL = 12


def show_token(text: str) -> str:
    """A token made visible: spaces as '·', newlines and tabs as escapes."""
    return text.replace(" ", "·").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(result: LensResult) -> str:
    """Rows are layers, columns answer positions; each cell is that layer's top token and its
    probability, with '*' where it is already the answer's token."""
    lines = [
        f"logit lens: {result.model}, {result.prompt_tokens} prompt tokens, "
        f"{len(result.positions)} answer tokens "
        f"({'generated greedily' if result.generated else 'given'}), {result.seconds:.1f} s",
        f"answer: {result.answer!r}",
        "",
    ]
    header = "layer".ljust(6) + "".join(
        _fit(show_token(p.token), _CELL).ljust(_CELL + 1) for p in result.positions
    )
    lines += [header, "-" * len(header)]
    for row, name in enumerate(result.layer_names):
        cells = []
        for p in result.positions:
            reading = p.layers[row]
            best = reading.top[0]
            mark = "*" if best.id == p.token_id else " "
            prob = f"{best.prob:.2f}".removeprefix("0")
            tok = _fit(show_token(best.token), _CELL - len(prob) - 2)
            cells.append(f"{tok} {prob}{mark}".ljust(_CELL + 1))
        lines.append(name.ljust(6) + "".join(cells))
    lines += ["", "* the layer's top token is already the answer's token at that position"]
    if result.sources and result.other is not None:
        lines += [
            "",
            "attention from the answer positions (mean over heads, positions and blocks):",
        ]
        for s in [*result.sources, result.other]:
            label = f"[{s.index}]" if s.index else "rest"
            lines.append(
                f"  {label:<5} {s.mean:6.3f}  {s.tokens:4d} tokens  "
                f"{_fit(s.text.replace(chr(10), ' '), 60)}"
            )
    return "\n".join(lines)


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1f2328}
h1{font-size:1.3em}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #d0d7de;padding:2px 5px;text-align:left;white-space:pre;font-size:12px}
td{font-family:ui-monospace,monospace;min-width:5.5em}
td small{color:#57606a}td.hit{outline:2px solid #1a7f37;outline-offset:-2px;font-weight:600}
th.pos code{font-weight:600}.bar{display:inline-block;height:10px;background:#8250df}
.note{color:#57606a;max-width:60em}code{background:#f6f8fa;padding:0 2px}
"""


def _heat(p: float) -> str:
    return f"background:rgba(9,105,218,{min(max(p, 0.0), 1.0) * 0.55:.3f})"


def render_html(result: LensResult) -> str:
    """The lens as one HTML page with no external assets: a heat map of each layer's top-token
    probability, details (top-k, the answer token's rank) on hover, and the per-source
    attention when sources were given. Every text from the model or the user is escaped."""
    e = escape
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>charter lens: {e(result.model)}</title><style>{_STYLE}</style></head><body>",
        "<h1>Logit lens</h1>",
        f"<p>Model <code>{e(result.model)}</code>, {result.prompt_tokens} prompt tokens, "
        f"{len(result.positions)} answer tokens "
        f"({'generated greedily' if result.generated else 'given'}), {result.seconds:.1f} s.</p>",
        f"<p>Answer: <code>{e(result.answer)}</code></p>",
        '<p class="note">Each cell is what that layer would predict for the answer token '
        "above it, reading the residual stream through the final norm and output head. "
        "Shade: the top token's probability. Outlined: the top token already is the "
        "answer's token. Hover for the top tokens and the answer token's rank.</p>",
        "<table><thead><tr><th>layer</th>",
    ]
    for p in result.positions:
        out.append(f'<th class="pos">{p.index + 1}<br><code>{e(show_token(p.token))}</code></th>')
    out.append("</tr></thead><tbody>")
    for row, name in enumerate(result.layer_names):
        out.append(f"<tr><th>{e(name)}</th>")
        for p in result.positions:
            r = p.layers[row]
            best = r.top[0]
            tops = "\n".join(f"{t.prob:.3f}  {show_token(t.token)}" for t in r.top)
            title = (
                f"layer {name}, position {p.index + 1}\n{tops}\n"
                f"answer token {show_token(p.token)}: rank {r.rank}, p {r.prob:.3f}\n"
                f"entropy {r.entropy:.2f} nats"
            )
            cls = ' class="hit"' if best.id == p.token_id else ""
            out.append(
                f'<td{cls} style="{_heat(best.prob)}" title="{e(title)}">'
                f"{e(show_token(best.token))} <small>{best.prob:.2f}</small></td>"
            )
        out.append("</tr>")
    out.append("</tbody></table>")
    if result.sources and result.other is not None:
        out += _sources_html(result)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _sources_html(result: LensResult) -> list[str]:
    e = escape
    out = [
        "<h2>Attention to sources</h2>",
        '<p class="note">Share of the answer positions\' attention (mean over heads) that '
        "lands on each source's tokens, per block (hover a cell) and on average. The rest "
        "goes to everything else in the context, often mostly to the first token.</p>",
        "<table><thead><tr><th>source</th><th>mean</th><th>tokens</th>",
    ]
    out += [f"<th>{n}</th>" for n in range(1, result.n_blocks + 1)]
    out.append("</tr></thead><tbody>")
    rows: list[SourceAttention] = [*result.sources, result.other]  # type: ignore[list-item]
    # Shade relative to the largest share shown, so small shares stay visible.
    top = max((v for s in rows for v in s.per_layer), default=0.0) or 1.0
    for s in rows:
        label = f"[{s.index}]" if s.index else "rest"
        out.append(
            f'<tr><th title="{e(s.text)}">{e(label)}</th>'
            f'<td><span class="bar" style="width:{s.mean * 80:.1f}px"></span> {s.mean:.3f}</td>'
            f"<td>{s.tokens}</td>"
        )
        out += [
            f'<td style="{_heat(v / top)}" title="{e(f"{label}, block {n}: {v:.3f}")}"></td>'
            for n, v in enumerate(s.per_layer, 1)
        ]
        out.append("</tr>")
    out.append("</tbody></table><ol>")
    out += [f"<li>{e(s.text)}</li>" for s in result.sources]
    out.append("</ol>")
    return out
