"""Retrieval quality on Cranfield 1400: nDCG@10 and recall@10 for bm25, dense and hybrid.

Ingests ../shared/data/cranfield/corpus.jsonl into a temporary store with the real embedder
(timing the ingest, embeddings included), runs the 225 queries in each mode as
`charter search --batch` would (documents ranked by their best chunk), and scores them with
charter.retrieval.trec. Reference: BM25 (bm25s, k1=1.5 b=0.75, stemming) gives 0.3735.
--grid also tries a small, fixed set of fusion settings (reported, never picked silently).
Usage: python benchmarks/retrieval_cranfield.py [--max-words 200] [--grid] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _machine import ForeignLoad

from charter.retrieval.embed import MiniLMEmbedder
from charter.retrieval.ingest import ingest
from charter.retrieval.search import Retriever
from charter.retrieval.sqlite_store import SQLiteStore
from charter.retrieval.trec import evaluate, read_qrels, read_queries

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA = ROOT.parent.parent / "shared" / "data" / "cranfield"
MODES = ("bm25", "dense", "hybrid")
BM25_REFERENCE = 0.3735


class CachedEmbedder:
    """Embeds each distinct query once, so timing several settings does not re-embed."""

    def __init__(self, inner: MiniLMEmbedder):
        self.inner, self.dim, self.cache = inner, inner.dim, {}

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.cache]
        if missing:
            for t, v in zip(missing, self.inner.encode(missing), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts])


def run_queries(
    retriever: Retriever,
    queries: list[tuple[str, str]],
    mode: str,
    k: int = 10,
    candidates: int = 50,
) -> tuple[dict[str, list[str]], list[float]]:
    run, times = {}, []
    for qid, text in queries:
        t0 = time.perf_counter()
        docs = retriever.search_documents(text, "cranfield", k=k, mode=mode, candidates=candidates)
        times.append(time.perf_counter() - t0)
        run[qid] = [d.doc_id for d in docs]
    return run, times


def scores(run: dict[str, list[str]], qrels: dict) -> dict:
    result = evaluate(run, qrels)
    return {m: round(result[m], 4) for m in ("ndcg@10", "recall@10", "map@100")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--max-words", type=int, default=200, help="chunk size in words")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--grid", action="store_true", help="also try the fusion settings grid")
    parser.add_argument("--json", type=Path, default=RESULTS / "retrieval_cranfield.json")
    args = parser.parse_args()

    import torch

    queries = read_queries(args.data / "queries.jsonl")
    qrels = read_qrels(args.data / "qrels.tsv")
    embedder = MiniLMEmbedder(threads=args.threads)
    t0 = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="charter-cranfield-") as tmp:
        store = SQLiteStore(Path(tmp) / "r.sqlite")
        with ForeignLoad() as load:
            report = ingest(
                [args.data / "corpus.jsonl"],
                store,
                "cranfield",
                embedder=embedder,
                max_words=args.max_words,
                progress=True,
            )
        ingest_s = load.wall
        print(
            f"ingest: {report.summary()}; {report.chunks} chunks in {ingest_s:.1f} s = "
            f"{report.chunks / ingest_s:.1f} chunks/s (embeddings included; "
            f"model load {load_s:.1f} s before)"
        )
        cached = CachedEmbedder(embedder)
        retriever = Retriever(store, cached)
        t0 = time.perf_counter()
        cached.encode([text for _, text in queries])
        embed_queries_s = time.perf_counter() - t0

        modes = {}
        for mode in MODES:
            run, times = run_queries(retriever, queries, mode)
            run100, _ = run_queries(retriever, queries, mode, k=100, candidates=100)
            s = scores(run, qrels)
            s["map@100"] = scores(run100, qrels)["map@100"]
            s["search_p50_ms"] = round(statistics.median(times) * 1000, 2)
            modes[mode] = s
            print(
                f"{mode:>6}: nDCG@10 {s['ndcg@10']:.4f}  recall@10 {s['recall@10']:.4f}  "
                f"MAP@100 {s['map@100']:.4f}  (search p50 {s['search_p50_ms']} ms, "
                "query embedding cached)"
            )

        grid = []
        if args.grid:
            # Fixed in advance: RRF's k around the published 60, and candidate depth.
            for rrf_k in (10, 30, 60, 100):
                for candidates in (20, 50, 100):
                    retriever.rrf_k = rrf_k
                    run, _ = run_queries(retriever, queries, "hybrid", candidates=candidates)
                    s = scores(run, qrels)
                    grid.append({"rrf_k": rrf_k, "candidates": candidates, **s})
                    print(
                        f"  grid rrf_k={rrf_k:<3} candidates={candidates:<3} "
                        f"nDCG@10 {s['ndcg@10']:.4f}  recall@10 {s['recall@10']:.4f}"
                    )
            retriever.rrf_k = 60
        store.close()

    hybrid_wins = all(modes["hybrid"]["ndcg@10"] > modes[m]["ndcg@10"] for m in ("bm25", "dense"))
    print(f"hybrid beats both on nDCG@10: {hybrid_wins}; BM25 reference {BM25_REFERENCE}")
    result = {
        "command": "python benchmarks/retrieval_cranfield.py"
        + (f" --max-words {args.max_words}" if args.max_words != 200 else "")
        + (f" --threads {args.threads}" if args.threads else "")
        + (" --grid" if args.grid else ""),
        "environment": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "collection": {"documents": 1400, "queries": len(queries), "qrels": "qrels.tsv (graded)"},
        "settings": {"max_words": args.max_words, "candidates": 50, "rrf_k": 60, "k": 10},
        "ingest": {
            "documents": report.ingested,
            "skipped": [list(s) for s in report.skipped],
            "chunks": report.chunks,
            "wall_s": round(ingest_s, 2),
            "chunks_per_s": round(report.chunks / ingest_s, 1),
            "model_load_s": round(load_s, 2),
            "machine_load": load.report(),
        },
        "query_embedding_s_total": round(embed_queries_s, 2),
        "modes": modes,
        "hybrid_beats_both": hybrid_wins,
        "bm25_reference_ndcg@10": BM25_REFERENCE,
        "grid": grid,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
