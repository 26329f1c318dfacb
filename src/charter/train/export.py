"""`charter train export`: a tuned model (full folder or LoRA adapter) back into a GGUF file
that `charter serve` runs, with a model card beside it.

Everything but the weights comes from the base GGUF (hyperparameters, the whole tokenizer,
the chat template), so the tuned file tokenizes and chats exactly as the base does. Q and K
are permuted back to llama.cpp's rotary layout, an F32 file is written with the `gguf`
package and llama.cpp's own quantiser makes the requested type. See docs/training.md.
"""

from __future__ import annotations

import ctypes
import datetime
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from charter.errors import CharterError, ExportError, ModelFileError

#: Quantisation types `export_gguf` writes, by name, as llama.cpp's `llama_ftype` constants.
QUANT_TYPES: dict[str, str] = {
    "F32": "LLAMA_FTYPE_ALL_F32",
    "F16": "LLAMA_FTYPE_MOSTLY_F16",
    "BF16": "LLAMA_FTYPE_MOSTLY_BF16",
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "Q6_K": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "Q5_K_S": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "Q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "Q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "Q4_K_S": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "Q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "Q3_K_M": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "Q2_K": "LLAMA_FTYPE_MOSTLY_Q2_K",
}

# Base metadata the export writes itself instead of copying: the name and lineage of the new
# model, what its tensors are stored as, and the base's own fine-tune label.
_REPLACED = (
    "general.architecture",
    "general.name",
    "general.finetune",
    "general.file_type",
    "general.quantization_version",
)
_REPLACED_PREFIXES = ("GGUF.", "general.base_model.")


@dataclass
class ExportResult:
    """What `export_gguf` wrote."""

    path: Path
    card_path: Path
    quant: str
    size_bytes: int
    n_params: int
    seconds: float
    sha256: str = ""


def check_quant(quant: str) -> str:
    """The canonical name of `quant` (case-insensitive); raises `ExportError` listing the
    types there are when it is not one."""
    name = quant.strip().upper()
    if name not in QUANT_TYPES:
        raise ExportError(
            f"unknown quantisation type {quant!r}; choose one of {', '.join(QUANT_TYPES)}"
        )
    return name


def existing_targets(out: Path) -> list[Path]:
    """Those of `out` and its model card (`out` with the suffix .md) that already exist."""
    return [p for p in (out, out.with_suffix(".md")) if p.exists()]


