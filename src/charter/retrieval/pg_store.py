"""The retrieval Store on PostgreSQL with the pgvector extension (`--store postgresql://...`).

Everything lives in one schema, `charter_retrieval`, created on first use together with
`CREATE EXTENSION IF NOT EXISTS vector` (which needs a role allowed to create extensions the
first time; afterwards any role with rights on the schema will do):

    schema_version(version, dim, created_at)   one row; the vector width is fixed at creation
    documents(collection, doc_id, title, source, sha256, chunks, ingested_at)
    chunks(id, collection, doc_id, ..., embedding vector(dim), tsv tsvector GENERATED)

Vector search orders by cosine distance (`<=>`) on an HNSW index (pgvector 0.5.0+; older
pgvector gets no vector index and searches exactly) and reports cosine similarity, 1 − distance.
HNSW is approximate, and it filters by collection after it walks the graph, so when a
collection is a small part of the table the index can return fewer than k rows; then the
query runs again without the index (exact), so a collection with ≥ k chunks always gives k.

Keyword search is PostgreSQL full-text search, not BM25: a chunk's title, heading and text are
indexed as an `english` tsvector (stemmed, stop words dropped; GIN index); the query's words,
stemmed the same way, are each quoted and ORed (so operators, quotes and punctuation in the
query are plain words, never syntax) and matches are ranked by `ts_rank_cd` (cover density,
normalised by document length). There is no inverse document frequency, so a rare word weighs
no more than a common one, and a query of stop words only finds nothing. Scores are comparable
within one query only, like BM25's.
"""

from __future__ import annotations

import contextlib
import math
import re
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

import numpy as np

# Without the `pg` extra this import fails; open_store() turns that into a ConfigError.
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import Format

from charter.errors import BackendError, ConfigError
from charter.retrieval.store import ChunkRecord, DocumentRecord, Store

SCHEMA = "charter_retrieval"
SCHEMA_VERSION = 1
# pg_advisory_xact_lock key that serialises schema creation between processes ('chartr').
_MIGRATION_LOCK = 0x636861727472
# pgvector gained HNSW in 0.5.0.
_HNSW_SINCE = (0, 5, 0)
# hnsw.ef_search, the candidate list an HNSW scan keeps: the server's or session's setting
# (pgvector's default: 40), raised to 2k for a query that asks for k, at most pgvector's 1000.
_EF_SEARCH_DEFAULT, _EF_SEARCH_MAX = 40, 1000

T = TypeVar("T")

#: At most this many distinct words of a query are searched (a pasted page stays fast).
MAX_QUERY_TERMS = 64

_CHUNK_COLUMNS = "id, collection, doc_id, title, ordinal, text, char_start, char_end, page, heading"


def safe_dsn(dsn: str) -> str:
    """The DSN as `postgresql://user@host:port/dbname`, never with its password."""
    try:
        info = conninfo_to_dict(dsn)
    except Exception:
        # Not parseable: the host part of a URL at most, never what may be a password.
        if "://" not in dsn:
            return "(the connection string given)"
        scheme, _, rest = dsn.split("?", 1)[0].partition("://")
        return redact(f"{scheme}://{rest.rsplit('@', 1)[-1]}", dsn)
    user = info.get("user") or ""
    host = info.get("host") or info.get("hostaddr") or ""
    port = info.get("port")
    dbname = info.get("dbname") or ""
    where = f"{user}@" if user else ""
    if host.startswith("/") or not host:
        where += f"/{dbname}" + (f"?host={host}" if host else "")
    else:
        where += f"{host}:{port}/{dbname}" if port else f"{host}/{dbname}"
    return f"postgresql://{where}"


