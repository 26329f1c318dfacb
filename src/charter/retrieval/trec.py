"""TREC-style evaluation in a few lines of our own: read queries, qrels and runs, write runs,
and score nDCG@10, recall@10 and MAP@100 (trec_eval's definitions, linear gains).

Conventions (those of trec_eval / pytrec_eval, as BEIR reports them): the gain of a document
is its judged grade (grades <= 0 and unjudged documents gain nothing); the ideal ranking is
all judged documents by grade; a query counts when it has at least one relevant document,
and scores 0 when the run has nothing for it. Documents are taken in the run's rank order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

from charter.errors import RequestError

Qrels = dict[str, dict[str, int]]  # query id -> doc id -> grade


def read_queries(path: Path) -> list[tuple[str, str]]:
    """(id, text) from a JSONL file of {"_id", "text"}. RequestError names file:line."""
    out, seen = [], set()
    for lineno, line in _lines(path):
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RequestError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or "_id" not in obj or not isinstance(obj.get("text"), str):
            raise RequestError(f'{where}: a query line needs "_id" and a "text" string')
        qid = str(obj["_id"])
        if not obj["text"].strip():
            raise RequestError(f"{where}: query {qid!r} has empty text")
        if qid in seen:
            raise RequestError(f"{where}: query id {qid!r} appears twice")
        seen.add(qid)
        out.append((qid, obj["text"]))
    if not out:
        raise RequestError(f"{path}: no queries in it")
    return out


def read_qrels(path: Path) -> Qrels:
    """Judgements from a BEIR qrels TSV (`query-id corpus-id score`, header optional) or a
    TREC qrels file (`qid iteration docid grade`). RequestError names file:line."""
    qrels: Qrels = {}
    for lineno, line in _lines(path):
        fields = line.split()
        if len(fields) not in (3, 4):
            raise RequestError(f"{path}:{lineno}: expected 3 or 4 fields, found {len(fields)}")
        qid, docid, grade = fields[0], fields[-2], fields[-1]
        try:
            value = int(float(grade))
        except ValueError:
            if lineno == 1:  # a header such as "query-id corpus-id score"
                continue
            raise RequestError(f"{path}:{lineno}: grade {grade!r} is not a number") from None
        qrels.setdefault(qid, {})[docid] = value
    return qrels


def write_run(
    out: TextIO, run: Mapping[str, Iterable[tuple[str, float]]], tag: str = "charter"
) -> int:
    """Write `qid Q0 docid rank score tag` lines (ranks from 1, in the given order); return
    how many lines were written."""
    check_tag(tag)
    n = 0
    for qid, docs in run.items():
        for rank, (docid, score) in enumerate(docs, 1):
            out.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
            n += 1
    return n


def check_tag(tag: str) -> None:
    """Raises RequestError unless `tag` can be a run's last column (one word)."""
    if not tag or any(c.isspace() for c in tag):
        raise RequestError(f"the run tag must be one word, not {tag!r}")


def read_run(path: Path) -> dict[str, list[str]]:
    """A TREC run: query id -> doc ids by rank."""
    ranked: dict[str, list[tuple[int, str]]] = {}
    for lineno, line in _lines(path):
        fields = line.split()
        if len(fields) != 6:
            raise RequestError(f"{path}:{lineno}: a run line has 6 fields, found {len(fields)}")
        try:
            rank = int(fields[3])
        except ValueError:
            raise RequestError(f"{path}:{lineno}: rank {fields[3]!r} is not a number") from None
        ranked.setdefault(fields[0], []).append((rank, fields[2]))
    return {q: [d for _, d in sorted(docs)] for q, docs in ranked.items()}


def dcg(gains: Iterable[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranked: list[str], judged: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with gain = grade (grades <= 0 count as 0)."""
    ideal = dcg(sorted((max(g, 0) for g in judged.values()), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg(max(judged.get(d, 0), 0) for d in ranked[:k]) / ideal


def recall_at_k(ranked: list[str], judged: Mapping[str, int], k: int = 10) -> float:
    """Share of the relevant (grade > 0) documents found in the top k."""
    relevant = {d for d, g in judged.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def average_precision(ranked: list[str], judged: Mapping[str, int], k: int = 100) -> float:
    """AP over the top k: mean of precision at each relevant document's rank, over all
    relevant documents (those not retrieved count 0)."""
    relevant = {d for d, g in judged.items() if g > 0}
    if not relevant:
        return 0.0
    found, total = 0, 0.0
    for i, d in enumerate(ranked[:k], 1):
        if d in relevant:
            found += 1
            total += found / i
    return total / len(relevant)


def evaluate(run: Mapping[str, list[str]], qrels: Qrels) -> dict:
    """Mean nDCG@10, recall@10 and MAP@100 over the queries with a relevant document, and
    each query's figures under "per_query"."""
    per_query = {}
    for qid, judged in qrels.items():
        if not any(g > 0 for g in judged.values()):
            continue
        ranked = list(run.get(qid, []))
        per_query[qid] = {
            "ndcg@10": ndcg_at_k(ranked, judged, 10),
            "recall@10": recall_at_k(ranked, judged, 10),
            "map@100": average_precision(ranked, judged, 100),
        }
    n = len(per_query)
    means = {
        m: (sum(q[m] for q in per_query.values()) / n if n else 0.0)
        for m in ("ndcg@10", "recall@10", "map@100")
    }
    return {**means, "queries": n, "per_query": per_query}


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    """(line number, text) of the non-blank lines; RequestError when unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise RequestError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestError(f"cannot read {path}: {exc}") from None
    return [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