def export_gguf(
    model_dir: Path,
    out: Path,
    *,
    base_gguf: Path | None = None,
    quant: str = "Q8_0",
    force: bool = False,
    card: dict | None = None,
    base_model: Path | None = None,
) -> ExportResult:
    """Write `model_dir` as the GGUF `out` in `quant`, and its model card `out.with_suffix(".md")`.

    `model_dir` is a full Hugging Face folder or a PEFT LoRA adapter folder; an adapter is
    merged (float32) into `base_model`, by default the folder its adapter_config.json records.
    `base_gguf` (None: the embedded SmolLM2-135M) is the file the model was trained from:
    all its metadata is copied but the name, lineage and file type. `card` is rendered into
    the model card as sections and tables, after what the export itself knows.

    Nothing is overwritten unless `force`; both files are written under temporary names in
    `out`'s folder and renamed at the end, so an interrupted export leaves neither half done.

    Returns an `ExportResult`. Raises `ExportError` (unknown `quant`, `out` or the card
    exists, the model does not match the base, quantisation failed) and `ModelFileError`
    (`model_dir` or the base missing or not a model); the quant and the targets are checked
    before any work.
    """
    t0 = time.perf_counter()
    quant = check_quant(quant)
    out = Path(out).expanduser()
    card_path = out.with_suffix(".md")
    if out.suffix.lower() != ".gguf" or out.is_dir():
        raise ExportError(f"{out}: the output must be a file name ending in .gguf")
    if not force and (taken := existing_targets(out)):
        raise ExportError(f"{taken[0]} already exists; not overwriting it (use --force)")
    model_dir = Path(model_dir).expanduser()
    adapter, load_from = _model_source(model_dir, base_model)

    from charter.interp.gguf_torch import read_contents
    from charter.interp.loading import resolve_path
    from charter.train.hf import file_sha256, require_train

    require_train(*(("peft",) if adapter else ()))

    base_path = resolve_path(base_gguf)
    contents = read_contents(base_path)
    if contents.get("general.architecture") != "llama":
        raise ExportError(
            f"{base_path}: export writes llama-architecture GGUF files, not "
            f"{contents.get('general.architecture')!r}"
        )
    model = _load_model(model_dir, adapter, load_from)
    _check_fits(model.config, contents, model_dir)
    n_params = sum(p.numel() for p in model.parameters())

    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.parent / f".{out.name}.{os.getpid()}"
    tmp_f32, tmp_out, tmp_card = (Path(f"{stem}.{s}.tmp") for s in ("f32", "gguf", "md"))
    try:
        _write_f32(model, contents, tmp_f32, name=out.stem)
        del model  # llama.cpp's quantiser needs the memory more
        fallback = ""
        if quant == "F32":
            tmp_f32.rename(tmp_out)
        else:
            fallback = _quantize(tmp_f32, tmp_out, quant)
            tmp_f32.unlink()
        from charter.models.gguf import read_gguf

        info = read_gguf(tmp_out)  # Charter's own reader must take what it wrote
        size, sha = tmp_out.stat().st_size, file_sha256(tmp_out)
        facts = {
            "file": out.name,
            "quantisation": f"{quant} ({fallback})" if fallback else quant,
            "parameters": f"{n_params:,}",
            "file size": f"{size:,} bytes ({size / 1e6:.1f} MB)",
            "sha256": sha,
            "base model": f"{contents.get('general.name') or base_path.stem} ({base_path.name})",
            "base sha256": file_sha256(base_path),
            "trained weights": f"{model_dir} ({'LoRA adapter, merged' if adapter else 'full'})",
            "exported": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "charter version": _charter_version(),
            "export seconds": f"{time.perf_counter() - t0:.1f}",
        }
        tmp_card.write_text(render_card(info.name, facts, card or {}), encoding="utf-8")
        if not force and (taken := existing_targets(out)):  # appeared while we worked
            raise ExportError(f"{taken[0]} already exists; not overwriting it (use --force)")
        os.replace(tmp_out, out)
        os.replace(tmp_card, card_path)
    finally:
        for p in (tmp_f32, tmp_out, tmp_card):
            p.unlink(missing_ok=True)
    return ExportResult(
        path=out,
        card_path=card_path,
        quant=quant,
        size_bytes=size,
        n_params=n_params,
        seconds=time.perf_counter() - t0,
        sha256=sha,
    )


def _model_source(model_dir: Path, base_model: Path | None) -> tuple[bool, Path]:
    """(is an adapter, the folder to load the full model from); ModelFileError when
    `model_dir` is neither a model folder nor an adapter whose base folder is here."""
    if not model_dir.is_dir():
        raise ModelFileError(f"{model_dir}: no such model folder")
    if not (model_dir / "adapter_config.json").is_file():
        if not (model_dir / "config.json").is_file():
            raise ModelFileError(
                f"{model_dir}: not a model folder (no config.json) nor a LoRA adapter "
                "(no adapter_config.json)"
            )
        return False, model_dir
    try:
        recorded = json.loads((model_dir / "adapter_config.json").read_text())
        recorded_base = recorded.get("base_model_name_or_path") or ""
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelFileError(
            f"{model_dir / 'adapter_config.json'}: unreadable ({_first_line(exc)})"
        ) from None
    base = Path(base_model or recorded_base).expanduser()
    if not (base / "config.json").is_file():
        raise ModelFileError(
            f"{model_dir}: the adapter's base model {str(base)!r} is not a model folder here; "
            "give the folder it was trained on (--base-model)"
        )
    return True, base


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_model(model_dir: Path, adapter: bool, load_from: Path) -> Any:
    """The model in float32, with its adapter merged when it is one."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(load_from), dtype=torch.float32, local_files_only=True
        )
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(model_dir)).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelFileError(
            f"{model_dir}: could not load the model ({_first_line(exc)})"
        ) from None
    return model.float().eval()


def _check_fits(config: Any, c: Any, model_dir: Path) -> None:
    """The model must have the base GGUF's shape, or its metadata would describe another."""
    if getattr(config, "model_type", None) != "llama":
        raise ExportError(
            f"{model_dir}: export writes llama models, not {getattr(config, 'model_type', None)!r}"
        )
    pairs = {
        "hidden_size": "llama.embedding_length",
        "num_hidden_layers": "llama.block_count",
        "intermediate_size": "llama.feed_forward_length",
        "num_attention_heads": "llama.attention.head_count",
        "num_key_value_heads": "llama.attention.head_count_kv",
    }
    got = {k: getattr(config, k, None) for k in pairs}
    want = {k: c.get(v) for k, v in pairs.items()}
    got["vocab_size"], want["vocab_size"] = (
        config.vocab_size,
        len(c.get("tokenizer.ggml.tokens") or []),
    )
    if want["num_key_value_heads"] is None:
        want["num_key_value_heads"] = want["num_attention_heads"]
    for key in got:
        if got[key] != want[key]:
            raise ExportError(
                f"{model_dir} does not fit the base {c.path.name}: {key} is {got[key]}, the base "
                f"has {want[key]}; give the GGUF it was trained from (--base)"
            )


