"""The retrieval stage: answers from a document collection, citing the passages they use.

Before generation it searches the collection for the last user message, declines to call
the model when no passage is close enough (answering that no source covers the question),
fits the best passages into the context and puts them in the system message as numbered
sources. After generation it checks the answer's `[n]` marks against those sources, removes
the ones that name none, and lists what was cited. Everything it saw and decided is in its
trace record (`charter.stages`, stage "retrieval"). See docs/retrieval.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from charter.errors import BackendError, RequestError
from charter.retrieval.citations import attribute, resolve
from charter.retrieval.prompt import Passage, filter_instructions, with_sources
from charter.types import Event, Message, Source, StageRecord, Turn

if TYPE_CHECKING:
    from charter.retrieval.search import Hit, Retriever

#: Fewer tokens than this left for sources (after the conversation and the answer's
#: reserve) is an error, not an answer from a sliver of a passage.
MIN_PASSAGE_TOKENS = 32


@dataclass(frozen=True)
class Budget:
    """How the prompt is measured: a token counter for messages and the context size.

    Either may be None (an upstream model whose tokenizer Charter does not have): then the
    passages are not fitted and the backend's own context check decides.
    """

    count: Callable[[list[Message]], int] | None
    context_size: int | None
    #: Tokens kept for the answer when the request sets no max_tokens.
    answer_reserve: int


def no_source_reply(collection: str, top: float | None, threshold: float) -> str:
    """The plain answer given, without calling the model, when no passage is close enough."""
    if top is None:
        found = "no passage in it is related to this question"
    else:
        found = f"the closest passage scores {top:.2f}, below the threshold of {threshold:.2f}"
    return (
        f"No source in the collection {collection!r} covers this question ({found}), so I "
        "will not answer it from the documents. Try rephrasing the question, or ingest "
        f"documents that cover it (charter ingest PATH --collection {collection})."
    )


class RetrievalStage:
    """Grounds the answer in retrieved passages (when the turn asks for a collection)."""

    name = "retrieval"

    def __init__(
        self,
        retriever: Callable[[], Retriever],
        budget: Callable[[], Budget],
        *,
        min_score: float,
        attribution: bool = False,
        filter_instructions: bool = True,
    ):
        self.retriever = retriever
        self.budget = budget
        self.min_score = min_score
        self.attribution = attribution
        self.filter_instructions = filter_instructions

    def run(self, turn: Turn, inner: Iterator[Event]) -> Iterator[Event]:
        request = turn.retrieval
        if request is None:
            yield from inner
            return
        t0 = time.perf_counter()
        # Only the newest question is searched: it is what the answer is about, and earlier
        # turns would pull the search towards topics the user has left (docs/retrieval.md).
        query = next((m.content for m in reversed(turn.messages) if m.role == "user"), "")
        try:
            hits = self.retriever().search(query, request.collection, k=request.k)
        except (OSError, ImportError) as exc:
            raise BackendError(
                f"searching collection {request.collection!r} failed: {exc}"
            ) from exc
        top = max((h.dense_score for h in hits if h.dense_score is not None), default=None)
        # Passages under the threshold are not given to the model either: for a small model
        # an unrelated passage is a distraction, not a source.
        relevant = [
            h for h in hits if h.dense_score is not None and h.dense_score >= self.min_score
        ]
        answered = bool(relevant)
        detail: dict[str, Any] = {
            "collection": request.collection,
            "k": request.k,
            "query": query,
            "score_kind": "dense cosine similarity",
            "threshold": self.min_score,
            "top_score": _round(top),
            "answered": answered,
        }
        record = StageRecord(self.name, 0.0, detail)
        turn.stages.append(record)
        if not answered:
            detail["hits"] = [_hit_row(h, None) for h in hits]
            record.ms = (time.perf_counter() - t0) * 1000
            yield from self._decline(turn, request.collection, top)
            return

        offset = max((int(s.id) for s in turn.sources if s.id.isdigit()), default=0)
        passages, sources, filtered = [], [], []
        for i, hit in enumerate(relevant, start=offset + 1):
            c = hit.chunk
            text = c.text
            if self.filter_instructions:
                text, removed = filter_instructions(text)
                filtered += [{"n": i, "sentence": s} for s in removed]
            passages.append(Passage(i, c.title, text, page=c.page, heading=c.heading))
            sources.append(
                Source(
                    id=str(i),
                    title=c.title,
                    text=c.text,
                    origin="retrieval",
                    doc_id=c.doc_id,
                    page=c.page,
                    start=c.start,
                    end=c.end,
                    score=_round(hit.dense_score),
                    chunk_id=c.id,
                )
            )
        passages, messages, fit = self._fit(turn, passages)
        kept = {p.n for p in passages}
        turn.messages = messages
        turn.sources.extend(s for s in sources if int(s.id) in kept)
        numbered = {id(h): n for n, h in enumerate(relevant, start=offset + 1)}
        detail["hits"] = [
            _hit_row(h, numbered.get(id(h)) if numbered.get(id(h)) in kept else None) for h in hits
        ]
        detail.update(fit)
        if filtered:
            detail["filtered"] = [f for f in filtered if f["n"] in kept]
        record.ms = (time.perf_counter() - t0) * 1000

        done = False
        for ev in inner:
            if ev.kind == "done":
                self._cite(turn, record, passages)
                done = True
            yield ev
        if not done:  # cancelled: the partial answer is stored; check it all the same
            self._cite(turn, record, passages)

    # -- before ---------------------------------------------------------------------------
    def _fit(
        self, turn: Turn, passages: list[Passage]
    ) -> tuple[list[Passage], list[Message], dict[str, Any]]:
        """The passages that fit the context (best first), the messages with them, and the
        trace of what was left out. The conversation itself is never cut."""
        budget = self.budget()
        if budget.count is None or budget.context_size is None:
            return passages, with_sources(turn.messages, passages), {}
        ctx = budget.context_size
        reserve = turn.params.max_tokens or min(budget.answer_reserve, ctx // 4)
        limit = ctx - reserve
        keep = list(passages)
        dropped: list[dict[str, Any]] = []
        messages = with_sources(turn.messages, keep)
        used = budget.count(messages)
        while used > limit and len(keep) > 1:
            p = keep.pop()
            dropped.append({"n": p.n, "reason": "context budget"})
            messages = with_sources(turn.messages, keep)
            used = budget.count(messages)
        fit: dict[str, Any] = {"prompt_tokens": used, "token_budget": limit}
        if used > limit:
            # Even the best passage alone is too long: keep as much of it as fits.
            base = budget.count(
                with_sources(turn.messages, [Passage(keep[0].n, keep[0].title, "")])
            )
            room = limit - base
            if room < MIN_PASSAGE_TOKENS:
                raise RequestError(
                    f"the conversation leaves no room for sources: the prompt is {base} tokens, "
                    f"the model's context is {ctx} and {reserve} are kept for the answer. "
                    "Start a new conversation or shorten the messages.",
                    param="messages",
                    code="context_length_exceeded",
                )
            top = keep[0]
            words = top.text.split(" ")
            share = room / max(1, used - base)
            while True:
                cut = max(1, int(len(words) * share))
                trimmed = Passage(
                    top.n, top.title, " ".join(words[:cut]) + " …", top.page, top.heading
                )
                messages = with_sources(turn.messages, [trimmed])
                used = budget.count(messages)
                if used <= limit or cut == 1:
                    break
                share *= 0.8
            keep = [trimmed]
            fit.update(prompt_tokens=used, truncated={"n": top.n, "words_kept": cut})
        if dropped:
            fit["dropped_passages"] = dropped
        return keep, messages, fit

    def _decline(self, turn: Turn, collection: str, top: float | None) -> Iterator[Event]:
        text = no_source_reply(collection, top, self.min_score)
        turn.t_first_token = time.perf_counter()
        turn.answer = text
        turn.final_text = text
        turn.finish_reason = "stop"
        turn.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        yield Event("token", text=text)
        yield Event("done", finish_reason="stop", usage=turn.usage)

    # -- after ----------------------------------------------------------------------------
    def _cite(self, turn: Turn, record: StageRecord, passages: list[Passage]) -> None:
        t0 = time.perf_counter()
        by_n = {int(s.id): s for s in turn.sources if s.id.isdigit()}
        checked = resolve(turn.answer, by_n)
        text, attributed = checked.text, []
        if self.attribution:
            text, attributed = attribute(text, {p.n: p.text for p in passages})
        order = resolve(text, by_n).cited
        turn.answer = text
        turn.final_text = text
        turn.citations = [
            _citation(n, by_n[n], "model" if n in checked.cited else "attributed") for n in order
        ]
        record.detail["marks"] = {
            "model": checked.cited,
            "attributed": attributed,
            "dropped": checked.dropped,
        }
        record.ms += (time.perf_counter() - t0) * 1000


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _hit_row(hit: Hit, n: int | None) -> dict[str, Any]:
    c = hit.chunk
    return {
        "n": n,
        "doc_id": c.doc_id,
        "title": c.title,
        "page": c.page,
        "dense_score": _round(hit.dense_score),
        "dense_rank": hit.dense_rank,
        "bm25_score": _round(hit.bm25_score),
        "bm25_rank": hit.bm25_rank,
        "fused_score": _round(hit.score),
        "chunk_id": c.id,
    }


def _citation(n: int, source: Source, by: str) -> dict[str, Any]:
    return {
        "n": n,
        "doc_id": source.doc_id,
        "title": source.title,
        "page": source.page,
        "start": source.start,
        "end": source.end,
        "quote": source.text,
        "score": source.score,
        "origin": source.origin,
        "by": by,
    }
