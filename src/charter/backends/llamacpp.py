"""The default backend: a local GGUF model run in-process by llama.cpp (CPU, or GPU offload).

We format the chat prompt ourselves with the model's own template so the prompt's exact token
count is known before generation: an over-long prompt is refused with both numbers, never
silently truncated.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import llama_cpp
import numpy as np
from pydantic import Field

from charter.backends.base import Backend, BackendOptions
from charter.backends.text import TextAssembler, merge_logprobs
from charter.errors import BackendError, ContextOverflowError, ModelFileError
from charter.types import Event, Message, Params

if TYPE_CHECKING:
    from charter.config import Settings


class LlamaCppOptions(BackendOptions):
    #: A GGUF file; None means the embedded SmolLM2-135M-Instruct.
    model_path: Path | None = None
    n_ctx: int = Field(default=4096, ge=64)
    #: None uses every core.
    n_threads: int | None = Field(default=None, ge=1)
    #: Layers to offload to a GPU (-1: all). Needs a GPU build of llama-cpp-python.
    n_gpu_layers: int = Field(default=0, ge=-1)
    n_batch: int = Field(default=512, ge=1)


class LlamaCppBackend(Backend):
    name = "llamacpp"
    Options = LlamaCppOptions
    supports_logprobs = True

    def __init__(self, options: LlamaCppOptions):
        super().__init__(options)
        self.options: LlamaCppOptions = options
        self._llm: Any = None
        self._formatter: Any = None
        self._info: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LlamaCppBackend:
        opts = {
            "model_path": settings.model,
            "n_ctx": settings.n_ctx,
            "n_threads": settings.n_threads,
            "n_gpu_layers": settings.n_gpu_layers,
            **settings.backend_options,
        }
        return cls(cls.parse_options(opts))

    @property
    def path(self) -> Path:
        if self.options.model_path is not None:
            return Path(self.options.model_path).expanduser()
        from charter.models import embedded_model_path

        return embedded_model_path()

    def load(self) -> None:
        if self._llm is not None:
            return
        from charter.models.gguf import read_gguf

        path = self.path
        # Reading the header first turns a missing or corrupt file into one clear line
        # naming the file, instead of llama.cpp's generic failure.
        self._info = read_gguf(path)
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise BackendError(
                f"llama-cpp-python is not installed ({exc}); "
                "run: pip install llama-cpp-python==0.3.36"
            ) from exc
        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=self.options.n_ctx,
                n_threads=self.options.n_threads or os.cpu_count() or 1,
                n_gpu_layers=self.options.n_gpu_layers,
                n_batch=self.options.n_batch,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelFileError(f"{path}: llama.cpp could not load this model ({exc})") from exc
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelFileError(
                f"{path}: the GGUF file has no chat template "
                "(tokenizer.chat_template); Charter needs a chat model"
            )
        eos_id, bos_id = self._llm.token_eos(), self._llm.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._llm._model.token_get_text(eos_id) if eos_id >= 0 else "",
            bos_token=self._llm._model.token_get_text(bos_id) if bos_id >= 0 else "",
            stop_token_ids=[eos_id],
        )

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    @property
    def model_id(self) -> str:
        return self.path.name.removesuffix(".gguf")

    def info(self) -> dict[str, Any]:
        self.load()
        return {
            "id": self.model_id,
            "backend": self.name,
            "path": str(self.path),
            "architecture": self._info.architecture,
            "parameter_count": self._info.parameter_count,
            "context_size": self.options.n_ctx,
            "trained_context_size": self._info.context_length,
            "file_size": self._info.file_size,
            "n_gpu_layers": self.options.n_gpu_layers,
        }

    def encode(self, messages: list[Message]) -> tuple[list[int], list[str]]:
        """Format `messages` with the model's chat template; return (tokens, stop strings)."""
        self.load()
        result = self._formatter(messages=[m.model_dump() for m in messages])
        tokens = self._llm.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        stop = result.stop if isinstance(result.stop, list) else [result.stop or ""]
        return tokens, stop

    def stream(self, messages: list[Message], params: Params) -> Iterator[Event]:
        tokens, template_stop = self.encode(messages)
        n_ctx = self.options.n_ctx
        n_prompt = len(tokens)
        if n_prompt >= n_ctx or (params.max_tokens and n_prompt + params.max_tokens > n_ctx):
            raise ContextOverflowError(n_prompt, n_ctx, max_tokens=params.max_tokens)
        limit = params.token_limit(n_ctx - n_prompt)
        llm = self._llm
        llm.set_seed(params.seed if params.seed is not None else random.randrange(2**31))
        # We drive llama.cpp's token loop ourselves (as create_completion does inside) so
        # that token counts are exact and logprobs come from the live logits, without
        # `logits_all` (which would keep n_ctx x vocab floats: ~800 MB here).
        gen = llm.generate(
            tokens,
            temp=params.temperature,
            top_p=params.top_p,
            top_k=40,
            min_p=0.05,
            repeat_penalty=1.0,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
        )
        text = TextAssembler([*params.stop, *template_stop])
        vocab = llm._model.vocab
        produced, finish, hit_stop_string = 0, "length", False
        pending_lp: list[dict] = []
        with closing(gen):
            for token in gen:
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                produced += 1
                if params.logprobs:
                    pending_lp.append(self._token_logprobs(token, params.top_logprobs))
                piece, stopped = text.push(llm.detokenize([token]))
                if piece:
                    lp = merge_logprobs(pending_lp) if pending_lp else None
                    pending_lp = []
                    yield Event("token", text=piece, logprobs=lp)
                if stopped:
                    finish, hit_stop_string = "stop", True
                    break
                if produced >= limit:
                    break
        rest = "" if hit_stop_string else text.flush()
        if rest:
            yield Event(
                "token", text=rest, logprobs=merge_logprobs(pending_lp) if pending_lp else None
            )
        yield Event(
            "done",
            finish_reason=finish,
            usage={
                "prompt_tokens": n_prompt,
                "completion_tokens": produced,
                "total_tokens": n_prompt + produced,
            },
        )

    def _token_logprobs(self, token: int, top_n: int) -> dict[str, Any]:
        """The sampled token's log-probability (and the top alternatives) under the model's
        own distribution, from the logits it was sampled from (before temperature)."""
        llm = self._llm
        n_vocab = llm.n_vocab()
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,)
        )
        shifted = logits - logits.max()
        exp = np.exp(shifted)
        z = float(exp.sum())
        logz = math.log(z)
        entry = _lp_entry(llm, token, float(shifted[token]) - logz)
        # Entropy of the whole next-token distribution, in nats (Charter extension).
        entry["entropy"] = max(0.0, logz - float((exp * shifted).sum()) / z)
        top: list[dict] = []
        if top_n:
            best = np.argpartition(-shifted, top_n)[:top_n]
            best = best[np.argsort(-shifted[best])]
            top = [_lp_entry(llm, int(t), float(shifted[t]) - logz) for t in best]
        entry["top_logprobs"] = top
        return entry


def _lp_entry(llm: Any, token: int, logprob: float) -> dict[str, Any]:
    raw = llm.detokenize([token])
    return {"token": raw.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(raw)}
