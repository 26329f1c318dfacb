"""Search latency at 100,000 chunks: hybrid query p50/p95 with the query embedding included.

Builds a synthetic collection straight through the store API (no embedding cost): random
unit vectors, and text drawn from a Zipf-distributed vocabulary of made-up words (about 100
words a chunk, 10 chunks a document). Queries are 2-6 words drawn from the same
distribution minus its 100 most frequent words (in English those are the stopwords the
query parser drops). Then times Retriever.search(mode="hybrid") end to end on the real
MiniLM embedder, and each part alone. Target: hybrid p50 <= 50 ms.
Usage: python benchmarks/retrieval_scale.py [--chunks 100000] [--queries 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _machine import ForeignLoad

from charter.retrieval.embed import DIM, SHARED_THREADS, MiniLMEmbedder
from charter.retrieval.search import Retriever
from charter.retrieval.sqlite_store import SQLiteStore
from charter.retrieval.store import ChunkRecord, DocumentRecord, chunk_id

RESULTS = Path(__file__).resolve().parent / "results"
VOCABULARY = 50_000
CHUNKS_PER_DOC = 10
SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]


def make_vocabulary(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray]:
    words: set[str] = set()
    while len(words) < n:
        k = int(rng.integers(2, 5))
        words.add("".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), k)))
    ranked = sorted(words)
    rng.shuffle(ranked)
    p = 1.0 / np.arange(1, n + 1)
    return ranked, p / p.sum()


def build(store: SQLiteStore, n_chunks: int, rng: np.random.Generator, vocab, p) -> float:
    """Insert the collection; return the seconds it took."""
    t0 = time.perf_counter()
    for d in range(n_chunks // CHUNKS_PER_DOC):
        doc_id = f"doc{d:06}"
        lengths = rng.integers(60, 140, CHUNKS_PER_DOC)
        words = rng.choice(len(vocab), size=int(lengths.sum()), p=p)
        vectors = rng.standard_normal((CHUNKS_PER_DOC, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks, pos, offset = [], 0, 0
        for i, n in enumerate(lengths):
            text = " ".join(vocab[w] for w in words[pos : pos + n])
            pos += n
            chunks.append(
                ChunkRecord(
                    chunk_id("scale", doc_id, "s", i),
                    "scale",
                    doc_id,
                    f"Document {d}",
                    i,
                    text,
                    offset,
                    offset + len(text),
                    None,
                    None,
                )
            )
            offset += len(text) + 2
        doc = DocumentRecord("scale", doc_id, f"Document {d}", None, "s", len(chunks), 0.0)
        store.replace_document(doc, chunks, vectors)
        if d % 1000 == 999:
            print(f"  {(d + 1) * CHUNKS_PER_DOC} chunks, {time.perf_counter() - t0:.0f} s")
    return time.perf_counter() - t0


def percentiles(times: list[float]) -> dict:
    ms = sorted(t * 1000 for t in times)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def timed(fn, items) -> list[float]:
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--threads",
        type=int,
        default=SHARED_THREADS,
        help=f"torch threads (default {SHARED_THREADS}, as get_embedder() serves queries)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=RESULTS / "retrieval_scale.json")
    args = parser.parse_args()

    import torch

    rng = np.random.default_rng(args.seed)
    vocab, p = make_vocabulary(rng, VOCABULARY)
    common = 100
    q_p = p[common:] / p[common:].sum()
    queries = [
        " ".join(vocab[common + w] for w in rng.choice(len(q_p), int(rng.integers(2, 7)), p=q_p))
        for _ in range(args.queries)
    ]
    embedder = MiniLMEmbedder(threads=args.threads).load()
    embedder.encode(["warm up"])

    with tempfile.TemporaryDirectory(prefix="charter-scale-") as tmp:
        path = Path(tmp) / "r.sqlite"
        store = SQLiteStore(path)
        print(f"building {args.chunks} chunks ...")
        build_s = build(store, args.chunks, rng, vocab, p)
        print(f"built in {build_s:.1f} s ({args.chunks / build_s:.0f} chunks/s, no embedding)")
        size_mb = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6
        retriever = Retriever(store, embedder)

        # Fresh process state: the first search loads the collection's vector matrix.
        t0 = time.perf_counter()
        retriever.search(queries[0], "scale", k=5)
        first_s = time.perf_counter() - t0
        vectors = embedder.encode(queries)

        with ForeignLoad() as load:
            hybrid = timed(lambda q: retriever.search(q, "scale", k=5, mode="hybrid"), queries)
        parts = {
            "query_embedding": timed(lambda q: embedder.encode([q]), queries),
            "keyword_search": timed(lambda q: store.keyword_search("scale", q, 50), queries),
            "vector_search": timed(lambda v: store.vector_search("scale", v, 50), vectors),
            "bm25_mode": timed(lambda q: retriever.search(q, "scale", k=5, mode="bm25"), queries),
        }
        store.close()

    result = {
        "command": "python benchmarks/retrieval_scale.py"
        + (f" --chunks {args.chunks}" if args.chunks != 100_000 else "")
        + (f" --threads {args.threads}" if args.threads != SHARED_THREADS else ""),
        "environment": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "chunks": args.chunks,
        "queries": len(queries),
        "store_file_mb": round(size_mb, 1),
        "build_s": round(build_s, 1),
        "first_search_s (loads the vector matrix)": round(first_s, 3),
        "hybrid": percentiles(hybrid),
        "parts": {name: percentiles(t) for name, t in parts.items()},
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine_load": load.report(),
        "target_p50_ms": 50,
    }
    h = result["hybrid"]
    print(f"hybrid search, query embedding included: p50 {h['p50_ms']} ms, p95 {h['p95_ms']} ms")
    for name, stats in result["parts"].items():
        print(f"  {name:>16}: p50 {stats['p50_ms']} ms, p95 {stats['p95_ms']} ms")
    print(f"first search (matrix load) {first_s:.2f} s; store {size_mb:.0f} MB on disk")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
