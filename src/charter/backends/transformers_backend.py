"""A backend that runs the model in PyTorch with transformers: slower than llama.cpp, but every
weight, hidden state and attention map can be read, which `charter lens` builds on.

It loads the same GGUF file llama.cpp runs (dequantised to float32) or a Hugging Face folder.
Needs the optional extra: `pip install 'charter[interp]'`; importing this module imports
neither torch nor transformers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from charter.backends.base import Backend, BackendOptions
from charter.backends.text import TextAssembler, merge_logprobs
from charter.errors import ContextOverflowError
from charter.interp.loading import DType, LoadedModel, resolve_path, token_bytes
from charter.types import Event, Message, Params

if TYPE_CHECKING:
    from charter.config import Settings


class TransformersOptions(BackendOptions):
    #: A GGUF file (llama architecture, dequantised) or a Hugging Face model folder;
    #: None means the embedded SmolLM2-135M-Instruct GGUF.
    model_path: Path | None = None
    #: Compute precision. CPUs without native bf16 should stay at float32.
    dtype: DType = "float32"
    #: torch's intra-op threads; None keeps torch's default (every core).
    n_threads: int | None = Field(default=None, ge=1)
    #: Prompt plus answer, in tokens (capped at the model's trained context).
    n_ctx: int = Field(default=4096, ge=64)


class TransformersBackend(Backend):
    name = "transformers"
    Options = TransformersOptions
    supports_logprobs = True

    def __init__(self, options: TransformersOptions):
        super().__init__(options)
        self.options: TransformersOptions = options
        self._lm: LoadedModel | None = None
        self._params: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersBackend:
        opts = {
            "model_path": settings.model,
            "n_ctx": settings.n_ctx,
            "n_threads": settings.n_threads,
            **settings.backend_options,
        }
        return cls(cls.parse_options(opts))

    @property
    def path(self) -> Path:
        return resolve_path(self.options.model_path)

    @property
    def loaded(self) -> LoadedModel:
        """The model, tokenizer and stop tokens (loading them on first use)."""
        self.load()
        assert self._lm is not None
        return self._lm

    def load(self) -> None:
        if self._lm is None:
            from charter.interp.loading import load_model

            self._lm = load_model(
                self.options.model_path, dtype=self.options.dtype, n_threads=self.options.n_threads
            )

    def close(self) -> None:
        self._lm = None

    @property
    def model_id(self) -> str:
        return self.path.name.removesuffix(".gguf")

    @property
    def context_size(self) -> int:
        trained = self.loaded.trained_context
        return min(self.options.n_ctx, trained) if trained else self.options.n_ctx

    def info(self) -> dict[str, Any]:
        lm = self.loaded
        if self._params is None:
            self._params = lm.parameter_count
        return {
            "id": self.model_id,
            "backend": self.name,
            "path": str(lm.path),
            "architecture": lm.architecture,
            "parameter_count": self._params,
            "context_size": self.context_size,
            "trained_context_size": lm.trained_context,
            "dtype": self.options.dtype,
            "load_seconds": round(lm.load_seconds, 2),
        }

    def encode(self, messages: list[Message]) -> list[int]:
        """The prompt's token ids, formatted with the model's own chat template."""
        return self.loaded.encode_chat([m.model_dump() for m in messages])[1]

    def stream(self, messages: list[Message], params: Params) -> Iterator[Event]:
        import torch

        lm = self.loaded
        tokens = self.encode(messages)
        n_ctx, n_prompt = self.context_size, len(tokens)
        if n_prompt >= n_ctx or (params.max_tokens and n_prompt + params.max_tokens > n_ctx):
            raise ContextOverflowError(n_prompt, n_ctx, max_tokens=params.max_tokens)
        limit = params.token_limit(n_ctx - n_prompt)
        rng = torch.Generator().manual_seed(
            params.seed if params.seed is not None else random.randrange(2**31)
        )
        tok = lm.tokenizer
        text = TextAssembler(params.stop)
        generated: list[int] = []
        counts: dict[int, int] = {}
        decoded_len = 0
        produced, finish, hit_stop_string = 0, "length", False
        pending_lp: list[dict] = []
        past: Any = None
        step_input = torch.tensor([tokens])
        # One token per step, reusing the KV cache; closing this generator simply ends the
        # loop between two steps.
        while produced < limit:
            with torch.no_grad():
                out = lm.model(input_ids=step_input, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].float()
            token = _pick(logits, params, rng, counts)
            if token in lm.stop_ids:
                finish = "stop"
                break
            produced += 1
            generated.append(token)
            counts[token] = counts.get(token, 0) + 1
            if params.logprobs:
                pending_lp.append(_token_logprobs(tok, logits, token, params.top_logprobs))
            # Decoding the whole answer each step keeps multi-token characters and
            # SentencePiece spacing right; an unfinished UTF-8 character waits for the next.
            decoded = tok.decode(generated, skip_special_tokens=True)
            if decoded.endswith("\ufffd"):
                step_input = torch.tensor([[token]])
                continue
            piece, stopped = text.push(decoded[decoded_len:].encode("utf-8"))
            decoded_len = len(decoded)
            if piece:
                lp = merge_logprobs(pending_lp) if pending_lp else None
                pending_lp = []
                yield Event("token", text=piece, logprobs=lp)
            if stopped:
                finish, hit_stop_string = "stop", True
                break
            step_input = torch.tensor([[token]])
        if not hit_stop_string:
            tail = tok.decode(generated, skip_special_tokens=True)[decoded_len:]
            piece, _ = text.push(tail.encode("utf-8")) if tail else ("", False)
            rest = piece + text.flush()
            if rest:
                lp = merge_logprobs(pending_lp) if pending_lp else None
                yield Event("token", text=rest, logprobs=lp)
        yield Event(
            "done",
            finish_reason=finish,
            usage={
                "prompt_tokens": n_prompt,
                "completion_tokens": produced,
                "total_tokens": n_prompt + produced,
            },
        )


def _pick(logits: Any, params: Params, rng: Any, counts: dict[int, int]) -> int:
    """The next token: greedy at temperature 0, else nucleus sampling (top_p) with `rng`."""
    import torch

    if counts and (params.presence_penalty or params.frequency_penalty):
        ids = torch.tensor(list(counts))
        seen = torch.tensor(list(counts.values()), dtype=logits.dtype)
        logits = logits.clone()
        logits[ids] -= params.frequency_penalty * seen + params.presence_penalty
    if params.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        keep = (sorted_p.cumsum(0) - sorted_p) < params.top_p
        choice = torch.multinomial(sorted_p * keep, 1, generator=rng)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=rng))


def _token_logprobs(tok: Any, logits: Any, token: int, top_n: int) -> dict[str, Any]:
    """OpenAI-style logprobs of `token` (and the top alternatives) under the model's own
    distribution before temperature, with its entropy in nats, as the llama.cpp backend."""
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    entropy = float(-(logp.exp() * logp).sum())
    entry = _lp_entry(tok, token, float(logp[token]))
    entry["entropy"] = max(0.0, entropy)
    top: list[dict] = []
    if top_n:
        values, ids = torch.topk(logp, top_n)
        top = [_lp_entry(tok, int(i), float(v)) for v, i in zip(values, ids, strict=True)]
    entry["top_logprobs"] = top
    return entry


def _lp_entry(tok: Any, token: int, logprob: float) -> dict[str, Any]:
    raw = token_bytes(tok, token)
    return {"token": raw.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(raw)}