def _permute(w: Any, n_head: int) -> Any:
    """llama.cpp's `permute` (convert_hf_to_gguf.py): interleave the rotary halves of each
    head of a Q or K projection; the inverse of `gguf_torch._unpermute`."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _write_f32(model: Any, c: Any, path: Path, *, name: str) -> None:
    """An F32 GGUF: the base's metadata (bar `_REPLACED`) and the model's tensors under
    llama.cpp's names (in transformers' order, as llama.cpp's converter writes them)."""
    import gguf
    import numpy as np

    from charter.interp.gguf_torch import _BLOCK_NAMES, _GLOBAL_NAMES

    state = {k: v.detach() for k, v in model.state_dict().items()}
    config = model.config
    names = {v: k for k, v in _GLOBAL_NAMES.items()}
    for i in range(config.num_hidden_layers):
        names.update({f"model.layers.{i}.{v}": f"blk.{i}.{k}" for k, v in _BLOCK_NAMES.items()})
    embed, head = state["model.embed_tokens.weight"], state.get("lm_head.weight")
    tied = head is None or head.data_ptr() == embed.data_ptr() or bool((head == embed).all())
    if tied and "output.weight" not in c.tensors:
        state.pop("lm_head.weight", None)
    unknown = [k for k in state if k not in names]
    if unknown:
        raise ExportError(f"tensor {unknown[0]!r} has no llama.cpp name (not a plain llama model)")
    reader = gguf.GGUFReader(c.path)
    writer = gguf.GGUFWriter(path, c.get("general.architecture"))
    for field in reader.fields.values():
        if field.name in _REPLACED or field.name.startswith(_REPLACED_PREFIXES):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub_type)
    del reader
    writer.add_name(name)
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, c.get("general.name") or c.path.stem)
    if c.get("general.organization"):
        writer.add_base_model_organization(0, c.get("general.organization"))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for hf_name, tensor in state.items():
        gguf_name = names[hf_name]
        w = tensor.float().cpu().numpy()
        if gguf_name.endswith(".attn_q.weight"):
            w = _permute(w, config.num_attention_heads)
        elif gguf_name.endswith(".attn_k.weight"):
            w = _permute(w, config.num_key_value_heads)
        writer.add_tensor(gguf_name, np.ascontiguousarray(w, dtype=np.float32))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


def _quantize(src: Path, dst: Path, quant: str) -> str:
    """llama.cpp's quantiser, its log collected instead of printed (a line per tensor, and
    one warning per tensor whose rows do not fit the type's blocks). Returns its fallback
    summary ("" when none); raises `ExportError` with its last words when it fails."""
    import llama_cpp
    from llama_cpp import _logger

    log: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        log.append(text.decode("utf-8", errors="replace"))

    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[quant])
    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        rc = llama_cpp.llama_model_quantize(
            str(src).encode(), str(dst).encode(), ctypes.byref(params)
        )
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    lines = [line.strip() for line in "".join(log).splitlines() if line.strip()]
    if rc != 0:
        last = lines[-1] if lines else f"return code {rc}"
        raise ExportError(f"llama.cpp could not quantise the model to {quant}: {last}")
    fallback = re.search(r"\d+ of \d+ tensor\(s\) required fallback quantization", "".join(log))
    return fallback.group(0) if fallback else ""


def _charter_version() -> str:
    from charter import __version__

    return __version__


# --- the model card -------------------------------------------------------------------------


