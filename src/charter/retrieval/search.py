"""Hybrid search: BM25 and dense candidates fused by reciprocal rank, then an optional reranker.

`Retriever.search` returns chunks (what an answer cites); `search_documents` folds them into
documents (what a TREC run ranks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from charter.errors import NotFoundError, RequestError
from charter.retrieval.embed import Embedder, get_embedder
from charter.retrieval.store import ChunkRecord, Store

#: hybrid: BM25 and dense fused; bm25: keywords only; dense: embeddings only.
MODES: tuple[str, ...] = ("hybrid", "bm25", "dense")
#: The constant of reciprocal rank fusion (Cormack et al. 2009): score = sum 1 / (k + rank).
RRF_K = 60
DEFAULT_CANDIDATES = 50


@dataclass(frozen=True)
class Hit:
    """A chunk found for a query. `score` orders hits (RRF in hybrid mode, else the raw score);
    the ranks (1-based) and raw scores say which search found it, None when that one did not."""

    chunk: ChunkRecord
    score: float
    bm25_rank: int | None = None
    dense_rank: int | None = None
    bm25_score: float | None = None
    dense_score: float | None = None


@dataclass(frozen=True)
class DocumentHit:
    """A document's best chunk score; `hits` are its chunks that were found, best first."""

    doc_id: str
    title: str
    score: float
    hits: list[Hit] = field(default_factory=list)


#: Reorders (and may cut) hits for a query, e.g. a cross-encoder. Gets `candidates` hits.
Reranker = Callable[[str, list[Hit]], list[Hit]]


class Retriever:
    """Searches one store; the embedder loads on the first dense or hybrid query."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder | None = None,
        reranker: Reranker | None = None,
        rrf_k: int = RRF_K,
    ):
        self.store = store
        self._embedder = embedder
        self.reranker = reranker
        self.rrf_k = rrf_k

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    def search(
        self,
        query: str,
        collection: str = "default",
        k: int = 5,
        mode: str = "hybrid",
        candidates: int = DEFAULT_CANDIDATES,
    ) -> list[Hit]:
        """The best `k` chunks for `query`, best first.

        Hybrid fuses the top `candidates` of BM25 and of dense search by reciprocal rank.
        Raises NotFoundError for an unknown collection (naming the known ones) and
        RequestError for an empty query, an unknown mode, or k < 1.
        """
        if mode not in MODES:
            raise RequestError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if k < 1:
            raise RequestError(f"k must be at least 1, not {k}")
        if not query.strip():
            raise RequestError("the query is empty")
        self.check_collection(collection)
        depth = max(candidates, k)
        ranked: dict[str, dict[str, float | int]] = {}
        if mode in ("bm25", "hybrid"):
            for rank, (cid, score) in enumerate(
                self.store.keyword_search(collection, query, depth), 1
            ):
                ranked.setdefault(cid, {}).update(bm25_rank=rank, bm25_score=score)
        if mode in ("dense", "hybrid"):
            vector = self.embedder.encode([query])[0]
            for rank, (cid, score) in enumerate(
                self.store.vector_search(collection, vector, depth), 1
            ):
                ranked.setdefault(cid, {}).update(dense_rank=rank, dense_score=score)
        scored = [(self._score(mode, r), cid) for cid, r in ranked.items()]
        # Ties: the better of the two ranks first, then the id (stable across runs).
        scored.sort(key=lambda s: (-s[0], _best_rank(ranked[s[1]]), s[1]))
        keep = scored if self.reranker else scored[:k]
        records = {c.id: c for c in self.store.chunks([cid for _, cid in keep])}
        hits = [
            Hit(
                records[cid],
                score,
                bm25_rank=ranked[cid].get("bm25_rank"),  # type: ignore[arg-type]
                dense_rank=ranked[cid].get("dense_rank"),  # type: ignore[arg-type]
                bm25_score=ranked[cid].get("bm25_score"),
                dense_score=ranked[cid].get("dense_score"),
            )
            for score, cid in keep
            if cid in records  # removed between the search and now
        ]
        if self.reranker:
            hits = self.reranker(query, hits)
        return hits[:k]

    def _score(self, mode: str, r: dict[str, float | int]) -> float:
        if mode == "bm25":
            return float(r["bm25_score"])
        if mode == "dense":
            return float(r["dense_score"])
        return sum(1.0 / (self.rrf_k + r[key]) for key in ("bm25_rank", "dense_rank") if key in r)

    def search_documents(
        self,
        query: str,
        collection: str = "default",
        k: int = 10,
        mode: str = "hybrid",
        candidates: int = DEFAULT_CANDIDATES,
    ) -> list[DocumentHit]:
        """The best `k` documents: chunk hits folded by document, each scored by its best chunk.

        Searches max(candidates, 3k) chunks deep so long documents do not crowd out k.
        """
        depth = max(candidates, 3 * k)
        hits = self.search(query, collection, k=depth, mode=mode, candidates=depth)
        docs: dict[str, list[Hit]] = {}
        for hit in hits:  # best first, so each document's list is too
            docs.setdefault(hit.chunk.doc_id, []).append(hit)
        out = [DocumentHit(d, h[0].chunk.title, h[0].score, h) for d, h in docs.items()]
        return out[:k]

    def check_collection(self, collection: str) -> None:
        """Raises NotFoundError naming `collection` and the known ones when it has no documents."""
        names = self.store.collection_names()
        if collection in names:
            return
        known = ", ".join(names) if names else "none yet (add documents with `charter ingest`)"
        raise NotFoundError(
            f"no collection {collection!r}; known collections: {known}", param="collection"
        )


def _best_rank(r: dict[str, float | int]) -> int:
    return int(min(r.get("bm25_rank", 10**9), r.get("dense_rank", 10**9)))
