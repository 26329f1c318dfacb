"""Load a model into PyTorch from a GGUF file or a Hugging Face folder, one way for everyone.

The transformers backend and `charter lens` share this, so the lens looks at exactly the
model the backend runs: same weights, same tokenizer, same end-of-turn tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from charter.errors import ModelFileError
from charter.interp import require_torch

DType = Literal["float32", "bfloat16", "float16"]


@dataclass
class LoadedModel:
    """A causal LM in eval mode with eager attention, and what is needed to prompt it."""

    model: Any
    tokenizer: Any
    path: Path
    architecture: str | None
    #: The context length the model was trained for (its config), when known.
    trained_context: int | None
    #: Token ids that end an answer (EOS and the chat template's end-of-turn markers).
    stop_ids: frozenset[int]
    #: Prepend BOS when the chat template does not write it (GGUF `add_bos_token`).
    add_bos: bool
    load_seconds: float

    @property
    def parameter_count(self) -> int:
        """Exact: the sum of every parameter tensor's elements (tied weights counted once)."""
        return sum(p.numel() for p in self.model.parameters())

    def encode_chat(self, messages: list[dict[str, str]]) -> tuple[str, list[int]]:
        """Render `messages` with the model's chat template (ready for the assistant's turn)
        and tokenize them; returns (prompt text, token ids)."""
        tok = self.tokenizer
        if not tok.chat_template:
            raise ModelFileError(f"{self.path}: the model has no chat template")
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if self.add_bos and tok.bos_token_id is not None and ids[:1] != [tok.bos_token_id]:
            ids = [tok.bos_token_id, *ids]
        return text, ids


def resolve_path(path: Path | str | None) -> Path:
    """The model path to load: `path`, or the embedded SmolLM2-135M-Instruct GGUF."""
    if path is None:
        from charter.models import embedded_model_path

        return embedded_model_path()
    return Path(path).expanduser()


def load_model(
    path: Path | str | None = None, *, dtype: DType = "float32", n_threads: int | None = None
) -> LoadedModel:
    """Load a GGUF file (dequantised) or a Hugging Face folder (config.json + weights).

    Returns a `LoadedModel`. Raises `ConfigError` when torch or transformers is missing (with
    the install command) and `ModelFileError` naming the path when it cannot be loaded.
    """
    where = resolve_path(path)
    if not where.is_dir():
        from charter.models.gguf import read_gguf

        read_gguf(where)  # a bad file is one clear line, before the seconds torch takes
    require_torch()
    import torch

    if n_threads:
        torch.set_num_threads(n_threads)
    t0 = time.perf_counter()
    torch_dtype = getattr(torch, dtype)
    # Anything but a folder is read as GGUF, whose reader names what is wrong with the file.
    loaded = (
        _load_hf_folder(where, torch_dtype) if where.is_dir() else _load_gguf(where, torch_dtype)
    )
    loaded.load_seconds = time.perf_counter() - t0
    return loaded


def _load_gguf(path: Path, dtype: Any) -> LoadedModel:
    from charter.interp.gguf_torch import load_llama_gguf

    model, tok, contents = load_llama_gguf(path, dtype)
    return LoadedModel(
        model=model,
        tokenizer=tok,
        path=path,
        architecture=contents.get("general.architecture"),
        trained_context=model.config.max_position_embeddings,
        stop_ids=_stop_ids(model, tok),
        add_bos=bool(contents.get("tokenizer.ggml.add_bos_token", False)),
        load_seconds=0.0,
    )


def _load_hf_folder(path: Path, dtype: Any) -> LoadedModel:
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (path / "config.json").is_file():
        raise ModelFileError(f"{path}: a model folder needs a config.json (and its weights)")
    # transformers 4.56 renamed `torch_dtype` to `dtype` and warns about the old name.
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), attn_implementation="eager", local_files_only=True, **{dtype_kw: dtype}
        )
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: transformers could not load this folder ({first})") from None
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tok,
        path=path,
        architecture=getattr(model.config, "model_type", None),
        trained_context=getattr(model.config, "max_position_embeddings", None),
        stop_ids=_stop_ids(model, tok),
        add_bos=False,
        load_seconds=0.0,
    )


_BYTE_DECODER: dict[str, int] = {}


def token_bytes(tok: Any, token: int) -> bytes:
    """The exact bytes of one token: byte-level BPE pieces map back through GPT-2's byte
    alphabet (a piece may be half a UTF-8 character); other vocabularies decode to text."""
    if not _BYTE_DECODER:
        from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

        _BYTE_DECODER.update({c: b for b, c in bytes_to_unicode().items()})
    piece = tok.convert_ids_to_tokens(token)
    decoder = getattr(getattr(tok, "backend_tokenizer", None), "decoder", None)
    if (
        type(decoder).__name__ == "ByteLevel"
        and isinstance(piece, str)
        and token not in tok.all_special_ids
        and all(c in _BYTE_DECODER for c in piece)
    ):
        return bytes(_BYTE_DECODER[c] for c in piece)
    return tok.decode([token], skip_special_tokens=False).encode("utf-8")


def _stop_ids(model: Any, tok: Any) -> frozenset[int]:
    from charter.interp.gguf_torch import EOG_TEXTS

    ids: set[int] = set()
    eos = model.config.eos_token_id
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    vocab = tok.get_vocab()
    ids.update(vocab[t] for t in EOG_TEXTS if t in vocab)
    return frozenset(ids)
