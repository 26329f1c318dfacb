"""Query latency of the PostgreSQL + pgvector retrieval store (PgStore) on 100k synthetic chunks.

Loads N chunks (384-dim unit vectors clustered by topic; ~60 made-up words each, Zipf-
distributed so keyword queries hit common and rare words alike) into one collection, builds
the HNSW index after the load (as one would for a bulk import; PgStore keeps it up to date
row by row otherwise), then times PgStore.vector_search and PgStore.keyword_search one query
at a time (vector queries near a random stored chunk; keyword queries of 3 words among the
2000 most common): p50/p95/mean milliseconds, and the HNSW recall@k against exact numpy
search for each hnsw.ef_search in --ef-search.

By default it starts a throw-away PostgreSQL from the `pgserver` wheel (tests/retrieval/pg.py;
shared_buffers 512MB, fsync off); `--dsn` measures your own server instead (it creates and
drops the schema `charter_retrieval` there: use an empty database).
Usage: .venv/bin/python benchmarks/retrieval_pg.py [--chunks 100000] [--queries 200]
       [--json benchmarks/results/retrieval_pg.json] [--dsn postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from _machine import ForeignLoad, _process_seconds
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/retrieval/pg.py starts the throw-away server

from charter.retrieval.pg_store import SCHEMA, PgStore  # noqa: E402
from charter.retrieval.store import ChunkRecord, DocumentRecord, chunk_id  # noqa: E402

DIM = 384
PER_DOC = 100
WORDS_PER_CHUNK = 60
VOCABULARY = 20_000
COLLECTION = "bench"
CLUSTER_SIZE = 50
TOPIC_SPREAD = 0.6


def words(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct made-up words (letters only, so every one is its own lexeme)."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    out: dict[str, None] = {}
    while len(out) < n:
        out["".join(rng.choice(letters, size=int(rng.integers(5, 10))))] = None
    return list(out)


def unit_rows(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """n unit vectors around n/CLUSTER_SIZE random topics (cosine ~0.85 to their topic, ~0.7
    to each other), as passages of one subject embed. Uniformly random 384-dim vectors would
    have no near neighbours at all but the query's source, the worst case for any ANN index."""
    topics = unit_rows(rng.standard_normal((max(1, n // CLUSTER_SIZE), DIM)))
    noise = rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    return unit_rows(topics[rng.integers(0, len(topics), size=n)] + TOPIC_SPREAD * noise)


def zipf_ranks(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.minimum(rng.zipf(1.2, size=size), VOCABULARY) - 1


def load(store: PgStore, n: int, rng: np.random.Generator, vocab: list[str]) -> np.ndarray:
    """n chunks in documents of PER_DOC; returns their vectors (row i = the i-th chunk)."""
    vectors = clustered(rng, n)
    for start in range(0, n, PER_DOC):
        rows = range(start, min(start + PER_DOC, n))
        doc_id = f"doc-{start // PER_DOC:05d}"
        sha = f"sha-{start}"
        chunks = []
        for ordinal, _row in enumerate(rows):
            text = " ".join(vocab[r] for r in zipf_ranks(rng, WORDS_PER_CHUNK))
            chunks.append(
                ChunkRecord(
                    chunk_id(COLLECTION, doc_id, sha, ordinal),
                    COLLECTION,
                    doc_id,
                    doc_id,
                    ordinal,
                    text,
                    0,
                    len(text),
                    None,
                    None,
                )
            )
        doc = DocumentRecord(COLLECTION, doc_id, doc_id, None, sha, len(chunks), time.time())
        store.replace_document(doc, chunks, vectors[rows.start : rows.stop])
    return vectors


def timed(fn, queries) -> tuple[list[float], list]:
    ms, results = [], []
    for q in queries:
        t0 = time.perf_counter()
        results.append(fn(q))
        ms.append((time.perf_counter() - t0) * 1000)
    return ms, results


def summary(ms: list[float]) -> dict:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def _server_seconds(pid: int) -> float:
    """CPU seconds of the postmaster and its live children (the backends serving us)."""
    total = _process_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")
    return total


class Load(ForeignLoad):
    """ForeignLoad that counts the throw-away server's CPU as ours, not as foreign."""

    def __init__(self, server_pid: int | None):
        self.server_pid = server_pid

    def __enter__(self) -> Load:
        self.server0 = _server_seconds(self.server_pid) if self.server_pid else 0.0
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.server_pid:
            self.server = _server_seconds(self.server_pid) - self.server0
            self.own += self.server

    def report(self) -> dict:
        out = super().report()
        if self.server_pid:
            out["server_cpu_s"] = round(self.server, 2)
        return out


def run(dsn: str, args: argparse.Namespace, server_version: str, server_pid: int | None) -> dict:
    rng = np.random.default_rng(args.seed)
    vocab = words(rng, VOCABULARY)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    store = PgStore(dsn, dim=DIM)
    try:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP INDEX {SCHEMA}.chunks_embedding")
            t0 = time.perf_counter()
            vectors = load(store, args.chunks, rng, vocab)
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            admin.execute("SET maintenance_work_mem = '1GB'")
            admin.execute(
                f"CREATE INDEX chunks_embedding ON {SCHEMA}.chunks "
                "USING hnsw (embedding vector_cosine_ops)"
            )
            admin.execute(f"VACUUM ANALYZE {SCHEMA}.chunks")
            index_s = time.perf_counter() - t0
            sizes = admin.execute(
                f"SELECT pg_total_relation_size('{SCHEMA}.chunks'), "
                f"pg_relation_size('{SCHEMA}.chunks_embedding')"
            ).fetchone()

        # Queries near stored chunks (as real questions are near their answers) and exact
        # top-k by numpy for recall.
        picks = rng.integers(0, args.chunks, size=args.queries)
        noise = rng.standard_normal((args.queries, DIM)) / np.sqrt(DIM)
        queries = unit_rows(vectors[picks] + 0.3 * noise)
        keyword_queries = [
            " ".join(vocab[r] for r in rng.integers(0, 2000, size=3)) for _ in range(args.queries)
        ]
        ids = [
            chunk_id(COLLECTION, f"doc-{i // PER_DOC:05d}", f"sha-{i - i % PER_DOC}", i % PER_DOC)
            for i in range(args.chunks)
        ]
        for q in queries[:10]:  # warm the caches
            store.vector_search(COLLECTION, q, args.k)
        for q in keyword_queries[:10]:
            store.keyword_search(COLLECTION, q, args.k)

        exact = [set(np.argpartition(-(vectors @ q), args.k)[: args.k]) for q in queries]
        vector_runs = []
        for ef in args.ef_search:
            # The DSN's options set the session's hnsw.ef_search, which PgStore honours.
            with PgStore(make_conninfo(dsn, options=f"-c hnsw.ef_search={ef}"), dim=DIM) as s:
                for q in queries[:10]:
                    s.vector_search(COLLECTION, q, args.k)
                with Load(server_pid) as load_vec:
                    vec_ms, vec_results = timed(
                        lambda q, s=s: s.vector_search(COLLECTION, q, args.k), queries
                    )
                recall = [
                    len({ids[i] for i in truth} & {cid for cid, _ in got}) / args.k
                    for truth, got in zip(exact, vec_results, strict=True)
                ]
                vector_runs.append(
                    {
                        "hnsw_ef_search": max(ef, 2 * args.k),
                        **summary(vec_ms),
                        "recall_at_k": round(statistics.fmean(recall), 3),
                        "exact_fallbacks": s.exact_fallbacks,
                        "load": load_vec.report(),
                    }
                )
        with Load(server_pid) as load_kw:
            kw_ms, kw_results = timed(
                lambda q: store.keyword_search(COLLECTION, q, args.k), keyword_queries
            )
    finally:
        store.close()
        if not args.keep:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")

    return {
        "benchmark": "retrieval_pg",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "server": server_version,
        "chunks": args.chunks,
        "dim": DIM,
        "k": args.k,
        "queries": args.queries,
        "load_s": round(load_s, 1),
        "hnsw_build_s": round(index_s, 1),
        "table_mb": round(sizes[0] / 2**20),
        "hnsw_index_mb": round(sizes[1] / 2**20),
        "vector_search": vector_runs,
        "keyword_search": {
            **summary(kw_ms),
            "mean_hits": round(statistics.fmean(len(r) for r in kw_results), 1),
            "load": load_kw.report(),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--ef-search",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[40, 100, 200],
        help="hnsw.ef_search values to measure, comma-separated (default 40,100,200)",
    )
    ap.add_argument("--dsn", help="measure this server instead of a throw-away one")
    ap.add_argument("--keep", action="store_true", help="leave the schema in place (--dsn)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()

    server = None
    if args.dsn is None:
        from tests.retrieval.pg import PgServer

        server = PgServer.start(
            settings={"shared_buffers": "512MB", "max_parallel_maintenance_workers": "1"}
        )
        dsn = server.create_database("bench")
    else:
        dsn = args.dsn
    try:
        with psycopg.connect(dsn) as conn:
            version = conn.execute("SELECT version()").fetchone()[0].split(" on ")[0]
            pgvector = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
        result = run(
            dsn,
            args,
            f"{version}, pgvector {pgvector[0] if pgvector else '?'}",
            server.proc.pid if server else None,
        )
    finally:
        if server is not None:
            server.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
