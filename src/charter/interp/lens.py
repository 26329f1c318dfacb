"""The logit lens and per-source attention: what each layer would predict at every answer
position, and how much of the answer's attention goes to each retrieval source.

The logit lens reads the residual stream after each block through the model's final norm and
output head, as if the model stopped there (nostalgebraist, 2020). Everything returned is
plain dataclasses of numbers and strings, so it serialises to JSON as it is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from charter.errors import ConfigError, ContextOverflowError, ModelFileError
from charter.interp import require_torch

DEFAULT_MAX_TOKENS = 8
DEFAULT_TOP_K = 5
SOURCES_INSTRUCTION = "Answer the question using the sources below."


@dataclass
class TokenProb:
    id: int
    token: str
    prob: float


@dataclass
class LayerReading:
    """One layer's next-token prediction at one answer position."""

    #: 0 is the token embeddings; n is the output of block n (1-based); the last is the model.
    layer: int
    top: list[TokenProb]
    #: Rank (1 = top) and probability this layer gives the answer's actual token.
    rank: int
    prob: float
    #: Entropy of this layer's whole next-token distribution, in nats.
    entropy: float


@dataclass
class LensPosition:
    """One answer token and what each layer predicted for it."""

    index: int
    token_id: int
    token: str
    layers: list[LayerReading]


@dataclass
class SourceAttention:
    """The share of the answer's attention that lands on one span of the prompt."""

    #: 1-based source number; 0 for everything outside the sources.
    index: int
    text: str
    #: Token span [start, end) in the prompt; None for the remainder.
    start: int | None
    end: int | None
    tokens: int
    #: Mean over heads and answer positions, one value per block (layers 1..n).
    per_layer: list[float]
    #: Mean over heads and blocks, one value per answer position.
    per_position: list[float]
    #: Mean over heads, blocks and answer positions.
    mean: float


