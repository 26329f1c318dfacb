"""`charter inspect` end to end: one JSON-ready inspection (report, memory, fit, speed bound,
comparison) and its readable table. The CLI only parses flags and prints what this returns.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from charter.errors import ConfigError
from charter.models import memory
from charter.models.inspect import ModelReport, inspect_model
from charter.models.locate import format_count, format_size

DEFAULT_CONTEXT = 4096


def parse_sizes(text: str, flag: str) -> list[int]:
    """Comma-separated positive integers, each optionally with a `k` (×1024) suffix:
    "4096,32k" -> [4096, 32768]. Raises `ConfigError` naming `flag` for anything else."""
    values = []
    for part in text.split(","):
        item = part.strip().lower()
        m = re.fullmatch(r"(\d{1,9})(k?)", item)
        if not m or int(m.group(1)) == 0:
            raise ConfigError(f"{flag} takes positive whole numbers like 4096,32k, not {part!r}")
        values.append(int(m.group(1)) * (1024 if m.group(2) else 1))
    return values


def build_inspection(
    path: str | os.PathLike[str],
    *,
    contexts: list[int] | None = None,
    batches: list[int] | None = None,
    kv_type: str = memory.DEFAULT_KV_TYPE,
    bandwidth_gbps: float | None = None,
    measure: bool = True,
    compare: bool = False,
) -> dict[str, Any]:
    """Inspect the model at `path` and estimate what running it takes.

    `contexts` default to 4096 and the model's own context length; `batches` to [1]. The
    local-machine speed bound uses `bandwidth_gbps` when given, else a measurement (skipped
    when `measure` is False). `compare` adds the registry comparison.

    Returns a JSON-ready dict. Raises `ModelFileError` for a bad model file and
    `ConfigError` for a bad option.
    """
    if kv_type not in memory.KV_TYPE_BYTES:
        raise ConfigError(
            f"--kv-type must be one of {', '.join(memory.KV_TYPE_BYTES)}, not {kv_type!r}"
        )
    if bandwidth_gbps is not None and not (0 < bandwidth_gbps < math.inf):
        raise ConfigError(f"--bandwidth must be a positive number of GB/s, not {bandwidth_gbps}")
    report = inspect_model(path)
    arch = report.arch
    if not contexts:
        contexts = sorted({DEFAULT_CONTEXT, arch.context_length or DEFAULT_CONTEXT})
    batches = batches or [1]
    out: dict[str, Any] = {"model": report.to_dict()}
    out["weights"] = [
        {
            "precision": p,
            "bits_per_weight": (
                report.bits_per_weight if p == "stored" else memory.PRECISION_BITS[p]
            ),
            "bytes": memory.weight_bytes(report, p),
            "read_per_token_bytes": memory.read_bytes_per_token(report, p),
        }
        for p in memory.PRECISIONS
    ]
    out["kv_cache"] = {
        "type": kv_type,
        "bytes_per_token": memory.kv_bytes_per_token(arch, kv_type),
        "formula": _kv_formula(report, kv_type),
        "sliding_window": arch.sliding_window,
        "sliding_layers": len(arch.sliding_layers),
        "table": [
            {"context": c, "batch": b, "bytes": memory.kv_cache_bytes(arch, c, b, kv_type)}
            for c in contexts
            for b in batches
        ],
    }
    out["fit"] = {
        "batch": 1,
        "kv_type": kv_type,
        "context_limit": arch.context_length,
        "rows": [
            {
                "memory_gb": gb,
                "largest_context": {
                    p: memory.largest_context(report, p, gb, kv_type=kv_type)
                    for p in memory.PRECISIONS
                },
            }
            for gb in memory.fit_sizes_gb()
        ],
    }
    out["decode"] = _decode(report, contexts[0], kv_type, bandwidth_gbps, measure)
    out["assumptions"] = memory.assumptions()
    if compare:
        from charter.models.registry import compare as place

        out["compare"] = place(report.name, report.parameters, report.active_parameters)
    return out


def _decode(
    report: ModelReport,
    context: int,
    kv_type: str,
    bandwidth_gbps: float | None,
    measure: bool,
) -> dict[str, Any]:
    def row(name: str, gbps: float, memory_gb: float | None, source: str) -> dict[str, Any]:
        speeds, fits = {}, {}
        for p in memory.PRECISIONS:
            speeds[p] = memory.decode_tokens_per_second(
                report, p, context, gbps * 1e9, kv_type=kv_type
            )
            need = memory.runtime_bytes(report, p, context, kv_type=kv_type)
            fits[p] = None if memory_gb is None or need is None else need <= memory_gb * 1e9
        return {
            "name": name,
            "bandwidth_gbps": gbps,
            "memory_gb": memory_gb,
            "source": source,
            "tokens_per_second": speeds,
            "fits": fits,
        }

    rows = [row(g.name, g.bandwidth_gbps, g.memory_gb, g.source) for g in memory.known_gpus()]
    if bandwidth_gbps is not None:
        rows.append(row("this machine", bandwidth_gbps, None, "given with --bandwidth"))
    elif measure:
        measured = memory.measure_bandwidth() / 1e9
        rows.append(
            row("this machine", round(measured, 1), None, "measured: numpy copy, one thread")
        )
    return {"context": context, "batch": 1, "kv_type": kv_type, "rows": rows}


def _kv_formula(report: ModelReport, kv_type: str) -> str:
    a = report.arch
    per = memory.KV_TYPE_BYTES[kv_type]
    widths = set(a.kv_widths)
    if len(widths) == 1 and a.kv_heads and a.head_dim and widths == {2 * a.kv_heads * a.head_dim}:
        return (
            f"2 × {_n(a.layers)} layers × {a.kv_heads:,} KV heads × {a.head_dim:,} head dim"
            f" × {per:g} bytes"
        )
    return f"sum over layers of (K + V width) × {per:g} bytes"


# --- text ------------------------------------------------------------------------------


def format_inspection(data: dict[str, Any]) -> str:
    """The readable table for a `build_inspection` result."""
    m = data["model"]
    a = m["architecture"]
    lines: list[str] = []
    kind = {"gguf": "GGUF", "safetensors": "safetensors", "config": "config.json"}[m["format"]]
    detail = ", ".join(x for x in (kind, a["family"], m["file_type"]) if x)
    lines += [f"{m['name']}  ({detail})", f"  {m['path']}", ""]

    total = m["parameters"]
    how = (
        f"summed over {m['tensor_count']} tensors"
        if m["counted_from"] == "tensors"
        else "COMPUTED FROM config.json (architecture formula, not summed from tensors)"
    )
    lines.append(f"Parameters  {total:,} ({format_count(total)}), {how}")
    rows = []
    for comp, n in m["components"].items():
        if not n:
            continue
        note = ""
        if comp == "embeddings" and a["tied_embeddings"]:
            note = "tied: also the output head (counted once)"
        rows.append([comp, f"{n:,}", f"{100 * n / total:.1f}%" if total else "-", note])
    if a["tied_embeddings"] and not m["components"]["output"]:
        rows.append(["output", "0", "", "tied to the embeddings"])
    lines += _table(rows, indent=4, right=(1, 2))
    if m["components"]["experts"]:
        active = m["active_parameters"]
        used = f"{a['experts_used']} of {a['experts']} experts" if a["experts_used"] else "?"
        shown = f"{active:,} ({format_count(active)})" if active is not None else "unknown"
        lines.append(f"  Mixture of experts: {total:,} total, {shown} active per token ({used})")
    lines.append("")

    lines.append("Architecture")
    gqa = ""
    if a["heads"] and a["kv_heads"] and a["kv_heads"] < a["heads"]:
        gqa = f" (GQA: {a['heads'] / a['kv_heads']:g} query heads per KV head)"
    facts = [
        f"layers {_n(a['layers'])}",
        f"hidden {_n(a['hidden_size'])}",
        f"heads {_n(a['heads'])}",
        f"KV heads {_n(a['kv_heads'])}{gqa}",
        f"head dim {_n(a['head_dim'])}",
    ]
    lines.append("  " + " · ".join(facts))
    facts = [
        f"vocab {_n(a['vocab_size'])}",
        f"context {_n(a['context_length'])}",
        f"FFN {_n(a['ffn_size'])}",
    ]
    lines.append("  " + " · ".join(facts))
    n_sliding = len(a["sliding_layers"])
    if n_sliding:
        lines.append(
            f"  attention: sliding window of {a['sliding_window']:,} tokens on {n_sliding:,} of "
            f"{_n(a['layers'])} layers, full on the rest"
        )
    else:
        lines.append(f"  attention: full (global) on all {_n(a['layers'])} layers")
    lines.append("")

    lines.append("Weights")
    rows = [["precision", "bits/weight", "size", "read per token"]]
    for w in data["weights"]:
        label = w["precision"]
        if label == "stored" and m["stored_types"]:
            label = "stored (" + ", ".join(list(m["stored_types"])[:3]) + ")"
        bpw = w["bits_per_weight"]
        rows.append(
            [
                label,
                f"{bpw:.2f}" if bpw is not None else "-",
                _size(w["bytes"]),
                _size(w["read_per_token_bytes"]),
            ]
        )
    lines += _table(rows, indent=2, right=(1, 2, 3))
    lines.append("  int8 and int4 include one fp16 scale per 32 weights (8.5 and 4.5 bits/weight)")
    lines.append("")

    kv = data["kv_cache"]
    lines.append(
        f"KV cache ({kv['type']}): {kv['bytes_per_token']:,.0f} bytes per token = {kv['formula']}"
    )
    if kv["sliding_layers"]:
        lines.append(f"  sliding-window layers hold at most {kv['sliding_window']:,} tokens each")
    contexts = sorted({r["context"] for r in kv["table"]})
    batches = sorted({r["batch"] for r in kv["table"]})
    by = {(r["context"], r["batch"]): r["bytes"] for r in kv["table"]}
    rows = [["context", *[f"batch {b}" for b in batches]]]
    rows += [[f"{c:,}", *[_size(by[c, b]) for b in batches]] for c in contexts]
    lines += _table(rows, indent=2, right=tuple(range(len(batches) + 1)))
    lines.append("")

    fit = data["fit"]
    asm = data["assumptions"]
    lines.append(
        "Largest context that fits on one GPU (batch 1; weights + KV cache + compute buffer + "
        f"{asm['runtime_overhead_gb']} GB runtime, {asm['headroom_fraction']:.0%} kept free, "
        "flash attention)"
    )
    rows = [["GPU memory", *memory.PRECISIONS]]
    limit = fit["context_limit"]
    for r in fit["rows"]:
        cells = []
        for p in memory.PRECISIONS:
            ctx = r["largest_context"][p]
            if ctx is None:
                cells.append("-" if p == "stored" and m["stored_bytes"] is None else "no")
            else:
                cells.append(f"{ctx:,}" + ("*" if limit and ctx >= limit else ""))
        rows.append([f"{r['memory_gb']:g} GB", *cells])
    lines += _table(rows, indent=2, right=tuple(range(1, len(memory.PRECISIONS) + 1)))
    lines.append(
        f"  *: the model's full context; no: does not fit even at {memory.CONTEXT_STEP} tokens;"
        " GB = 10^9 bytes"
    )
    lines.append("")

    dec = data["decode"]
    lines.append(
        f"Decode speed upper bound, tokens/s (one stream at context {dec['context']:,}: "
        "bandwidth ÷ bytes read per token)"
    )
    rows = [["device", "bandwidth", *memory.PRECISIONS]]
    for r in dec["rows"]:
        cells = []
        for p in memory.PRECISIONS:
            tps = r["tokens_per_second"][p]
            fits = r["fits"][p]
            cells.append("-" if tps is None or fits is False else f"{tps:,.0f}")
        name = r["name"] + (" (measured)" if r["source"].startswith("measured") else "")
        rows.append([name, f"{r['bandwidth_gbps']:g} GB/s", *cells])
    lines += _table(rows, indent=2, right=tuple(range(1, len(memory.PRECISIONS) + 2)))
    lines.append(
        "  -: does not fit in that device's memory. Bandwidths are published peaks "
        "(sources: --json); real decoding is slower."
    )

    if "compare" in data:
        lines.append("")
        lines += _format_compare(data["compare"])
    if m["notes"]:
        lines.append("")
        lines.append("Notes")
        lines += [f"  - {n}" for n in m["notes"]]
    return "\n".join(lines)


def _format_compare(cmp: dict[str, Any]) -> list[str]:
    lines = ["Among well-known models (smallest first; ratios computed from the figures shown)"]
    rows = [["", "model", "parameters", "active", "year", "this model is", "source"]]
    for r in cmp["ranked"]:
        active = r["active_parameters"]
        rows.append(
            [
                "▶" if r["this"] else "",
                r["name"],
                format_count(r["parameters"]),
                format_count(active) if active and active != r["parameters"] else "",
                str(r.get("year") or ""),
                r["ratio"] or "(this model)",
                r.get("source", ""),
            ]
        )
    lines += _table(rows, indent=2, right=(2, 3))
    lines.append("  Size never published (no figure exists, so none is shown):")
    for r in cmp["undisclosed"]:
        lines.append(f"    {r['name']} ({r['developer']}): {r['notes']} {r['source']}")
    return lines


def _table(rows: list[list[str]], *, indent: int, right: tuple[int, ...] = ()) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append(" " * indent + "  ".join(cells).rstrip())
    return out


def _n(value: int | None) -> str:
    return f"{value:,}" if value is not None else "?"


def _size(n: int | None) -> str:
    return format_size(n) if n is not None else "-"
