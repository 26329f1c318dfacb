"""Retriever: reciprocal rank fusion, modes, the reranker seam, documents from chunks, and the
real embedder (parity with sentence-transformers, and that dense search finds meaning)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from charter.errors import NotFoundError, RequestError
from charter.retrieval.embed import HashEmbedder, MiniLMEmbedder, get_embedder, model_path
from charter.retrieval.search import Hit, Retriever
from charter.retrieval.sqlite_store import SQLiteStore
from charter.retrieval.store import ChunkRecord, DocumentRecord, Store


@pytest.fixture(scope="module", autouse=True)
def _torch_threads_restored() -> Iterator[None]:
    """get_embedder() sets torch to one thread for the process; other tests get theirs back."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """The real model, loaded once for the whole session (get_embedder is a singleton)."""
    return get_embedder().load()


# -- fusion on scripted rankings ---------------------------------------------------------
class ScriptedStore(Store):
    """Returns fixed keyword and vector rankings; only what Retriever calls is real."""

    dim = 4

    def __init__(self, bm25: list[tuple[str, float]], dense: list[tuple[str, float]]):
        self.bm25, self.dense = bm25, dense
        self.asked: list[tuple[str, int]] = []

    def keyword_search(self, collection, query, k):
        self.asked.append(("bm25", k))
        return self.bm25[:k]

    def vector_search(self, collection, vector, k):
        self.asked.append(("dense", k))
        return self.dense[:k]

    def chunks(self, ids):
        doc = {"a": "d1", "b": "d1", "c": "d2", "d": "d3", "e": "d3"}
        return [ChunkRecord(i, "c", doc[i], f"T{doc[i]}", 0, i, 0, 1, None, None) for i in ids]

    def collections(self):
        return [("c", 3, 5), ("other", 1, 1)]

    def document_hash(self, collection, doc_id):
        raise NotImplementedError

    def replace_document(self, doc, chunks, vectors):
        raise NotImplementedError

    def remove_document(self, collection, doc_id):
        raise NotImplementedError

    def remove_collection(self, collection):
        raise NotImplementedError

    def documents(self, collection):
        raise NotImplementedError

    def close(self):
        pass


def scripted() -> Retriever:
    store = ScriptedStore(
        bm25=[("a", 9.0), ("b", 7.0), ("c", 5.0)],
        dense=[("c", 0.9), ("d", 0.8), ("a", 0.7), ("e", 0.1)],
    )
    return Retriever(store, HashEmbedder(4))


def test_hybrid_is_reciprocal_rank_fusion() -> None:
    hits = scripted().search("q", "c", k=10, candidates=50)
    rrf = {
        "a": 1 / 61 + 1 / 63,
        "c": 1 / 63 + 1 / 61,
        "b": 1 / 62,
        "d": 1 / 62,
        "e": 1 / 64,
    }
    assert [h.chunk.id for h in hits] == ["a", "c", "b", "d", "e"]  # ties: better rank first
    assert [h.score for h in hits] == pytest.approx([rrf[h.chunk.id] for h in hits])
    a, c = hits[0], hits[1]
    assert (a.bm25_rank, a.dense_rank, a.bm25_score, a.dense_score) == (1, 3, 9.0, 0.7)
    assert (c.bm25_rank, c.dense_rank) == (3, 1)
    assert (hits[3].bm25_rank, hits[3].dense_rank, hits[3].bm25_score) == (None, 2, None)


def test_modes_use_one_ranking_and_candidates_set_the_depth() -> None:
    r = scripted()
    bm25 = r.search("q", "c", k=2, mode="bm25", candidates=30)
    assert [(h.chunk.id, h.score, h.dense_rank) for h in bm25] == [
        ("a", 9.0, None),
        ("b", 7.0, None),
    ]
    dense = r.search("q", "c", k=2, mode="dense", candidates=30)
    assert [(h.chunk.id, h.score, h.bm25_rank) for h in dense] == [
        ("c", 0.9, None),
        ("d", 0.8, None),
    ]
    assert r.store.asked == [("bm25", 30), ("dense", 30)]


def test_reranker_gets_every_candidate_and_decides_the_order() -> None:
    seen: list[list[str]] = []

    def reverse(query: str, hits: list[Hit]) -> list[Hit]:
        seen.append([h.chunk.id for h in hits])
        return list(reversed(hits))

    r = scripted()
    r.reranker = reverse
    hits = r.search("q", "c", k=2)
    assert seen == [["a", "c", "b", "d", "e"]]
    assert [h.chunk.id for h in hits] == ["e", "d"]


def test_documents_are_scored_by_their_best_chunk() -> None:
    docs = scripted().search_documents("q", "c", k=2)
    assert [(d.doc_id, [h.chunk.id for h in d.hits]) for d in docs] == [
        ("d1", ["a", "b"]),
        ("d2", ["c"]),
    ]
    assert docs[0].score == pytest.approx(1 / 61 + 1 / 63)
    assert docs[0].title == "Td1"


def test_unknown_collection_names_it_and_the_known_ones() -> None:
    with pytest.raises(NotFoundError) as err:
        scripted().search("q", "nope")
    assert str(err.value) == "no collection 'nope'; known collections: c, other"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "  "}, "the query is empty"),
        ({"k": 0}, "k must be at least 1"),
        ({"mode": "fuzzy"}, "unknown search mode 'fuzzy'"),
    ],
)
def test_bad_requests(kwargs: dict, message: str) -> None:
    args = {"query": "q", "collection": "c", **kwargs}
    with pytest.raises(RequestError, match=message):
        scripted().search(**args)


def test_empty_store_says_how_to_add_documents(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "r.sqlite") as store, pytest.raises(NotFoundError) as err:
        Retriever(store, HashEmbedder()).search("q", "default")
    assert "none yet" in str(err.value) and "charter ingest" in str(err.value)


# -- the real embedder -------------------------------------------------------------------
def test_minilm_matches_sentence_transformers(minilm: MiniLMEmbedder) -> None:
    """Same numbers as the reference implementation, including truncation at 256 tokens."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    texts = [
        "The cat sat on the mat.",
        "Quantum chromodynamics describes the strong interaction.",
        "",
        "Héllo wörld, ünïcode!",
        "long " * 400,
    ]
    reference = SentenceTransformer(str(model_path()), device="cpu", local_files_only=True)
    expected = reference.encode(texts, convert_to_numpy=True)
    got = minilm.encode(texts)
    assert got.dtype == np.float32 and got.shape == (5, 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_minilm_batches_keep_the_input_order(minilm: MiniLMEmbedder) -> None:
    texts = [f"sentence number {i} " * (i % 5 + 1) for i in range(12)]
    minilm.batch_size = 4  # three batches, each sorted by length inside encode
    try:
        together = minilm.encode(texts)
    finally:
        minilm.batch_size = 32
    one_by_one = np.stack([minilm.encode([t])[0] for t in texts[:5]])
    np.testing.assert_allclose(together[:5], one_by_one, atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


@pytest.fixture
def meaning_store(tmp_path: Path, minilm: MiniLMEmbedder) -> Iterator[Store]:
    texts = [
        "Automobiles need regular oil changes to keep the engine healthy.",
        "The recipe calls for flour, sugar and two eggs.",
        "Photosynthesis turns sunlight into chemical energy in plants.",
    ]
    store = SQLiteStore(tmp_path / "r.sqlite")
    vectors = minilm.encode(texts)
    for i, text in enumerate(texts):
        doc = DocumentRecord("c", f"d{i}", f"doc {i}", None, "s", 1, 0.0)
        chunk = ChunkRecord(f"k{i}", "c", f"d{i}", doc.title, 0, text, 0, len(text), None, None)
        store.replace_document(doc, [chunk], vectors[i : i + 1])
    yield store
    store.close()


def test_dense_search_finds_meaning_without_shared_words(
    meaning_store: Store, minilm: MiniLMEmbedder
) -> None:
    r = Retriever(meaning_store, minilm)
    assert r.search("car maintenance", "c", k=3, mode="bm25") == []
    assert [h.chunk.id for h in r.search("car maintenance", "c", k=1, mode="dense")] == ["k0"]
    assert [h.chunk.id for h in r.search("baking a cake", "c", k=1)] == ["k1"]
    best = r.search("how do plants make food from light", "c", k=1)[0]
    assert best.chunk.id == "k2" and best.dense_rank == 1