@dataclass
class LensResult:
    model: str
    prompt_tokens: int
    #: The answer text, and whether the model generated it (greedily) or it was given.
    answer: str
    generated: bool
    #: Layer numbers shown, and their labels ("emb", "1", ..., "30").
    layers: list[int]
    layer_names: list[str]
    n_blocks: int
    top_k: int
    positions: list[LensPosition]
    sources: list[SourceAttention] = field(default_factory=list)
    #: The attention outside every source span (present when sources are).
    other: SourceAttention | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything above."""
        return asdict(self)


def parse_layers(spec: str) -> int | None:
    """`all` -> None (every layer); `every:N` -> N. Raises ConfigError for anything else."""
    spec = spec.strip().lower()
    if spec == "all":
        return None
    if spec.startswith("every:"):
        try:
            n = int(spec.removeprefix("every:"))
        except ValueError:
            n = 0
        if n >= 1:
            return n
    raise ConfigError(f"--layers must be 'all' or 'every:N' with N >= 1, not {spec!r}")


def select_layers(n_blocks: int, every: int | None) -> list[int]:
    """Layers to show: all of 0..n_blocks, or every N-th, always with the embeddings and the
    last block (the model's own prediction)."""
    if every is None:
        return list(range(n_blocks + 1))
    return sorted({0, n_blocks, *range(0, n_blocks + 1, every)})


def messages_with_sources(prompt: str, sources: Sequence[str]) -> list[dict[str, str]]:
    """The chat for `prompt`, with `sources` as a numbered "Sources:" block in the system
    message (how a retrieval stage would present them); no system message without sources."""
    if not sources:
        return [{"role": "user", "content": prompt}]
    block = "\n".join(f"[{i}] {s.strip()}" for i, s in enumerate(sources, 1))
    return [
        {"role": "system", "content": f"{SOURCES_INSTRUCTION}\nSources:\n{block}"},
        {"role": "user", "content": prompt},
    ]


def read_sources(texts: Sequence[str] = (), files: Sequence[Path] = ()) -> list[str]:
    """Sources given inline and as files (UTF-8 text), in that order.

    Raises ConfigError naming a file that cannot be read, and for an empty source."""
    out = list(texts)
    for f in files:
        try:
            out.append(Path(f).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--source-file {f}: cannot read it ({exc})") from None
    for i, s in enumerate(out, 1):
        if not s.strip():
            raise ConfigError(f"source {i} is empty")
    return [s.strip() for s in out]


def run_lens(
    prompt: str,
    *,
    model_path: Path | str | None = None,
    answer: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    top_k: int = DEFAULT_TOP_K,
    layers: str = "all",
    sources: Sequence[str] = (),
    n_threads: int | None = None,
) -> LensResult:
    """Load the model (GGUF dequantised, or an HF folder) and run `logit_lens` on `prompt`,
    with `sources` placed in the system message. What `charter lens` runs.

    Raises ConfigError for bad arguments or a missing extra, ModelFileError for a bad model."""
    every = parse_layers(layers)
    if not prompt.strip():
        raise ConfigError("the prompt is empty")
    _check_args(max_tokens, top_k, answer)
    from charter.interp.loading import load_model

    lm = load_model(model_path, n_threads=n_threads)
    return logit_lens(
        lm.model,
        lm.tokenizer,
        messages_with_sources(prompt, sources),
        answer=answer,
        max_tokens=max_tokens,
        top_k=top_k,
        sources=sources,
        every=every,
        stop_ids=lm.stop_ids,
        add_bos=lm.add_bos,
        model_name=lm.path.name.removesuffix(".gguf"),
    )


def logit_lens(
    model: Any,
    tokenizer: Any,
    messages: Sequence[Any],
    answer: str | None = None,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    top_k: int = DEFAULT_TOP_K,
    sources: Sequence[str] = (),
    every: int | None = None,
    stop_ids: frozenset[int] | set[int] | None = None,
    add_bos: bool = False,
    model_name: str = "",
) -> LensResult:
    """Run the logit lens over the answer to `messages` (dicts or `Message`s).

    With `answer` None, the answer is generated greedily (at most `max_tokens`, ending before
    a stop token); otherwise the given answer's tokens are scored. For every answer position
    and every selected layer: the top `top_k` tokens with probabilities, and the rank and
    probability of the answer's actual token. The last layer is the model's own output, so
    under greedy generation its top token is always the generated one.

    Each text in `sources` must appear verbatim in the rendered prompt (see
    `messages_with_sources`); for each, the share of the answer positions' attention (mean
    over heads) that lands on its tokens, per block and on average, plus the remainder.

    Sources need the model loaded with eager attention (attention weights are read).
    Returns a `LensResult`. Raises ConfigError for bad arguments or a source that is not in
    the prompt, ContextOverflowError when prompt and answer exceed the model's context.
    """
    require_torch()
    import torch

    _check_args(max_tokens, top_k, answer)
    t0 = time.perf_counter()
    chat = [m if isinstance(m, dict) else m.model_dump() for m in messages]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = [tuple(o) for o in enc["offset_mapping"]]
    if add_bos and tokenizer.bos_token_id is not None and ids[:1] != [tokenizer.bos_token_id]:
        ids, offsets = [tokenizer.bos_token_id, *ids], [(0, 0), *offsets]
    spans = _source_spans(text, offsets, sources)
    forced = None
    if answer is not None:
        forced = tokenizer(answer, add_special_tokens=False)["input_ids"]
    context = getattr(model.config, "max_position_embeddings", None)
    wanted = len(forced) if forced is not None else max_tokens
    if context and len(ids) + wanted > context:
        raise ContextOverflowError(len(ids), context, max_tokens=wanted)
    stops = set(stop_ids or ()) | ({tokenizer.eos_token_id} - {None})

    parts = _ModelParts(model)
    shown = select_layers(parts.n_blocks, every)
    positions: list[LensPosition] = []
    # attention[position][block] -> mean over heads of that position's attention row.
    attention: list[list[Any]] = []
    produced: list[int] = []
    with parts.capture() as captured, torch.no_grad():
        past = None
        if len(ids) > 1:  # the prompt but its last token: nothing to read there
            past = model(input_ids=torch.tensor([ids[:-1]]), use_cache=True).past_key_values
        step = ids[-1]
        limit = len(forced) if forced is not None else max_tokens
        for i in range(limit):
            captured.clear()
            captured.active = True
            out = model(
                input_ids=torch.tensor([[step]]),
                past_key_values=past,
                use_cache=True,
                output_attentions=True,
            )
            captured.active = False
            past = out.past_key_values
            probs = parts.layer_probs(captured.hidden, shown)
            if forced is not None:
                target = forced[i]
            else:
                target = int(torch.argmax(out.logits[0, -1]))
                if target in stops:
                    break
            produced.append(target)
            positions.append(_position(tokenizer, i, target, probs, shown, top_k))
            if spans:
                if not out.attentions or out.attentions[0] is None:
                    raise ConfigError(
                        'source attention needs the model loaded with attn_implementation="eager"'
                    )
                attention.append([a[0, :, -1, :].float().mean(dim=0) for a in out.attentions])
            step = target
    answer_ids = forced if forced is not None else produced
    src, other = _attention_mass(attention, spans, sources)
    return LensResult(
        model=model_name or getattr(model.config, "_name_or_path", "") or "model",
        prompt_tokens=len(ids),
        answer=tokenizer.decode(answer_ids, skip_special_tokens=True),
        generated=forced is None,
        layers=shown,
        layer_names=["emb" if n == 0 else str(n) for n in shown],
        n_blocks=parts.n_blocks,
        top_k=top_k,
        positions=positions,
        sources=src,
        other=other,
        seconds=round(time.perf_counter() - t0, 3),
    )


def _check_args(max_tokens: int, top_k: int, answer: str | None) -> None:
    if max_tokens < 1:
        raise ConfigError("--max-tokens must be at least 1")
    if top_k < 1:
        raise ConfigError("--top-k must be at least 1")
    if answer is not None and not answer:
        raise ConfigError("--answer is empty")


def layer_distributions(model: Any, ids: Sequence[int], every: int | None = None) -> Any:
    """Next-token probabilities after `ids` as read at each selected layer (one full forward
    pass, no cache): a float32 tensor of shape (layers, vocab), rows in `select_layers` order.
    The last row is softmax of the model's own logits."""
    require_torch()
    import torch

    parts = _ModelParts(model)
    with parts.capture() as captured, torch.no_grad():
        captured.active = True
        model(input_ids=torch.tensor([list(ids)]))
        return parts.layer_probs(captured.hidden, select_layers(parts.n_blocks, every))


class _Captured:
    """Hidden states of the last position, recorded by forward hooks while `active`."""

    def __init__(self) -> None:
        self.active = False
        self.hidden: dict[int, Any] = {}

    def clear(self) -> None:
        self.hidden = {}


class _ModelParts:
    """The pieces of a decoder-only model the lens reads: embeddings, blocks, final norm and
    output head (Llama-style names, or GPT-2's)."""

    def __init__(self, model: Any):
        base = getattr(model, "model", None) or getattr(model, "transformer", None)
        self.blocks = getattr(base, "layers", None) or getattr(base, "h", None)
        self.norm = getattr(base, "norm", None) or getattr(base, "ln_f", None)
        self.embed = model.get_input_embeddings()
        self.head = model.get_output_embeddings()
        if self.blocks is None or self.norm is None or self.head is None:
            raise ModelFileError(
                f"the logit lens cannot find the blocks, final norm and output head of "
                f"{type(model).__name__}"
            )
        self.n_blocks = len(self.blocks)

    def capture(self) -> Any:
        import contextlib

        captured = _Captured()

        def hook(layer: int) -> Any:
            def record(_module: Any, _inputs: Any, output: Any) -> None:
                if captured.active:
                    h = output[0] if isinstance(output, tuple) else output
                    captured.hidden[layer] = h[0, -1].detach()

            return record

        @contextlib.contextmanager
        def hooks() -> Any:
            handles = [self.embed.register_forward_hook(hook(0))]
            handles += [b.register_forward_hook(hook(i)) for i, b in enumerate(self.blocks, 1)]
            try:
                yield captured
            finally:
                for h in handles:
                    h.remove()

        return hooks()

    def layer_probs(self, hidden: dict[int, Any], layers: list[int]) -> Any:
        """Softmax(head(norm(h))) for each layer in `layers`, as float32 (layers, vocab)."""
        import torch

        stacked = torch.stack([hidden[n] for n in layers])
        logits = self.head(self.norm(stacked)).float()
        return torch.softmax(logits, dim=-1)


def _position(
    tokenizer: Any, index: int, target: int, probs: Any, layers: list[int], top_k: int
) -> LensPosition:
    import torch

    from charter.interp.loading import token_bytes

    def text(token: int) -> str:
        return token_bytes(tokenizer, token).decode("utf-8", errors="backslashreplace")

    k = min(top_k, probs.shape[-1])
    values, indices = torch.topk(probs, k, dim=-1)
    target_p = probs[:, target]
    ranks = (probs > target_p[:, None]).sum(dim=-1) + 1
    logp = torch.log(probs.clamp_min(1e-30))
    entropies = -(probs * logp).sum(dim=-1)
    readings = [
        LayerReading(
            layer=n,
            top=[
                TokenProb(id=int(t), token=text(int(t)), prob=round(float(p), 6))
                for p, t in zip(values[row], indices[row], strict=True)
            ],
            rank=int(ranks[row]),
            prob=round(float(target_p[row]), 6),
            entropy=round(float(entropies[row]), 4),
        )
        for row, n in enumerate(layers)
    ]
    return LensPosition(index=index, token_id=target, token=text(target), layers=readings)


def _source_spans(
    text: str, offsets: list[tuple[int, int]], sources: Sequence[str]
) -> list[tuple[int, int]]:
    """Token span [start, end) of each source in the rendered prompt, searched in order."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, source in enumerate(sources, 1):
        needle = source.strip()
        at = text.find(needle, cursor) if needle else -1
        if at < 0:
            raise ConfigError(f"source {i} does not appear in the prompt")
        end = at + len(needle)
        covered = [j for j, (s, e) in enumerate(offsets) if e > s and s < end and e > at]
        spans.append((covered[0], covered[-1] + 1))
        cursor = end
    return spans


def _attention_mass(
    attention: list[list[Any]],
    spans: list[tuple[int, int]],
    sources: Sequence[str],
) -> tuple[list[SourceAttention], SourceAttention | None]:
    """Per source (and for the rest of the context): attention mass per block and position."""
    if not spans or not attention:
        return [], None
    import torch

    # mass[position, block, span] and the remainder, computed separately so that their sum
    # checks the bookkeeping rather than being 1 by construction.
    # Each position sees one more key than the last; zeros for keys it could not see yet.
    width = attention[-1][0].shape[-1]
    rows = torch.stack(
        [
            torch.nn.functional.pad(torch.stack(per_block), (0, width - per_block[0].shape[-1]))
            for per_block in attention
        ]
    )  # (positions, blocks, keys)
    inside = torch.zeros(rows.shape[-1], dtype=torch.bool)
    masses = []
    for s, e in spans:
        masses.append(rows[..., s:e].sum(dim=-1))
        inside[s:e] = True
    rest = rows[..., ~inside].sum(dim=-1)

    def summary(index: int, text: str, span: tuple[int, int] | None, m: Any) -> SourceAttention:
        return SourceAttention(
            index=index,
            text=text,
            start=span[0] if span else None,
            end=span[1] if span else None,
            tokens=(span[1] - span[0]) if span else int((~inside).sum()),
            per_layer=[round(float(v), 6) for v in m.mean(dim=0)],
            per_position=[round(float(v), 6) for v in m.mean(dim=1)],
            mean=round(float(m.mean()), 6),
        )

    out = [
        summary(i, src, span, m)
        for i, (src, span, m) in enumerate(zip(sources, spans, masses, strict=True), 1)
    ]
    return out, summary(0, "(everything else)", None, rest)