def render_card(title: str, facts: dict[str, Any], card: dict[str, Any]) -> str:
    """Markdown: `facts` (what the export knows) as a table, then each key of `card` as a
    section: scalars in a table, nested dicts as subsections, lists of dicts as tables."""
    lines = [
        f"# {title}",
        "",
        "Made with Charter's constitutional training loop (`charter train`) from "
        f"{facts.get('base model', 'its base model')}.",
        "",
        "## Export",
        "",
        *_table(facts),
    ]
    scalars = {k: v for k, v in card.items() if not isinstance(v, dict | list)}
    if scalars:
        lines += ["## Summary", "", *_table(scalars)]
    for key, value in card.items():
        if key not in scalars:
            lines += _section(str(key), value, 2)
    return "\n".join(lines).rstrip() + "\n"


def _title(key: str) -> str:
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}" if math.isfinite(value) else str(value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, default=str, ensure_ascii=False)
    elif value is None:
        text = "none"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", "<br>")


def _table(rows: dict[str, Any]) -> list[str]:
    return [
        "| | |",
        "|---|---|",
        *(f"| {_cell(_title(str(k)))} | {_cell(v)} |" for k, v in rows.items()),
        "",
    ]


def _section(key: str, value: Any, level: int) -> list[str]:
    lines = [f"{'#' * min(level, 6)} {_title(key)}", ""]
    if isinstance(value, dict):
        flat = {
            k: v
            for k, v in value.items()
            if not isinstance(v, dict) and not (isinstance(v, list) and _is_records(v))
        }
        if flat:
            lines += _table(flat)
        for k, v in value.items():
            if k not in flat:
                lines += _section(str(k), v, level + 1)
    elif isinstance(value, list) and _is_records(value):
        columns: list[str] = []
        for row in value:
            columns += [str(k) for k in row if str(k) not in columns]
        lines += [
            "| " + " | ".join(_cell(_title(c)) for c in columns) + " |",
            "|" + "---|" * len(columns),
            *(
                "| "
                + " | ".join(_cell({str(k): v for k, v in row.items()}.get(c, "")) for c in columns)
                + " |"
                for row in value
            ),
            "",
        ]
    elif isinstance(value, list):
        lines += [*(f"- {_cell(v)}" for v in value), ""]
    else:
        lines += [str(value), ""]
    return lines


def _is_records(value: list[Any]) -> bool:
    return bool(value) and all(isinstance(v, dict) for v in value)


# --- the command ----------------------------------------------------------------------------


@click.command("export", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The GGUF file to write; the model card goes beside it as OUT.md.",
)
@click.option(
    "--base",
    "base_gguf",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The GGUF the model was trained from (default: the embedded SmolLM2-135M).",
)
@click.option(
    "--base-model",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="For an adapter: the folder it was trained on (default: its adapter_config.json's).",
)
@click.option(
    "--quant",
    default="Q8_0",
    show_default=True,
    help=f"llama.cpp quantisation: {', '.join(QUANT_TYPES)}.",
)
@click.option("--force", is_flag=True, help="Overwrite OUT and its model card.")
@click.option(
    "--card-json",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A JSON object to render into the model card (constitution, data, results...).",
)
def export_cmd(
    model_dir: Path,
    out: Path,
    base_gguf: Path | None,
    base_model: Path | None,
    quant: str,
    force: bool,
    card_json: Path | None,
) -> None:
    """Merge MODEL_DIR (a model folder or LoRA adapter) and write it as a GGUF with a card."""
    try:
        quant = check_quant(quant)
        card = _read_card(card_json) if card_json else None
        taken = [] if force else existing_targets(out)
        if taken:
            if not (
                sys.stdin.isatty()
                and click.confirm(f"{taken[0]} exists. Overwrite it?", default=False, err=True)
            ):
                raise ExportError(f"{taken[0]} already exists; not overwriting it (use --force)")
            force = True
        result = export_gguf(
            model_dir,
            out,
            base_gguf=base_gguf,
            base_model=base_model,
            quant=quant,
            force=force,
            card=card,
        )
    except CharterError as exc:
        click.echo(f"charter: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    click.echo(
        json.dumps(
            {
                "path": str(result.path),
                "card": str(result.card_path),
                "quant": result.quant,
                "size_bytes": result.size_bytes,
                "n_params": result.n_params,
                "sha256": result.sha256,
                "seconds": round(result.seconds, 1),
            }
        )
    )


def _read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: not readable JSON ({_first_line(exc)})") from None
    if not isinstance(card, dict):
        raise ExportError(f"{path}: the model card data must be a JSON object")
    return card
