"""Bulk embedding speed of all-MiniLM-L6-v2 on CPU, setting by setting, and what each costs.

Embeds the first N Cranfield chunks exactly as `charter ingest` makes them (chunk_document,
passage_text) and calls encode as ingest does (one call per flush of >= EMBED_BATCH chunks,
or, marked "one call", all N at once). Every variant runs once per round, rounds interleaved,
so a load from other programs hits them alike; each run records the 1-minute load average
and the share of the CPU other programs took (benchmarks/_machine.py). Vectors are compared
with the float32 reference (256 tokens): mean and min cosine per chunk.

Usage: python benchmarks/embed_speed.py [--n 600] [--rounds 3] [--before REV] [--json OUT]
--before REV also times embed.py as committed at REV (read with `git show`), as "before";
f897a0a is the embedder before this tuning (batches of 32 by characters, pooler run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _machine import ForeignLoad

from charter.retrieval.chunking import DEFAULT_MAX_WORDS, chunk_document
from charter.retrieval.documents import Source, iter_sources
from charter.retrieval.embed import INT8_LAYERS, MAX_TOKENS, MiniLMEmbedder
from charter.retrieval.ingest import EMBED_BATCH, passage_text

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATA = ROOT.parent.parent / "shared" / "data" / "cranfield"
ALL_LINEAR = r"\.(query|key|value|dense)$"
#: Runs while other programs took less than this share of the CPU count as quiet.
QUIET = 0.1


@dataclass(frozen=True)
class Variant:
    name: str
    threads: int = 2
    batch_size: int = 16
    quantize: bool = False
    int8_layers: str = INT8_LAYERS
    max_tokens: int = MAX_TOKENS
    one_call: bool = False  # all chunks in one encode call instead of ingest's flushes
    before: bool = False  # embed.py as committed at --before

    def embedder(self, before_module) -> object:
        if self.before:
            return before_module.MiniLMEmbedder(batch_size=self.batch_size)
        return MiniLMEmbedder(
            batch_size=self.batch_size,
            max_tokens=self.max_tokens,
            quantize=self.quantize,
            int8_layers=self.int8_layers,
        )


VARIANTS = [
    Variant("before: fp32 2 threads batch 32", batch_size=32, before=True),
    Variant("fp32 2 threads batch 4", batch_size=4),
    Variant("fp32 2 threads batch 8", batch_size=8),
    Variant("fp32 2 threads batch 16"),
    Variant("fp32 2 threads batch 32", batch_size=32),
    Variant("fp32 2 threads batch 64", batch_size=64),
    Variant("fp32 2 threads batch 16, one call", one_call=True),
    Variant("fp32 2 threads batch 128, one call", batch_size=128, one_call=True),
    Variant("fp32 1 thread batch 16", threads=1),
    Variant("int8 (INT8_LAYERS) 2 threads batch 8", batch_size=8, quantize=True),
    Variant("int8 (INT8_LAYERS) 2 threads batch 16", quantize=True),
    Variant("int8 all Linear 2 threads batch 16", quantize=True, int8_layers=ALL_LINEAR),
    Variant("fp32 max 128 tokens 2 threads batch 16", max_tokens=128),
]


def ingest_groups(path: Path, n: int, max_words: int) -> list[list[str]]:
    """The first `n` chunks' passage texts, grouped as ingest's flushes would embed them."""
    groups, pending, total = [], [], 0
    for item in iter_sources(path):
        if not isinstance(item, Source):
            continue
        try:
            doc = item.load()
        except Exception:  # skipped by ingest too (empty text)
            continue
        pending += [
            passage_text(doc.title, c.heading, c.text) for c in chunk_document(doc, max_words)
        ]
        if len(pending) >= EMBED_BATCH:
            groups.append(pending)
            total += len(pending)
            pending = []
            if total >= n:
                break
    if pending and total < n:
        groups.append(pending)
    out, left = [], n
    for g in groups:
        if left > 0:
            out.append(g[:left])
            left -= len(out[-1])
    return out


def load_before(rev: str):
    """embed.py as committed at `rev`, imported as a module of its own (its own model)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/charter/retrieval/embed.py"],
        cwd=ROOT.parent,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="embed-before-")) / "embed_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("embed_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["embed_before"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def token_lengths(texts: list[str]) -> dict:
    from transformers import AutoTokenizer

    from charter.retrieval.embed import model_path

    tok = AutoTokenizer.from_pretrained(model_path(), local_files_only=True)
    lengths = np.array([len(ids) for ids in tok(texts)["input_ids"]])
    pct = np.percentile(lengths, [10, 50, 90, 99])
    return {
        "mean": round(float(lengths.mean()), 1),
        "p10_p50_p90_p99": [int(x) for x in pct],
        "max": int(lengths.max()),
        "share_over_128": round(float((lengths > 128).mean()), 3),
        "share_over_256": round(float((lengths > 256).mean()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=600, help="chunks to embed per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-words", type=int, default=DEFAULT_MAX_WORDS)
    parser.add_argument("--before", default=None, help="also time embed.py at this git rev")
    parser.add_argument(
        "--only", default=None, help="comma-separated substrings: run the variants matching one"
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "embed_speed.json")
    args = parser.parse_args()

    import torch

    groups = ingest_groups(args.data / "corpus.jsonl", args.n, args.max_words)
    texts = [t for g in groups for t in g]
    before = load_before(args.before) if args.before else None
    variants = [v for v in VARIANTS if before or not v.before]
    if args.only:
        keys = args.only.split(",")
        variants = [v for v in variants if any(k in v.name for k in keys)]
    print(f"{len(texts)} chunks in {len(groups)} ingest flushes; token lengths:", flush=True)
    lengths = token_lengths(texts)
    print(f"  {lengths}", flush=True)

    torch.set_num_threads(2)
    reference = MiniLMEmbedder(batch_size=16).encode(texts)  # fp32, 256 tokens
    embedders = {}
    for v in variants:  # loading and quantising happen here, outside the timings
        torch.set_num_threads(v.threads)
        embedders[v.name] = v.embedder(before)
        embedders[v.name].encode(texts[:4])

    runs: dict[str, list[dict]] = {v.name: [] for v in variants}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for v in variants:
            torch.set_num_threads(v.threads)
            embedder = embedders[v.name]
            calls = [texts] if v.one_call else groups
            with ForeignLoad() as load:
                out = np.concatenate([embedder.encode(g) for g in calls])
            vectors[v.name] = out
            run = {
                "chunks_per_s": round(len(texts) / load.wall, 2),
                "loadavg_1m": round(os.getloadavg()[0], 2),
                **load.report(),
            }
            runs[v.name].append(run)
            print(
                f"round {r + 1} {v.name:<42} {run['chunks_per_s']:6.1f} chunks/s  "
                f"load {run['loadavg_1m']:.2f}  foreign {run['foreign_share']:.2f}",
                flush=True,
            )

    results = []
    for v in variants:
        cos = (vectors[v.name] * reference).sum(1)
        speeds = [run["chunks_per_s"] for run in runs[v.name]]
        quiet = [run["chunks_per_s"] for run in runs[v.name] if run["foreign_share"] < QUIET]
        results.append(
            {
                "name": v.name,
                "settings": {k: val for k, val in asdict(v).items() if k != "name"},
                "chunks_per_s_median": round(statistics.median(speeds), 2),
                "chunks_per_s_median_quiet": round(statistics.median(quiet), 2) if quiet else None,
                "cosine_mean": round(float(cos.mean()), 5),
                "cosine_min": round(float(cos.min()), 5),
                "max_abs_diff": float(np.abs(vectors[v.name] - reference).max()),
                "runs": runs[v.name],
            }
        )
    print(f"\n{'variant':<42} {'chunks/s':>8} {'quiet':>6} {'cos mean':>9} {'cos min':>8}")
    for res in results:
        quiet = res["chunks_per_s_median_quiet"]
        print(
            f"{res['name']:<42} {res['chunks_per_s_median']:8.1f} "
            f"{quiet if quiet is not None else '-':>6} "
            f"{res['cosine_mean']:9.5f} {res['cosine_min']:8.5f}"
        )
    result = {
        "command": "python benchmarks/embed_speed.py " + " ".join(sys.argv[1:]),
        "environment": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "quantized_engine": torch.backends.quantized.engine,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "chunks": len(texts),
        "ingest_flushes": len(groups),
        "embed_batch": EMBED_BATCH,
        "token_lengths": lengths,
        "reference": "fp32, 256 tokens (the default MiniLMEmbedder)",
        "rounds": args.rounds,
        "before_rev": args.before,
        "quiet": f"chunks_per_s_median_quiet: median of the runs with foreign_share < {QUIET}",
        "variants": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