_URI_PASSWORD = re.compile(r"^[a-z]+://[^/?#@]*?:([^/?#@]*)@", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'?|[^\s&]*)", re.IGNORECASE)


def _secrets(dsn: str) -> set[str]:
    """Every spelling of the password that `dsn` holds (URL, key=value, ?password=)."""
    found = set(_URI_PASSWORD.findall(dsn)) | set(_KV_PASSWORD.findall(dsn))
    with contextlib.suppress(Exception):
        found.add(conninfo_to_dict(dsn).get("password") or "")
    for secret in list(found):
        found.add(secret.strip("'"))
        found.add(unquote(secret))
    return {secret for secret in found if secret}


def redact(text: str, dsn: str) -> str:
    """`text` with the DSN's password replaced by ***: libpq quotes parts of a malformed
    connection string (e.g. `unexpected spaces found in "pass word"`) in its messages."""
    for secret in sorted(_secrets(dsn), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _one_line(err: BaseException) -> str:
    """A psycopg/libpq message (often several lines, tab-indented hints) on one line."""
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    return text or type(err).__name__


def _version_tuple(version: str) -> tuple[int, ...]:
    out = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def _clean(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: a space instead keeps every character offset where it
    was and separates the words on either side, as the NUL did."""
    return text.replace("\x00", " ") if text is not None and "\x00" in text else text


class _Vector:
    """A float32 vector bound for a `vector` parameter (sent in pgvector's binary format)."""

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray):
        self.values = values


class _VectorDumper(Dumper):
    """pgvector's binary input: int16 dim, int16 unused (0), then dim big-endian float4s."""

    format = Format.BINARY

    def dump(self, obj: _Vector) -> bytes:
        values = obj.values
        return struct.pack(">HH", values.shape[0], 0) + values.astype(">f4", copy=False).tobytes()


class PgStore(Store):
    """Chunks, their embeddings and full-text index in PostgreSQL + pgvector."""

    def __init__(self, dsn: str, dim: int = 384, *, connect_timeout: int = 10):
        if not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"embedding dimension must be a positive integer, not {dim!r}")
        self.dim = dim
        self.dsn = dsn
        self.where = safe_dsn(dsn)
        try:
            info = conninfo_to_dict(dsn)
        except psycopg.Error as err:
            raise ConfigError(
                f"Not a usable PostgreSQL DSN: {self.where}: {redact(_one_line(err), dsn)}"
            ) from None
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in info:
            self._connect_kwargs["connect_timeout"] = connect_timeout
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._vector_ops: dict[str, sql.Composable] = {}
        self._vector_oid = 0
        self._hnsw = False
        self._closed = False
        # How often vector_search fell back to an exact scan (HNSW came back short).
        self.exact_fallbacks = 0
        with self._lock:
            self._conn = self._connect(ConfigError)
            try:
                self._migrate()
            except BaseException:
                self._conn.close()
                raise

    # -- connection --------------------------------------------------------------------
    def _connect(self, error: type[ConfigError] | type[BackendError]) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self.dsn, **self._connect_kwargs)
        except psycopg.Error as err:
            reason = redact(_one_line(err), self.dsn)
            raise error(f"Cannot connect to PostgreSQL at {self.where}: {reason}") from None
        if self._vector_ops:  # a reconnect: the types are known, only the adapter is per connection
            self._register_vector(conn, self._vector_oid)
        return conn

    def _run(self, action: str, work: Callable[[psycopg.Connection], T]) -> T:
        """`work(connection)` under the lock; psycopg errors become a one-line BackendError
        naming the store and `action`. A connection the server dropped (restart, idle
        timeout, pg_terminate_backend) is replaced and `work` runs once more: every Store
        write is one transaction that replaces or deletes whole documents, so a retry is safe.
        """
        with self._lock:
            if self._closed:
                raise BackendError(f"PostgreSQL store {self.where} is closed")
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = self._connect(BackendError)
                try:
                    return work(self._conn)
                except psycopg.Error as err:
                    if attempt == 1 and (self._conn.closed or self._conn.broken):
                        continue
                    reason = redact(_one_line(err), self.dsn)
                    raise BackendError(
                        f"PostgreSQL at {self.where}: {action} failed: {reason}"
                    ) from None
            raise AssertionError("unreachable")

    # -- schema ------------------------------------------------------------------------
    def _migrate(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                ext_schema, ext_version = self._ensure_extension(conn)
                self._vector_oid = conn.execute(
                    "SELECT t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                    "WHERE t.typname = 'vector' AND n.nspname = %s",
                    (ext_schema,),
                ).fetchone()[0]
                ns = sql.Identifier(ext_schema)
                self._vector_ops = {
                    "type": sql.SQL("{}.vector").format(ns),
                    "cosine": sql.SQL("OPERATOR({}.<=>)").format(ns),
                    "opclass": sql.SQL("{}.vector_cosine_ops").format(ns),
                }
                self._hnsw = _version_tuple(ext_version) >= _HNSW_SINCE
                # DDL only when the schema is missing: a role with no CREATE rights can use a
                # store an administrator set up (CREATE ... IF NOT EXISTS still needs them).
                row = None
                exists = conn.execute(
                    "SELECT to_regclass(%s)", (f"{SCHEMA}.schema_version",)
                ).fetchone()[0]
                if exists is not None:
                    row = conn.execute(
                        self._q("SELECT version, dim FROM {s}.schema_version")
                    ).fetchone()
                else:
                    conn.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA))
                    )
                    conn.execute(
                        self._q(
                            "CREATE TABLE {s}.schema_version (version INTEGER NOT NULL,"
                            " dim INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL)"
                        )
                    )
                if row is None:
                    self._create_v1(conn)
                    conn.execute(
                        self._q("INSERT INTO {s}.schema_version VALUES (%s, %s, %s)"),
                        (SCHEMA_VERSION, self.dim, time.time()),
                    )
                else:
                    version, dim = row
                    if version > SCHEMA_VERSION:
                        raise ConfigError(
                            f"PostgreSQL store {self.where} has retrieval schema version "
                            f"{version}, newer than this Charter's ({SCHEMA_VERSION}): "
                            "upgrade Charter"
                        )
                    if dim != self.dim:
                        raise ConfigError(
                            f"PostgreSQL store {self.where} holds {dim}-dimensional vectors, "
                            f"not {self.dim}: use the embedding model it was built with, or "
                            f"another database (or DROP SCHEMA {SCHEMA} CASCADE to start over)"
                        )
        except psycopg.Error as err:
            raise ConfigError(
                f"PostgreSQL at {self.where}: setting up the retrieval schema failed: "
                f"{redact(_one_line(err), self.dsn)}"
            ) from None
        self._register_vector(conn, self._vector_oid)

    def _ensure_extension(self, conn: psycopg.Connection) -> tuple[str, str]:
        """(schema, version) of pgvector in this database, creating it if it is not there."""
        query = (
            "SELECT n.nspname, e.extversion FROM pg_extension e "
            "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
        )
        row = conn.execute(query).fetchone()
        if row is not None:
            return row
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        if available is None:
            raise ConfigError(
                f"PostgreSQL at {self.where} has no pgvector extension installed: install "
                "pgvector on the server (https://github.com/pgvector/pgvector)"
            )
        try:
            with conn.transaction():  # a savepoint: a refusal leaves the outer one usable
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.InsufficientPrivilege:
            user = conn.info.user
            raise ConfigError(
                f"PostgreSQL at {self.where}: the pgvector extension is not enabled in this "
                f"database and user {user!r} may not enable it: have an administrator run "
                "CREATE EXTENSION vector there"
            ) from None
        return conn.execute(query).fetchone()

    def _create_v1(self, conn: psycopg.Connection) -> None:
        ops = self._vector_ops
        conn.execute(
            self._q(
                "CREATE TABLE {s}.documents ("
                " collection TEXT NOT NULL,"
                " doc_id TEXT NOT NULL,"
                " title TEXT NOT NULL,"
                " source TEXT,"
                " sha256 TEXT NOT NULL,"
                " chunks INTEGER NOT NULL,"
                " ingested_at DOUBLE PRECISION NOT NULL,"
                " PRIMARY KEY (collection, doc_id))"
            )
        )
        conn.execute(
            self._q(
                "CREATE TABLE {s}.chunks ("
                " id TEXT PRIMARY KEY,"
                " collection TEXT NOT NULL,"
                " doc_id TEXT NOT NULL,"
                " title TEXT NOT NULL,"
                " ordinal INTEGER NOT NULL,"
                " text TEXT NOT NULL,"
                " char_start INTEGER NOT NULL,"
                " char_end INTEGER NOT NULL,"
                " page INTEGER,"
                " heading TEXT,"
                " embedding {vector}({dim}) NOT NULL,"
                " tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig,"
                "  title || E'\\n' || coalesce(heading, '') || E'\\n' || text)) STORED,"
                " FOREIGN KEY (collection, doc_id) REFERENCES {s}.documents"
                " ON DELETE CASCADE)",
                vector=ops["type"],
                dim=sql.Literal(self.dim),
            )
        )
        conn.execute(
            self._q("CREATE INDEX chunks_document ON {s}.chunks (collection, doc_id, ordinal)")
        )
        conn.execute(self._q("CREATE INDEX chunks_tsv ON {s}.chunks USING gin (tsv)"))
        if self._hnsw:
            conn.execute(
                self._q(
                    "CREATE INDEX chunks_embedding ON {s}.chunks USING hnsw (embedding {ops})",
                    ops=ops["opclass"],
                )
            )

    def _register_vector(self, conn: psycopg.Connection, oid: int) -> None:
        dumper = type("VectorDumper", (_VectorDumper,), {"oid": oid})
        conn.adapters.register_dumper(_Vector, dumper)

    @staticmethod
    def _q(template: str, **parts: sql.Composable) -> sql.Composed:
        return sql.SQL(template).format(s=sql.Identifier(SCHEMA), **parts)

    # -- checks ------------------------------------------------------------------------
    def _matrix(self, vectors: np.ndarray, rows: int) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32)
        if rows == 0 and array.size == 0:
            return array.reshape(0, self.dim)
        if array.ndim != 2 or array.shape != (rows, self.dim):
            raise ValueError(
                f"expected vectors of shape ({rows}, {self.dim}) for {rows} chunks, "
                f"got {tuple(array.shape)}"
            )
        if not np.isfinite(array).all():
            raise ValueError("vectors contain NaN or infinity")
        return array

    def _query_vector(self, vector: np.ndarray) -> np.ndarray:
        array = np.asarray(vector, dtype=np.float32).reshape(-1)
        if array.shape[0] != self.dim:
            raise ValueError(f"query vector has {array.shape[0]} dimensions, expected {self.dim}")
        if not np.isfinite(array).all():
            raise ValueError("query vector contains NaN or infinity")
        return array

    # -- Store -------------------------------------------------------------------------
    def document_hash(self, collection: str, doc_id: str) -> str | None:
        def work(conn: psycopg.Connection) -> str | None:
            row = conn.execute(
                self._q("SELECT sha256 FROM {s}.documents WHERE collection = %s AND doc_id = %s"),
                (collection, doc_id),
            ).fetchone()
            return row[0] if row else None

        return self._run("reading a document", work)

    def replace_document(
        self, doc: DocumentRecord, chunks: list[ChunkRecord], vectors: np.ndarray
    ) -> None:
        matrix = self._matrix(vectors, len(chunks))
        for chunk in chunks:
            if (chunk.collection, chunk.doc_id) != (doc.collection, doc.doc_id):
                raise ValueError(
                    f"chunk {chunk.id!r} belongs to {chunk.collection}/{chunk.doc_id}, "
                    f"not {doc.collection}/{doc.doc_id}"
                )
        rows = [
            (
                c.id,
                c.collection,
                c.doc_id,
                _clean(c.title),
                c.ordinal,
                _clean(c.text),
                c.start,
                c.end,
                c.page,
                _clean(c.heading),
                _Vector(matrix[i]),
            )
            for i, c in enumerate(chunks)
        ]
        document = (
            doc.collection,
            doc.doc_id,
            _clean(doc.title),
            _clean(doc.source),
            doc.sha256,
            len(chunks),  # what is stored, whatever the record said (as SQLiteStore does)
            doc.ingested_at,
        )
        delete = self._q("DELETE FROM {s}.documents WHERE collection = %s AND doc_id = %s")
        insert_doc = self._q("INSERT INTO {s}.documents VALUES (%s, %s, %s, %s, %s, %s, %s)")
        insert_chunk = self._q(
            "INSERT INTO {s}.chunks (" + _CHUNK_COLUMNS + ", embedding)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %b)"
        )

        def work(conn: psycopg.Connection) -> None:
            # Deleting the document cascades to its chunks; all of it commits or none does.
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(delete, (doc.collection, doc.doc_id))
                cur.execute(insert_doc, document)
                if rows:
                    cur.executemany(insert_chunk, rows)

        self._run(f"storing document {doc.collection}/{doc.doc_id}", work)

    def remove_document(self, collection: str, doc_id: str) -> bool:
        delete = self._q("DELETE FROM {s}.documents WHERE collection = %s AND doc_id = %s")
        return self._run(
            f"removing document {collection}/{doc_id}",
            lambda conn: conn.execute(delete, (collection, doc_id)).rowcount > 0,
        )

    def remove_collection(self, collection: str) -> int:
        delete = self._q("DELETE FROM {s}.documents WHERE collection = %s")
        return self._run(
            f"removing collection {collection}",
            lambda conn: conn.execute(delete, (collection,)).rowcount,
        )

    def collections(self) -> list[tuple[str, int, int]]:
        query = self._q(
            "SELECT collection, count(*), coalesce(sum(chunks), 0) FROM {s}.documents"
            " GROUP BY collection ORDER BY collection"
        )
        rows = self._run("listing collections", lambda conn: conn.execute(query).fetchall())
        return [(name, int(docs), int(chunks)) for name, docs, chunks in rows]

    def documents(self, collection: str) -> list[DocumentRecord]:
        query = self._q(
            "SELECT collection, doc_id, title, source, sha256, chunks, ingested_at"
            " FROM {s}.documents WHERE collection = %s ORDER BY doc_id"
        )
        rows = self._run(
            f"listing documents of {collection}",
            lambda conn: conn.execute(query, (collection,)).fetchall(),
        )
        return [DocumentRecord(*row) for row in rows]

    def keyword_search(self, collection: str, query: str, k: int) -> list[tuple[str, float]]:
        query = _clean(query) or ""
        if k <= 0 or not query.strip():
            return []
        # The query's words as the index has them (stemmed, stop words gone), in query order;
        # ORed and each quoted, so operators and punctuation in the query are never syntax.
        lexemes = (
            "SELECT lexeme FROM unnest(to_tsvector('english'::regconfig, %s))"
            " ORDER BY positions[1] LIMIT %s"
        )
        search = self._q(
            "SELECT id, ts_rank_cd(tsv, %(q)s::tsquery, 1) AS score FROM {s}.chunks"
            " WHERE collection = %(collection)s AND tsv @@ %(q)s::tsquery"
            " ORDER BY score DESC, id LIMIT %(k)s"
        )

        def work(conn: psycopg.Connection) -> list[tuple[str, float]]:
            words = [r[0] for r in conn.execute(lexemes, (query, MAX_QUERY_TERMS))]
            if not words:  # nothing but stop words and punctuation
                return []
            tsquery = " | ".join(_tsquery_operand(w) for w in words)
            params = {"q": tsquery, "collection": collection, "k": k}
            return conn.execute(search, params).fetchall()

        rows = self._run("keyword search", work)
        return [(chunk_id, float(score)) for chunk_id, score in rows]

    def vector_search(self, collection: str, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        q = _Vector(self._query_vector(vector))
        if k <= 0:
            return []
        search = self._q(
            "SELECT id, embedding {cos} %(q)b AS distance FROM {s}.chunks"
            " WHERE collection = %(collection)s ORDER BY embedding {cos} %(q)b LIMIT %(k)s",
            cos=self._vector_ops["cosine"],
        )
        count = self._q("SELECT count(*) FROM {s}.chunks WHERE collection = %s")
        params = {"q": q, "collection": collection, "k": k}

        def work(conn: psycopg.Connection) -> list[tuple[str, float]]:
            with conn.transaction():
                self._set_ef_search(conn, k)
                rows = conn.execute(search, params).fetchall()
                if len(rows) < k:
                    # HNSW filters by collection after its walk and can come back short; the
                    # collection may also just be small. Count, and search exactly if short.
                    total = conn.execute(count, (collection,)).fetchone()[0]
                    if len(rows) < min(k, total):
                        self.exact_fallbacks += 1
                        conn.execute("SET LOCAL enable_indexscan = off")
                        rows = conn.execute(search, params).fetchall()
                return rows

        rows = self._run("vector search", work)
        return [(chunk_id, _similarity(distance)) for chunk_id, distance in rows]

    @staticmethod
    def _set_ef_search(conn: psycopg.Connection, k: int) -> int:
        """In the current transaction: hnsw.ef_search = the session's (as the server, the
        database or the DSN's `options=-c hnsw.ef_search=N` set it; else 40), at least 2k."""
        row = conn.execute(
            "SELECT set_config('hnsw.ef_search', least(greatest(coalesce(nullif("
            "current_setting('hnsw.ef_search', true), '')::int, %s), %s), %s)::text, true)",
            (_EF_SEARCH_DEFAULT, 2 * k, _EF_SEARCH_MAX),
        ).fetchone()
        return int(row[0])

    def chunks(self, ids: list[str]) -> list[ChunkRecord]:
        if not ids:
            return []
        query = self._q("SELECT " + _CHUNK_COLUMNS + " FROM {s}.chunks WHERE id = ANY(%s)")
        rows = self._run(
            "reading chunks", lambda conn: conn.execute(query, (list(ids),)).fetchall()
        )
        by_id = {row[0]: ChunkRecord(*row) for row in rows}
        return [by_id[i] for i in ids if i in by_id]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _tsquery_operand(lexeme: str) -> str:
    """A lexeme quoted for tsquery input: inside '...', backslash and quote are escaped."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _similarity(distance: float | None) -> float:
    """Cosine similarity from pgvector's cosine distance (NaN for a zero vector: 0)."""
    if distance is None or math.isnan(distance):
        return 0.0
    return 1.0 - float(distance)
