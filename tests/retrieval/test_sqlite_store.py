"""What SQLiteStore adds to the store contract (tests/retrieval/test_store_contract.py): the
FTS5 tokenizer, query escaping, schema versions, WAL, and the vector cache."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from charter.errors import ConfigError
from charter.retrieval.sqlite_store import MIGRATIONS, SQLiteStore, fts_query
from charter.retrieval.store import ChunkRecord, DocumentRecord, open_store

DIM = 8


def put(store: SQLiteStore, collection: str, doc_id: str, texts: list[str], seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((len(texts), store.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [
        ChunkRecord(
            f"{collection}/{doc_id}/{i}", collection, doc_id, "T", i, t, 0, len(t), None, None
        )
        for i, t in enumerate(texts)
    ]
    doc = DocumentRecord(collection, doc_id, "T", None, f"sha-{seed}", len(texts), 0.0)
    store.replace_document(doc, chunks, vectors)
    return chunks, vectors


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "r.sqlite", dim=DIM)
    yield s
    s.close()


def test_fts_query_quotes_every_word_and_drops_stopwords() -> None:
    assert fts_query('C++ "quoted" AND -x') == '"c" OR "quoted" OR "x"'
    assert fts_query("what is the NEAR(a b)* title:foo") == '"near" OR "b" OR "title" OR "foo"'
    assert fts_query("the and of") == '"the" OR "and" OR "of"'  # only stopwords: kept
    assert fts_query("Crème brûlée") == '"crème" OR "brûlée"'
    assert fts_query("---") is None
    assert fts_query(" ".join(f"w{i}" for i in range(100))).count(" OR ") == 63


def test_stemming_and_diacritics(store: SQLiteStore) -> None:
    chunks, _ = put(store, "c", "d", ["The engines were running hot", "A café in Zürich"])
    assert [i for i, _ in store.keyword_search("c", "engine runs", 5)] == [chunks[0].id]
    assert [i for i, _ in store.keyword_search("c", "cafe zurich", 5)] == [chunks[1].id]
    assert [i for i, _ in store.keyword_search("c", "CAFÉ", 5)] == [chunks[1].id]


def test_title_and_heading_are_searched(store: SQLiteStore) -> None:
    doc = DocumentRecord("c", "d", "Aerodynamics handbook", None, "s", 1, 0.0)
    chunk = ChunkRecord("x", "c", "d", doc.title, 0, "body text", 0, 9, None, "Wing flutter")
    store.replace_document(doc, [chunk], np.eye(1, DIM, dtype=np.float32))
    assert store.keyword_search("c", "aerodynamics", 5)[0][0] == "x"
    assert store.keyword_search("c", "flutter", 5)[0][0] == "x"


def test_the_collection_filter_is_not_a_searchable_word(store: SQLiteStore) -> None:
    """Each collection is a number in a hidden column; searching that number finds only
    chunks that contain it."""
    (alpha,), _ = put(store, "c", "d1", ["alpha"])
    (one,), _ = put(store, "c", "d2", ["beta 1 two"])
    scope = store._db.execute("SELECT id FROM collections WHERE name = 'c'").fetchone()[0]
    assert scope == 1
    assert [i for i, _ in store.keyword_search("c", "1", 10)] == [one.id]
    assert [i for i, _ in store.keyword_search("c", "scope alpha", 10)] == [alpha.id]


def test_a_recreated_collection_is_never_mistaken_for_the_cached_one(tmp_path: Path) -> None:
    a = SQLiteStore(tmp_path / "r.sqlite", dim=DIM)
    b = SQLiteStore(tmp_path / "r.sqlite", dim=DIM)
    try:
        put(a, "c", "old", ["one"], seed=1)
        q = np.eye(1, DIM, dtype=np.float32)[0]
        assert [i for i, _ in a.vector_search("c", q, 10)] == ["c/old/0"]
        b.remove_collection("c")
        put(b, "c", "new", ["two"], seed=2)  # same name, same number of writes
        assert [i for i, _ in a.vector_search("c", q, 10)] == ["c/new/0"]
    finally:
        a.close()
        b.close()


def test_collection_names_agree_with_collections(store: SQLiteStore) -> None:
    def names() -> list[str]:
        assert store.collection_names() == [n for n, _, _ in store.collections()]
        return store.collection_names()

    put(store, "c", "d1", ["one"])
    put(store, "c", "d2", ["two"])
    put(store, "e", "x", ["three"])
    assert names() == ["c", "e"]
    store.remove_document("c", "d1")
    assert names() == ["c", "e"]
    store.remove_document("c", "d2")  # its last document: the collection is gone
    assert names() == ["e"]
    store.remove_collection("e")
    assert names() == []


def test_random_punctuation_never_breaks_a_query(store: SQLiteStore) -> None:
    put(store, "c", "d", ["some text about anything"])
    rng = np.random.default_rng(3)
    alphabet = list("abc \"*^:()-+&|!~\\'{}[],.;<>=@#$%NEAR AND OR NOT") + ["NEAR(", "text:"]
    for _ in range(300):
        query = "".join(rng.choice(alphabet, size=int(rng.integers(1, 15))))
        store.keyword_search("c", query, 5)  # must not raise


def test_vector_search_is_exact(store: SQLiteStore) -> None:
    _, vectors = put(store, "c", "d", [f"t{i}" for i in range(500)], seed=1)
    q = np.random.default_rng(2).standard_normal(DIM).astype(np.float32)
    q /= np.linalg.norm(q)
    expected = np.argsort(-(vectors @ q))[:10]
    got = store.vector_search("c", q, 10)
    assert [i for i, _ in got] == [f"c/d/{j}" for j in expected]
    assert [s for _, s in got] == pytest.approx((vectors @ q)[expected], abs=1e-6)


def test_vector_cache_is_reused_and_follows_writes_from_other_connections(tmp_path: Path) -> None:
    a = SQLiteStore(tmp_path / "r.sqlite", dim=DIM)
    b = SQLiteStore(tmp_path / "r.sqlite", dim=DIM)
    try:
        put(a, "c", "d1", ["one"], seed=1)
        q = np.eye(1, DIM, dtype=np.float32)[0]
        assert len(a.vector_search("c", q, 10)) == 1
        cached = a._vectors["c"][2]
        a.vector_search("c", q, 10)
        assert a._vectors["c"][2] is cached  # unchanged collection: not reloaded
        put(b, "c", "d2", ["two"], seed=2)  # another connection (as another process would)
        assert {i for i, _ in a.vector_search("c", q, 10)} == {"c/d1/0", "c/d2/0"}
        b.remove_document("c", "d1")
        assert [i for i, _ in a.vector_search("c", q, 10)] == ["c/d2/0"]
    finally:
        a.close()
        b.close()


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    SQLiteStore(path, dim=DIM).close()
    with SQLiteStore(path, dim=DIM) as again:  # reopening applies nothing twice
        assert again.schema_version() == MIGRATIONS[-1][0]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = db.execute("SELECT version, name FROM retrieval_schema").fetchall()
    assert rows == [(n, name) for n, name, _ in MIGRATIONS]
    db.execute("INSERT INTO retrieval_schema VALUES (99, 'future', 0)")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="schema version 99, newer than this Charter"):
        SQLiteStore(path, dim=DIM)


def test_a_file_that_is_not_a_store_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database " * 100)
    with pytest.raises(ConfigError, match="is not a usable retrieval store") as err:
        open_store(bad)
    assert "\n" not in str(err.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot open the retrieval store"):
        open_store(blocker / "sub" / "r.sqlite")


def test_open_store_picks_sqlite_for_paths(tmp_path: Path) -> None:
    with open_store(tmp_path / "deep" / "r.sqlite") as s:
        assert isinstance(s, SQLiteStore) and s.dim == 384
    assert (tmp_path / "deep" / "r.sqlite").exists()
