"""The embedded retrieval store: one SQLite file with an FTS5 keyword index and float32 vectors.

Keyword search is FTS5's BM25 (porter stemming, diacritics folded). Vector search is exact:
each collection's vectors are held as one numpy matrix, loaded on first use and reloaded
when the collection changes (also when another process wrote it). See docs/retrieval.md for
why exact search is the right default up to ~10^6 chunks.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from charter.errors import ConfigError
from charter.retrieval.store import ChunkRecord, DocumentRecord, Store

#: Append-only: (number, name, SQL). A store records every number applied.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "initial",
        """
        CREATE TABLE retrieval_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        -- AUTOINCREMENT: an id is never reused, so (id, version) names one state of one
        -- collection for ever, and a vector cache can never mistake a re-created collection
        -- for the one it loaded. `version` is bumped by every write to the collection.
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            version INTEGER NOT NULL
        );
        CREATE TABLE documents (
            collection TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            title TEXT NOT NULL,
            source TEXT,
            sha256 TEXT NOT NULL,
            chunks INTEGER NOT NULL,
            ingested_at REAL NOT NULL,
            PRIMARY KEY (collection, doc_id)
        );
        CREATE TABLE chunks (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            -- the collection's id: indexed as a word, so FTS5 filters by collection itself
            scope INTEGER NOT NULL REFERENCES collections(id),
            collection TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            title TEXT NOT NULL,
            ordinal INTEGER NOT NULL,
            text TEXT NOT NULL,
            char_start INTEGER NOT NULL,
            char_end INTEGER NOT NULL,
            page INTEGER,
            heading TEXT,
            vector BLOB NOT NULL,
            FOREIGN KEY (collection, doc_id) REFERENCES documents(collection, doc_id)
        );
        CREATE INDEX chunks_by_document ON chunks(collection, doc_id, ordinal);
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            scope, title, heading, text,
            content='chunks', content_rowid='rowid',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, scope, title, heading, text)
            VALUES (new.rowid, new.scope, new.title, new.heading, new.text);
        END;
        CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, scope, title, heading, text)
            VALUES ('delete', old.rowid, old.scope, old.title, old.heading, old.text);
        END;
        """,
    ),
]

CHUNK_FIELDS = "id, collection, doc_id, title, ordinal, text, char_start, char_end, page, heading"
DOCUMENT_FIELDS = "collection, doc_id, title, source, sha256, chunks, ingested_at"

# Removed from queries only (the index keeps every word, so a query made only of these still
# matches). They carry almost no BM25 weight but make OR queries scan most of the index.
STOPWORDS = frozenset(
    re.findall(
        r"\S+",
        """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""",
    )
)
#: At most this many distinct words of a query are searched (a pasted page stays fast).
MAX_QUERY_TERMS = 64
_WORD = re.compile(r"\w+")


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression that ORs the words of `text`; None when it has no words.

    Every word is quoted, so FTS5 operators (AND, OR, NOT, NEAR, *, ^, column filters)
    and punctuation in user text are plain words or separators, never syntax.
    """
    words = [w.lower() for w in _WORD.findall(unicodedata.normalize("NFC", text))]
    kept = [w for w in words if w not in STOPWORDS] or words
    terms = list(dict.fromkeys(kept))[:MAX_QUERY_TERMS]
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


#: The FTS columns the user's words are matched in (never `scope`).
TEXT_COLUMNS = "title heading text"


