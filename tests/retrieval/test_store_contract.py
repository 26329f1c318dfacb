"""One contract for every retrieval Store: the same tests on SQLiteStore (a file in tmp_path)
and PgStore (a real PostgreSQL + pgvector that this module starts, see tests/retrieval/pg.py).

Documented differences the contract leaves open: keyword scores (BM25 vs ts_rank_cd) are
compared only within one query; ties may come back in any order, so no test has ties.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from charter.errors import BackendError, ConfigError
from charter.retrieval.sqlite_store import SQLiteStore
from charter.retrieval.store import ChunkRecord, DocumentRecord, Store, chunk_id, open_store
from tests.retrieval.pg import PgServer, PgUnavailable

DIM = 8
OpenStore = Callable[..., Store]


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL for the session (each test gets its own database in it)."""
    try:
        server = PgServer.start()
    except PgUnavailable as err:
        # CHARTER_REQUIRE_PG=1 (for CI) makes a server that cannot start a failure instead.
        if os.environ.get("CHARTER_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL test server cannot start: {err}")
        pytest.skip(f"PostgreSQL test server cannot start here: {err}")
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database (superuser DSN, no password)."""
    dsn = pg_server.create_database()
    yield dsn
    pg_server.drop_database(dsn)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def open_at(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """open_at(dim=DIM) -> a store at this test's one location (call again to reopen it)."""
    opened: list[Store] = []
    if request.param == "sqlite":

        def make(dim: int = DIM) -> Store:
            return SQLiteStore(tmp_path / "r.sqlite", dim=dim)

    else:
        from charter.retrieval.pg_store import PgStore

        dsn = request.getfixturevalue("pg_dsn")

        def make(dim: int = DIM) -> Store:
            return PgStore(dsn, dim=dim)

    def factory(dim: int = DIM) -> Store:
        store = make(dim)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_at: OpenStore) -> Store:
    return open_at()


# -- helpers -----------------------------------------------------------------------------
def unit(*values: float) -> np.ndarray:
    """A DIM-long float32 vector starting with `values`, L2-normalised."""
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


def cosine_to_e0(cos: float, axis: int) -> np.ndarray:
    """A unit vector whose cosine with e0 is exactly `cos` (the rest along `axis`)."""
    v = np.zeros(DIM, dtype=np.float32)
    v[0], v[axis] = cos, np.sqrt(1.0 - cos * cos)
    return v


