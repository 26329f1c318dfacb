"""The base GGUF as a float32 Hugging Face folder, the form TRL and PEFT train.

Made once per GGUF content (`charter.interp.gguf_torch` dequantises the weights llama.cpp
runs and builds the tokenizer as llama.cpp tokenizes) and cached, so SFT, DPO and export all
start from the same folder. `charter.train.export` goes the other way.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

#: Written last into a finished folder: what it was made from.
SOURCE_FILE = "charter-source.json"


def require_train(*extra: str) -> None:
    """Import torch, transformers and gguf (and `extra`), or raise `ConfigError` with the
    exact install command."""
    import importlib

    from charter.errors import ConfigError

    for name in ("torch", "transformers", "gguf", *extra):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"this needs the training extra ({name} is not importable: {exc}); "
                "install it: pip install 'charter[train]'"
            ) from None


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes (about 1 GB/s here: 0.09 s for the 98 MB default)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def base_hf_folder(gguf_path: Path | None, cache_dir: Path) -> Path:
    """A float32 Hugging Face folder (config, safetensors, tokenizer with the GGUF's chat
    template, generation config) made from `gguf_path` (None: the embedded SmolLM2-135M).

    Returns `cache_dir/<first 16 hex of the GGUF's sha256>`, made on first use. The key is
    the sha256 of the whole file, not its size and mtime: hashing is about 1% of the
    conversion (0.09 s against 9 s for the default model), a copied or re-downloaded file
    still finds its folder, and a file changed in place never gets a stale one. The folder
    is built under a temporary name and renamed into place, so an interrupted build never
    leaves a folder that looks finished (a killed one leaves a hidden `.*.tmp` folder).

    Raises `ModelFileError` when the file is missing, corrupt or not a llama-architecture
    GGUF, and `ConfigError` (with the install command) without the training extra.
    """
    from charter.interp.loading import resolve_path
    from charter.models.gguf import read_gguf

    path = resolve_path(gguf_path)
    read_gguf(path)  # a missing or corrupt file is one clear line before the hashing
    sha = file_sha256(path)
    target = Path(cache_dir) / sha[:16]
    if (target / SOURCE_FILE).is_file():
        return target
    require_train()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _write_folder(path, tmp)
        (tmp / SOURCE_FILE).write_text(
            json.dumps(
                {"gguf": str(path), "sha256": sha, "created": time.strftime("%Y-%m-%dT%H:%M:%S")},
                indent=2,
            )
            + "\n"
        )
        if target.exists():  # a leftover without its source file: never finished
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:
            # Another process finished the same folder first; theirs is as good as ours.
            if not (target / SOURCE_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _write_folder(path: Path, folder: Path) -> None:
    import torch

    from charter.interp.gguf_torch import EOG_TEXTS, load_llama_gguf

    model, tok, contents = load_llama_gguf(path, torch.float32)
    # The loader picks eager attention for the lens; training should get transformers' default.
    model.config._attn_implementation = None
    model.config.use_cache = True
    # End of generation as llama.cpp sees it: the declared EOS (SmolLM2: <|im_end|>, which
    # also pads) plus the end-of-turn markers it recognises by their text (<|endoftext|>).
    eos = model.config.eos_token_id
    gen = model.generation_config
    gen._from_model_config = False  # ours, not to be re-derived from config.json
    gen.bos_token_id = model.config.bos_token_id
    gen.pad_token_id = model.config.pad_token_id if model.config.pad_token_id is not None else eos
    vocab = tok.get_vocab()
    gen.eos_token_id = [eos, *(vocab[t] for t in EOG_TEXTS if t in vocab and vocab[t] != eos)]
    if tok.pad_token is None:  # TRL pads; the EOS is what llama.cpp's own files pad with
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        from charter.errors import ModelFileError

        raise ModelFileError(f"{path}: the file has no chat template (tokenizer.chat_template)")
    tok.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