class SQLiteStore(Store):
    """The store in one SQLite file (WAL mode), safe to share between threads."""

    #: BM25 weights of the FTS columns (title, heading, text).
    column_weights = (1.0, 1.0, 1.0)

    def __init__(self, path: str | Path, dim: int = 384):
        self.path = Path(path)
        self.dim = dim
        self._lock = threading.RLock()
        # collection -> ((id, version), chunk ids, matrix)
        self._vectors: dict[str, tuple[tuple[int, int], list[str], np.ndarray]] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the retrieval store {self.path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed document survives a process crash (kill -9).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ConfigError(
                f"{self.path} is not a usable retrieval store ({exc}); choose another --store"
            ) from None
        except ConfigError:
            self._db.close()
            raise

    # -- schema ------------------------------------------------------------------------
    def _migrate(self) -> list[str]:
        """Apply the migrations this file lacks; check its vector size. Returns those applied."""
        applied = []
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS retrieval_schema (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            done = {r[0] for r in db.execute("SELECT version FROM retrieval_schema")}
            newest = max(n for n, _, _ in MIGRATIONS)
            if done and max(done) > newest:
                raise ConfigError(
                    f"the retrieval store {self.path} has schema version {max(done)}, newer "
                    f"than this Charter knows ({newest}); upgrade Charter"
                )
            for number, name, sql in MIGRATIONS:
                if number in done:
                    continue
                for statement in _statements(sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO retrieval_schema VALUES (?, ?, ?)", (number, name, time.time())
                )
                applied.append(name)
            row = db.execute("SELECT value FROM retrieval_meta WHERE key = 'dim'").fetchone()
            if row is None:
                db.execute("INSERT INTO retrieval_meta VALUES ('dim', ?)", (str(self.dim),))
            elif int(row[0]) != self.dim:
                raise ConfigError(
                    f"the retrieval store {self.path} holds {row[0]}-dimensional vectors, "
                    f"not {self.dim}: it was built with another embedding model"
                )
        return applied

    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("SELECT MAX(version) FROM retrieval_schema").fetchone()[0]

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers queue instead of failing late)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _bump(db: sqlite3.Connection, collection: str) -> int:
        """Mark the collection changed (creating it if new); return its id."""
        return db.execute(
            "INSERT INTO collections (name, version) VALUES (?, 1) ON CONFLICT(name) "
            "DO UPDATE SET version = version + 1 RETURNING id",
            (collection,),
        ).fetchone()[0]

    # -- writes ------------------------------------------------------------------------
    def replace_document(
        self, doc: DocumentRecord, chunks: list[ChunkRecord], vectors: np.ndarray
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(chunks), self.dim):
            raise ValueError(
                f"vectors have shape {vectors.shape}, expected ({len(chunks)}, {self.dim})"
            )
        if any(c.collection != doc.collection or c.doc_id != doc.doc_id for c in chunks):
            raise ValueError("every chunk must belong to the document it is stored with")
        with self._tx() as db:
            scope = self._bump(db, doc.collection)
            key = (doc.collection, doc.doc_id)
            db.execute("DELETE FROM chunks WHERE collection = ? AND doc_id = ?", key)
            db.execute("DELETE FROM documents WHERE collection = ? AND doc_id = ?", key)
            db.execute(
                f"INSERT INTO documents ({DOCUMENT_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    doc.collection,
                    doc.doc_id,
                    doc.title,
                    doc.source,
                    doc.sha256,
                    len(chunks),
                    doc.ingested_at,
                ),
            )
            rows = [
                (
                    c.id,
                    scope,
                    c.collection,
                    c.doc_id,
                    c.title,
                    c.ordinal,
                    c.text,
                    c.start,
                    c.end,
                    c.page,
                    c.heading,
                    vectors[i].tobytes(),
                )
                for i, c in enumerate(chunks)
            ]
            db.executemany(
                "INSERT INTO chunks (id, scope, collection, doc_id, title, ordinal, text, "
                "char_start, char_end, page, heading, vector) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self._vectors.pop(doc.collection, None)

    def remove_document(self, collection: str, doc_id: str) -> bool:
        with self._tx() as db:
            key = (collection, doc_id)
            db.execute("DELETE FROM chunks WHERE collection = ? AND doc_id = ?", key)
            removed = db.execute(
                "DELETE FROM documents WHERE collection = ? AND doc_id = ?", key
            ).rowcount
            if removed:
                db.execute(
                    "UPDATE collections SET version = version + 1 WHERE name = ?", (collection,)
                )
                # A collection exists while it has documents (see collection_names).
                db.execute(
                    "DELETE FROM collections WHERE name = ? AND NOT EXISTS "
                    "(SELECT 1 FROM documents WHERE collection = ?)",
                    (collection, collection),
                )
        self._vectors.pop(collection, None)
        return bool(removed)

    def remove_collection(self, collection: str) -> int:
        with self._tx() as db:
            db.execute("DELETE FROM chunks WHERE collection = ?", (collection,))
            removed = db.execute(
                "DELETE FROM documents WHERE collection = ?", (collection,)
            ).rowcount
            db.execute("DELETE FROM collections WHERE name = ?", (collection,))
        self._vectors.pop(collection, None)
        return removed

    # -- reads -------------------------------------------------------------------------
    def document_hash(self, collection: str, doc_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT sha256 FROM documents WHERE collection = ? AND doc_id = ?",
                (collection, doc_id),
            ).fetchone()
        return row[0] if row else None

    def collections(self) -> list[tuple[str, int, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT collection, COUNT(*), COALESCE(SUM(chunks), 0) FROM documents "
                "GROUP BY collection ORDER BY collection"
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def collection_names(self) -> list[str]:
        # Every search checks its collection: read the small table, not every document.
        with self._lock:
            rows = self._db.execute("SELECT name FROM collections ORDER BY name").fetchall()
        return [r[0] for r in rows]

    def documents(self, collection: str) -> list[DocumentRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {DOCUMENT_FIELDS} FROM documents WHERE collection = ? ORDER BY doc_id",
                (collection,),
            ).fetchall()
        return [DocumentRecord(*r) for r in rows]

    def chunks(self, ids: list[str]) -> list[ChunkRecord]:
        found: dict[str, ChunkRecord] = {}
        with self._lock:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                for r in self._db.execute(
                    f"SELECT {CHUNK_FIELDS} FROM chunks WHERE id IN ({marks})", part
                ):
                    found[r[0]] = ChunkRecord(*r)
        return [found[i] for i in ids if i in found]

    def keyword_search(self, collection: str, query: str, k: int) -> list[tuple[str, float]]:
        match = fts_query(query)
        if match is None or k <= 0:
            return []
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM collections WHERE name = ?", (collection,)
            ).fetchone()
            if row is None:
                return []
            # The collection is a term of the (weight 0) scope column: FTS5 filters by it
            # while it ranks, and only the best k rows are joined to their chunk ids.
            rows = self._db.execute(
                "SELECT c.id, f.s FROM (SELECT rowid, bm25(chunks_fts, 0, ?, ?, ?) AS s "
                "FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s, rowid LIMIT ?) AS f "
                "JOIN chunks c ON c.rowid = f.rowid ORDER BY f.s, f.rowid",
                (*self.column_weights, f'scope : "{row[0]}" AND {{{TEXT_COLUMNS}}} : ({match})', k),
            ).fetchall()
        # FTS5's bm25() is negative, lower is better; the interface wants higher = better.
        return [(r[0], -r[1]) for r in rows]

    def vector_search(self, collection: str, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise ValueError(f"query vector has {q.shape[0]} dimensions, expected {self.dim}")
        ids, matrix = self._matrix(collection)
        if not ids or k <= 0:
            return []
        # einsum runs on this thread: multithreaded BLAS gains little on a memory-bound
        # product and stalls for milliseconds when the cores are busy (an LLM generating).
        scores = np.einsum("ij,j->i", matrix, q)
        k = min(k, len(ids))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(ids) else np.arange(len(ids))
        top = top[np.lexsort((top, -scores[top]))]
        return [(ids[i], float(scores[i])) for i in top]

    def _matrix(self, collection: str) -> tuple[list[str], np.ndarray]:
        """The collection's chunk ids and vectors, from the cache unless it changed."""
        with self._lock:
            state = self._state(collection)
            cached = self._vectors.get(collection)
            if cached is not None and cached[0] == state:
                return cached[1], cached[2]
            # One read transaction, so the state and the vectors agree.
            self._db.execute("BEGIN")
            try:
                state = self._state(collection)
                rows = self._db.execute(
                    "SELECT id, vector FROM chunks WHERE collection = ? ORDER BY rowid",
                    (collection,),
                ).fetchall()
            finally:
                self._db.execute("COMMIT")
            ids = [r[0] for r in rows]
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            matrix = matrix.reshape(len(ids), self.dim)
            self._vectors[collection] = (state, ids, matrix)
            return ids, matrix

    def _state(self, collection: str) -> tuple[int, int]:
        row = self._db.execute(
            "SELECT id, version FROM collections WHERE name = ?", (collection,)
        ).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def close(self) -> None:
        with self._lock:
            self._vectors.clear()
            self._db.close()


def _statements(sql: str) -> list[str]:
    """Split a script into statements (triggers hold `;` inside BEGIN ... END)."""
    out, current = [], ""
    for line in sql.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out