def document(
    collection: str,
    doc_id: str,
    texts: list[str],
    *,
    sha: str = "sha-1",
    vectors: np.ndarray | None = None,
    ids: list[str] | None = None,
) -> tuple[DocumentRecord, list[ChunkRecord], np.ndarray]:
    """A document, its chunks (one per text) and their vectors (seeded by doc_id if not given)."""
    doc = DocumentRecord(
        collection, doc_id, f"Title of {doc_id}", f"/src/{doc_id}", sha, len(texts), 1.5
    )
    chunks, offset = [], 0
    for i, text in enumerate(texts):
        chunks.append(
            ChunkRecord(
                id=ids[i] if ids else chunk_id(collection, doc_id, sha, i),
                collection=collection,
                doc_id=doc_id,
                title=doc.title,
                ordinal=i,
                text=text,
                start=offset,
                end=offset + len(text),
                page=i + 1 if i % 2 else None,
                heading=f"Section {i}" if i % 2 == 0 else None,
            )
        )
        offset += len(text) + 1
    if vectors is None:
        rng = np.random.default_rng(sum(map(ord, collection + doc_id + sha)))
        vectors = rng.standard_normal((len(texts), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return doc, chunks, vectors


def put(store: Store, *args, **kw) -> tuple[DocumentRecord, list[ChunkRecord], np.ndarray]:
    doc, chunks, vectors = document(*args, **kw)
    store.replace_document(doc, chunks, vectors)
    return doc, chunks, vectors


def ids_of(results: list[tuple[str, float]]) -> list[str]:
    return [chunk for chunk, _score in results]


def assert_intact(store: Store, doc: DocumentRecord, chunks: list[ChunkRecord], word: str) -> None:
    """`doc` is stored exactly as given, and found by keyword `word` and by its own vector."""
    assert store.document_hash(doc.collection, doc.doc_id) == doc.sha256
    assert store.documents(doc.collection) == [doc]
    assert store.chunks([c.id for c in chunks]) == chunks
    assert store.collections() == [(doc.collection, 1, len(chunks))]
    assert ids_of(store.keyword_search(doc.collection, word, 10)) == [chunks[0].id]


# -- writes ------------------------------------------------------------------------------
def test_round_trip(store: Store) -> None:
    doc, chunks, vectors = document("docs", "a.md", ["alpha one", "beta two", "gamma three"])
    assert store.document_hash("docs", "a.md") is None
    store.replace_document(doc, chunks, vectors)
    assert store.dim == DIM
    assert store.document_hash("docs", "a.md") == "sha-1"
    assert store.documents("docs") == [doc]
    assert store.chunks([c.id for c in chunks]) == chunks  # page/heading/offsets, None kept
    assert store.collections() == [("docs", 1, 3)]


def test_replace_swaps_every_chunk(store: Store) -> None:
    _, old, _ = put(store, "docs", "a.md", ["obsolete walrus", "more walrus", "even more"])
    doc, new, _ = put(store, "docs", "a.md", ["fresh penguin", "second"], sha="sha-2")
    assert store.document_hash("docs", "a.md") == "sha-2"
    assert store.documents("docs") == [doc]
    assert store.collections() == [("docs", 1, 2)]
    assert store.chunks([c.id for c in old]) == []
    assert store.chunks([c.id for c in new]) == new
    assert store.keyword_search("docs", "walrus", 10) == []
    assert ids_of(store.keyword_search("docs", "penguin", 10)) == [new[0].id]
    assert set(ids_of(store.vector_search("docs", unit(1.0), 10))) == {c.id for c in new}


def test_replacing_with_same_content_is_idempotent(store: Store) -> None:
    """Ingest skips a document whose hash is stored; a forced re-ingest leaves one copy."""
    doc, chunks, vectors = document("docs", "a.md", ["alpha", "beta"])
    for _ in range(3):
        store.replace_document(doc, chunks, vectors)
        assert store.document_hash("docs", "a.md") == doc.sha256
    assert store.documents("docs") == [doc]
    assert store.collections() == [("docs", 1, 2)]
    assert ids_of(store.keyword_search("docs", "alpha beta", 10)).count(chunks[0].id) == 1
    assert len(store.vector_search("docs", unit(1.0), 10)) == 2


def test_a_document_without_chunks(store: Store) -> None:
    doc, _, _ = put(store, "docs", "empty.md", [], vectors=np.zeros((0, DIM), np.float32))
    assert store.documents("docs") == [doc]
    assert store.collections() == [("docs", 1, 0)]
    assert store.vector_search("docs", unit(1.0), 5) == []


@pytest.mark.parametrize(
    "shape", [(2, DIM + 1), (3, DIM), (1, DIM), (DIM,)], ids=["wide", "extra", "short", "flat"]
)
def test_bad_vectors_leave_the_old_document(store: Store, shape: tuple[int, ...]) -> None:
    doc, chunks, _ = put(store, "docs", "a.md", ["keepsake text", "second"])
    new_doc, new_chunks, _ = document("docs", "a.md", ["replacement", "text"], sha="sha-2")
    with pytest.raises(ValueError, match=str(DIM)):
        store.replace_document(new_doc, new_chunks, np.ones(shape, np.float32))
    assert_intact(store, doc, chunks, "keepsake")


@pytest.mark.parametrize("clash", ["duplicate-in-document", "another-documents-chunk"])
def test_failure_mid_replace_rolls_back(store: Store, clash: str) -> None:
    """The write fails after the old chunks were deleted: the whole replace is undone."""
    doc, chunks, _ = put(store, "docs", "a.md", ["keepsake text", "second"])
    _, others, _ = put(store, "other", "b.md", ["elsewhere"])
    taken = "dup-id" if clash == "duplicate-in-document" else others[0].id
    new_doc, new_chunks, vectors = document(
        "docs", "a.md", ["replacement", "text"], sha="sha-2", ids=[taken, taken]
    )
    with pytest.raises(Exception):  # noqa: B017 - each engine reports its own integrity error
        store.replace_document(new_doc, new_chunks, vectors)
    assert store.document_hash("docs", "a.md") == doc.sha256
    assert store.documents("docs") == [doc]
    assert store.chunks([c.id for c in chunks]) == chunks
    assert ids_of(store.keyword_search("docs", "keepsake", 10)) == [chunks[0].id]
    assert store.keyword_search("docs", "replacement", 10) == []
    assert store.chunks([others[0].id]) == others
    # ... and the store still takes writes.
    store.replace_document(*document("docs", "a.md", ["replacement", "text"], sha="sha-2"))
    assert store.document_hash("docs", "a.md") == "sha-2"


def test_remove_document(store: Store) -> None:
    _, gone, _ = put(store, "docs", "a.md", ["unicorn text", "more"])
    kept, kept_chunks, _ = put(store, "docs", "b.md", ["narwhal text"])
    assert store.remove_document("docs", "a.md") is True
    assert store.remove_document("docs", "a.md") is False
    assert store.document_hash("docs", "a.md") is None
    assert store.chunks([c.id for c in gone]) == []
    assert store.keyword_search("docs", "unicorn", 10) == []
    assert ids_of(store.vector_search("docs", unit(1.0), 10)) == [kept_chunks[0].id]
    assert store.documents("docs") == [kept]
    assert store.collections() == [("docs", 1, 1)]


def test_remove_collection(store: Store) -> None:
    put(store, "a", "1.md", ["one"])
    put(store, "a", "2.md", ["two", "three"])
    kept, kept_chunks, _ = put(store, "b", "1.md", ["one"])
    assert store.remove_collection("a") == 2
    assert store.remove_collection("a") == 0
    assert store.collections() == [("b", 1, 1)]
    assert store.documents("a") == []
    assert store.keyword_search("a", "one", 10) == []
    assert store.vector_search("a", unit(1.0), 10) == []
    assert store.documents("b") == [kept]
    assert ids_of(store.keyword_search("b", "one", 10)) == [kept_chunks[0].id]


def test_collections_count_documents_and_chunks_by_name(store: Store) -> None:
    put(store, "zeta", "1.md", ["a", "b", "c"])
    put(store, "alpha", "1.md", ["a"])
    put(store, "alpha", "2.md", ["a", "b"])
    put(store, "mid", "x.md", [], vectors=np.zeros((0, DIM), np.float32))
    assert store.collections() == [("alpha", 2, 3), ("mid", 1, 0), ("zeta", 1, 3)]
    assert store.collection_names() == ["alpha", "mid", "zeta"]
    assert [d.doc_id for d in store.documents("alpha")] == ["1.md", "2.md"]


# -- keyword search ----------------------------------------------------------------------
KEYWORD_TEXTS = [
    "Brewing beer is zymurgy: the chemistry of fermentation in the brewery.",
    "Fermentation also makes bread rise in a warm kitchen.",
    "Templates in C++ are rarely \"quoted\" in O'Brien's notes on compilers.",
    "Nothing relevant is written here about gardens and hedges.",
]


@pytest.fixture
def keyword_chunks(store: Store) -> list[ChunkRecord]:
    return put(store, "docs", "k.md", KEYWORD_TEXTS)[1]


def test_keyword_search_finds_exact_terms_best_first(
    store: Store, keyword_chunks: list[ChunkRecord]
) -> None:
    zymurgy, bread, cpp, _garden = (c.id for c in keyword_chunks)
    assert ids_of(store.keyword_search("docs", "zymurgy", 10)) == [zymurgy]
    assert ids_of(store.keyword_search("docs", "compilers", 10)) == [cpp]
    results = store.keyword_search("docs", "zymurgy fermentation", 10)
    assert ids_of(results) == [zymurgy, bread]  # both words beat one word; the rest not found
    assert results[0][1] > results[1][1] > 0
    assert ids_of(store.keyword_search("docs", "zymurgy fermentation", 1)) == [zymurgy]
    assert store.keyword_search("docs", "zymurgy", 0) == []
    assert store.keyword_search("docs", "xylophone", 10) == []


@pytest.mark.parametrize(
    "query",
    [
        'C++ "quoted" AND -x',
        "O'Brien's compilers",
        "templates NOT -C++",
        'NEAR(templates "quoted"',
        "text:templates OR",
        "templat* ^compilers",
        "compilers' AND (OR) | ! & <-> :* \\",
    ],
)
def test_keyword_query_operators_are_plain_words(
    store: Store, keyword_chunks: list[ChunkRecord], query: str
) -> None:
    assert ids_of(store.keyword_search("docs", query, 10))[:1] == [keyword_chunks[2].id]


@pytest.mark.parametrize("query", ["", "   ", '"', "()", "*", "-", "&& ||", "'''"])
def test_keyword_query_without_words_finds_nothing(
    store: Store, keyword_chunks: list[ChunkRecord], query: str
) -> None:
    assert store.keyword_search("docs", query, 10) == []


# -- vector search -----------------------------------------------------------------------
def test_vector_search_returns_cosine_similarity_best_first(store: Store) -> None:
    cosines = [0.1, 0.9, -0.3, 0.5]
    vectors = np.stack([cosine_to_e0(c, axis=i + 1) for i, c in enumerate(cosines)])
    _, chunks, _ = put(store, "docs", "v.md", ["w", "x", "y", "z"], vectors=vectors)
    results = store.vector_search("docs", unit(1.0), 10)
    expected = sorted(zip(cosines, (c.id for c in chunks), strict=True), reverse=True)
    assert ids_of(results) == [chunk for _cos, chunk in expected]
    assert [score for _id, score in results] == pytest.approx([c for c, _ in expected], abs=1e-5)
    assert ids_of(store.vector_search("docs", unit(1.0), 2)) == [chunks[1].id, chunks[3].id]
    assert store.vector_search("docs", unit(1.0), 0) == []
    # A query that is one of the stored vectors finds itself with similarity 1.
    top = store.vector_search("docs", vectors[2], 1)
    assert ids_of(top) == [chunks[2].id] and top[0][1] == pytest.approx(1.0, abs=1e-5)


# -- reads -------------------------------------------------------------------------------
def test_chunks_come_back_in_the_order_asked(store: Store) -> None:
    _, chunks, _ = put(store, "docs", "a.md", ["zero", "one", "two", "three"])
    _, other, _ = put(store, "other", "b.md", ["elsewhere"])
    asked = [chunks[2].id, other[0].id, "no-such-chunk", chunks[0].id, chunks[3].id]
    assert store.chunks(asked) == [chunks[2], other[0], chunks[0], chunks[3]]
    assert store.chunks([]) == []


def test_collections_are_isolated(store: Store) -> None:
    """The same doc_id in two collections: two documents; searches never cross over."""
    same = unit(1.0, 1.0)
    a_doc, a, _ = put(store, "a", "shared.md", ["apple orchard"], vectors=same[None], sha="sa")
    b_doc, b, _ = put(store, "b", "shared.md", ["apple banana"], vectors=same[None], sha="sb")
    assert store.document_hash("a", "shared.md") == "sa"
    assert store.document_hash("b", "shared.md") == "sb"
    assert ids_of(store.keyword_search("a", "apple banana", 10)) == [a[0].id]
    assert store.keyword_search("a", "banana", 10) == []
    assert ids_of(store.vector_search("a", same, 10)) == [a[0].id]
    assert ids_of(store.vector_search("b", same, 10)) == [b[0].id]
    assert store.remove_document("a", "shared.md") is True
    assert store.documents("a") == []
    assert store.documents("b") == [b_doc]
    assert ids_of(store.keyword_search("b", "apple", 10)) == [b[0].id]
    assert store.collections() == [("b", 1, 1)]
    assert a_doc != b_doc


def test_unknown_collection_is_empty_not_an_error(store: Store) -> None:
    put(store, "docs", "a.md", ["alpha"])
    assert store.document_hash("nope", "a.md") is None
    assert store.documents("nope") == []
    assert store.keyword_search("nope", "alpha", 10) == []
    assert store.vector_search("nope", unit(1.0), 10) == []
    assert store.remove_document("nope", "a.md") is False
    assert store.remove_collection("nope") == 0
    assert store.collections() == [("docs", 1, 1)]


def test_empty_store(store: Store) -> None:
    assert store.collections() == []
    assert store.chunks(["c-anything"]) == []
    assert store.keyword_search("docs", "alpha", 10) == []
    assert store.vector_search("docs", unit(1.0), 10) == []


# -- dimensions and reopening ------------------------------------------------------------
def test_dimension_mismatch_is_a_clear_error(open_at: OpenStore) -> None:
    store = open_at()
    put(store, "docs", "a.md", ["alpha"])
    with pytest.raises(ValueError, match=f"{DIM + 1}.*{DIM}"):
        store.vector_search("docs", np.ones(DIM + 1, np.float32), 5)
    doc, chunks, _ = document("docs", "b.md", ["beta"])
    with pytest.raises(ValueError, match=str(DIM)):
        store.replace_document(doc, chunks, np.ones((1, DIM * 2), np.float32))
    store.close()
    with pytest.raises(ConfigError, match=f"{DIM}-dimensional.*{DIM * 2}") as err:
        open_at(dim=DIM * 2)
    assert "\n" not in str(err.value)


def test_reopening_keeps_everything(open_at: OpenStore) -> None:
    store = open_at()
    doc, chunks, vectors = put(store, "docs", "a.md", ["persistent aardvark", "second"])
    store.close()
    again = open_at()
    assert_intact(again, doc, chunks, "aardvark")
    assert ids_of(again.vector_search("docs", vectors[1], 1)) == [chunks[1].id]


# -- PostgreSQL only ---------------------------------------------------------------------
pg_only = pytest.mark.slow


@pg_only
def test_pg_open_store_routes_postgresql_urls(pg_dsn: str) -> None:
    from charter.retrieval.pg_store import PgStore

    with open_store(pg_dsn, dim=DIM) as store:
        assert isinstance(store, PgStore)
        put(store, "docs", "a.md", ["routed"])
    with open_store(pg_dsn, dim=DIM) as store:
        assert store.collections() == [("docs", 1, 1)]


@pg_only
def test_pg_unreachable_server_is_one_line_without_the_password(pg_server: PgServer) -> None:
    from charter.retrieval.pg_store import PgStore

    missing = pg_server.base / "no-such-dir"
    with pytest.raises(ConfigError) as err:
        PgStore(f"postgresql://charter:Sup3rSecret@/db?host={missing}", dim=DIM)
    message = str(err.value)
    assert message.startswith("Cannot connect to PostgreSQL at postgresql://charter@/db?host=")
    assert "Sup3rSecret" not in message and "\n" not in message
    # libpq quotes a malformed DSN's parts in its own messages: the password never shows.
    for dsn in (
        "postgresql://charter:Sup3r Secret@localhost/db",
        "postgresql://charter:Sup3rSecret@localhost:notaport/db",
        "host=localhost password='Sup3rSecret",
        f"host={missing} user=charter password=Sup3rSecret",
    ):
        with pytest.raises(ConfigError) as err:
            PgStore(dsn, dim=DIM)
        assert "Sup3r" not in str(err.value) and "\n" not in str(err.value)


@pg_only
def test_pg_role_that_may_not_create_the_extension(pg_server: PgServer, pg_dsn: str) -> None:
    from charter.retrieval.pg_store import PgStore

    pg_server.sql(pg_dsn, "DROP ROLE IF EXISTS reader")
    pg_server.sql(pg_dsn, "CREATE ROLE reader LOGIN PASSWORD 'Rd3rSecret'")
    try:
        reader = pg_dsn.replace("postgresql://postgres@", "postgresql://reader:Rd3rSecret@")
        with pytest.raises(ConfigError, match="CREATE EXTENSION vector") as err:
            PgStore(reader, dim=DIM)
        assert "'reader'" in str(err.value) and "Rd3rSecret" not in str(err.value)
        # Once an administrator has set it up, the unprivileged role can use the store.
        PgStore(pg_dsn, dim=DIM).close()
        pg_server.sql(pg_dsn, "GRANT USAGE ON SCHEMA charter_retrieval TO reader")
        pg_server.sql(pg_dsn, "GRANT ALL ON ALL TABLES IN SCHEMA charter_retrieval TO reader")
        with PgStore(reader, dim=DIM) as store:
            put(store, "docs", "a.md", ["granted"])
            assert ids_of(store.keyword_search("docs", "granted", 5)) != []
    finally:
        pg_server.drop_database(pg_dsn)
        pg_server.sql(pg_server.dsn(), "DROP ROLE IF EXISTS reader")


@pg_only
def test_pg_small_share_of_the_index_still_gets_k_results(pg_server: PgServer, pg_dsn: str) -> None:
    """HNSW filters by collection after its walk: near another collection's vectors it comes
    back empty-handed. The store then searches exactly, so k results still come back."""
    from charter.retrieval.pg_store import PgStore

    rng = np.random.default_rng(7)
    e0 = unit(1.0)
    with PgStore(pg_dsn, dim=DIM) as store:
        expected: list[tuple[float, str]] = []
        for collection, centre in (("near", e0), ("far", -e0)):
            for d in range(4):
                vectors = centre + 0.3 * rng.standard_normal((250, DIM)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                _, chunks, _ = put(store, collection, f"{d}.md", ["x"] * 250, vectors=vectors)
                if collection == "far":
                    expected += zip((vectors @ e0).tolist(), (c.id for c in chunks), strict=True)
        # As autovacuum would have by now: with statistics the planner picks the HNSW index.
        pg_server.sql(pg_dsn, "ANALYZE")
        store.exact_fallbacks = 0
        results = store.vector_search("far", e0, 10)
        assert store.exact_fallbacks == 1  # the index came back short: the path under test ran
        assert ids_of(results) == [chunk for _cos, chunk in sorted(expected, reverse=True)[:10]]
        # Near its own vectors the index finds them (no fallback).
        assert len(store.vector_search("near", e0, 10)) == 10
        assert store.exact_fallbacks == 1


@pg_only
@pytest.mark.parametrize(
    ("options", "k", "expected"),
    [("", 5, 40), ("", 100, 200), ("", 900, 1000), ("-c hnsw.ef_search=300", 5, 300)],
)
def test_pg_hnsw_ef_search_is_the_sessions_at_least_2k(
    pg_dsn: str, options: str, k: int, expected: int
) -> None:
    from charter.retrieval.pg_store import PgStore

    dsn = pg_dsn + (f"&options={quote(options)}" if options else "")
    with PgStore(dsn, dim=DIM) as store, store._conn.transaction():
        assert store._set_ef_search(store._conn, k) == expected
        assert store._conn.execute("SHOW hnsw.ef_search").fetchone()[0] == str(expected)


@pg_only
def test_pg_reconnects_when_the_server_drops_the_connection(
    pg_server: PgServer, pg_dsn: str
) -> None:
    from charter.retrieval.pg_store import PgStore

    with PgStore(pg_dsn, dim=DIM) as store:
        doc, chunks, _ = put(store, "docs", "a.md", ["resilient badger"])
        pid = store._conn.info.backend_pid
        pg_server.sql(pg_server.dsn(), f"SELECT pg_terminate_backend({pid})")
        assert_intact(store, doc, chunks, "badger")
        assert store._conn.info.backend_pid != pid
    with pytest.raises(BackendError, match="closed"):
        store.documents("docs")


@pg_only
def test_pg_nul_characters_are_kept_out_of_text(pg_dsn: str) -> None:
    """PostgreSQL text cannot hold NUL (PDF extraction can produce it): it becomes a space, so
    every character offset stays where it was and the words on either side stay apart."""
    from charter.retrieval.pg_store import PgStore

    with PgStore(pg_dsn, dim=DIM) as store:
        _, chunks, _ = put(store, "docs", "a.pdf", ["before\x00after walrus"])
        stored = store.chunks([chunks[0].id])[0]
        assert stored.text == "before after walrus"
        assert len(stored.text) == stored.end - stored.start
        assert ids_of(store.keyword_search("docs", "walrus\x00after", 5)) == [chunks[0].id]


@pg_only
def test_pg_concurrent_first_opens_create_the_schema_once(pg_server: PgServer, pg_dsn: str) -> None:
    from charter.retrieval.pg_store import PgStore

    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(PgStore(pg_dsn, dim=DIM))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == [] and len(stores) == 4
        rows = pg_server.sql(pg_dsn, "SELECT version, dim FROM charter_retrieval.schema_version")
        assert rows == [(1, DIM)]
    finally:
        for s in stores:
            s.close()
