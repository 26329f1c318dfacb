"""Citation precision of answers from documents, with the real model through the pipeline.

The set (benchmarks/data/grounded_qa, written for Charter): 10 short documents on made-up
subjects (so the model cannot answer from memory), 30 questions each answered by a named
sentence of one document, and 10 questions no document covers. The documents are ingested
with all-MiniLM-L6-v2; each question is asked once through `Runtime.pipeline` (greedy), with
post-hoc attribution off so the model's own marks are measured; what attribution would add
is computed on the same answers.

A mark [n] ending sentence S is *supported* when
  - answer rule: S contains one of the question's answer strings and passage n contains one
    of its evidence sentences (the passage is where the answer is stated); or
  - overlap rule: at least 60% of S's content words (and at least 3 of them) occur in
    passage n, and every number in S occurs in passage n (S repeats what the passage says).
Limits: word overlap is not entailment (a sentence can reuse a passage's words and still
get it wrong, e.g. a negation), and the overlap rule is the very test attribution uses, so
attributed marks are also scored by the answer rule alone (`strict`). A correct sentence
that paraphrases the passage and does not contain the answer string counts as unsupported.

The threshold (retrieval_min_score) is checked on a second, real collection too with
`--cranfield ../shared/data/cranfield`: every Cranfield query has relevant documents, so
its best passage should score above the threshold, and the out-of-collection questions
(about other things entirely) below it.

Usage: .venv/bin/python benchmarks/citation_precision.py [--k 4] [--threshold 0.35]
           [--cranfield ../shared/data/cranfield]
Writes benchmarks/results/citation_precision.json.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from charter.config import Settings
from charter.retrieval.citations import (
    attribute,
    content_words,
    numbers_agree,
    overlap,
    sentences,
)
from charter.retrieval.embed import get_embedder
from charter.retrieval.ingest import ingest
from charter.retrieval.store import open_store
from charter.runtime import Runtime
from charter.types import Message, Params, Turn

DATA = Path(__file__).parent / "data" / "grounded_qa"
OUT = Path(__file__).parent / "results" / "citation_precision.json"
COLLECTION = "grounded"
MIN_OVERLAP = 0.6
MIN_WORDS = 3


def states(text: str, answers: list[str]) -> bool:
    """Whether `text` contains one of `answers` as whole words ("31" is not in "31.5")."""
    return any(
        re.search(rf"(?<![\w.,]){re.escape(a)}(?![\w]|[.,]\d)", text, re.IGNORECASE)
        for a in answers
    )


def supported(sentence: str, passage: str, q: dict[str, Any]) -> dict[str, bool]:
    """Which rules say `passage` supports `sentence` (see the module docstring)."""
    answer = states(sentence, q["answer"]) and any(e in passage for e in q["evidence"])
    lexical = (
        len(content_words(sentence)) >= MIN_WORDS
        and overlap(sentence, passage) >= MIN_OVERLAP
        and numbers_agree(sentence, passage)
    )
    return {"answer": answer, "overlap": lexical, "any": answer or lexical}


def score_marks(text: str, passages: dict[int, str], q: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (sentence, cited number) in `text`."""
    rows = []
    for s in sentences(text):
        for n in s.numbers:
            passage = passages.get(n)
            verdict = supported(s.text, passage, q) if passage is not None else {}
            rows.append({"sentence": s.text, "n": n, **verdict})
    return rows


def ask(rt: Runtime, question: str, k: int, max_tokens: int) -> Turn:
    turn = rt.new_turn(
        [Message(role="user", content=question)],
        Params(temperature=0.0, max_tokens=max_tokens, seed=0),
        retrieval=rt.retrieval_request(COLLECTION, k),
        source="benchmark",
    )
    return rt.pipeline.run(turn)


def run_question(rt: Runtime, q: dict[str, Any], k: int, max_tokens: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    turn = ask(rt, q["question"], k, max_tokens)
    trace = next(s for s in turn.stages if s.stage == "retrieval").detail
    passages = {int(s.id): s.text for s in turn.sources if s.origin == "retrieval"}
    given_docs = {int(s.id): Path(s.doc_id or "").name for s in turn.sources if s.doc_id}
    answer = turn.answer
    row: dict[str, Any] = {
        "id": q["id"],
        "question": q["question"],
        "in_collection": q["doc"] is not None,
        "answered": trace["answered"],
        "top_score": trace["top_score"],
        "passages": given_docs,
        "gold_given": q["doc"] in given_docs.values() if q["doc"] else None,
        "answer": answer,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if not trace["answered"]:
        return row
    with_attr, added = attribute(answer, passages)
    model_rows = score_marks(answer, passages, q)
    attributed_numbers = {(a["sentence"], a["n"]) for a in added}
    attr_rows = [
        r
        for r in score_marks(with_attr, passages, q)
        if (r["sentence"], r["n"]) in attributed_numbers
    ]
    row.update(
        correct=states(answer, q["answer"]) if q["doc"] else None,
        dropped_marks=trace["marks"]["dropped"],
        filtered=trace.get("filtered", []),
        model_marks=model_rows,
        attributed_marks=attr_rows,
        with_attribution=with_attr,
    )
    return row


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def precision(rows: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    good = sum(1 for r in rows if r.get(rule))
    return {"marks": len(rows), "supported": good, "precision": share(good, len(rows))}


def spread(name: str, values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        f"{name}_min": min(values),
        f"{name}_median": round(statistics.median(values), 4),
        f"{name}_max": max(values),
    }


def summarise(results: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    inside = [r for r in results if r["in_collection"]]
    outside = [r for r in results if not r["in_collection"]]
    answered = [r for r in inside if r["answered"]]
    model = [m for r in answered for m in r["model_marks"]]
    attributed = [m for r in answered for m in r["attributed_marks"]]
    both = model + attributed
    return {
        "questions": len(inside),
        "answered": len(answered),
        "false_declines": [r["id"] for r in inside if not r["answered"]],
        "gold_passage_given": sum(1 for r in answered if r["gold_given"]),
        "answer_contains_answer_string": sum(1 for r in answered if r["correct"]),
        "answers_with_any_model_citation": sum(1 for r in answered if r["model_marks"]),
        "answers_with_any_citation_with_attribution": sum(
            1 for r in answered if r["model_marks"] or r["attributed_marks"]
        ),
        "invalid_marks_dropped": sum(len(r["dropped_marks"]) for r in answered),
        "filtered_sentences_in_benign_documents": sum(len(r["filtered"]) for r in answered),
        "model_marks": {rule: precision(model, rule) for rule in ("any", "answer", "overlap")},
        "attributed_marks": {
            rule: precision(attributed, rule) for rule in ("any", "answer", "overlap")
        },
        "model_and_attributed": {rule: precision(both, rule) for rule in ("any", "answer")},
        "out_of_collection": {
            "questions": len(outside),
            "declined": sum(1 for r in outside if not r["answered"]),
            "answered_anyway": [r["id"] for r in outside if r["answered"]],
        },
        "top_score": {
            "threshold": threshold,
            **spread("in_collection", [r["top_score"] for r in inside]),
            **spread("out_of_collection", [r["top_score"] for r in outside]),
        },
    }


def calibrate_cranfield(
    folder: Path, rt: Runtime, threshold: float, off_topic: list[str]
) -> dict[str, Any]:
    """Best dense cosine per Cranfield query (all on-topic) and per off-topic question."""
    with open_store(rt.settings.retrieval_location) as store:
        ingest([folder / "corpus.jsonl"], store, "cranfield", embedder=rt.retriever().embedder)
    retriever = rt.retriever()

    def best(query: str) -> float:
        hits = retriever.search(query, "cranfield", k=rt.settings.retrieval_k)
        return max((h.dense_score for h in hits if h.dense_score is not None), default=-1.0)

    queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").open()]
    on = sorted(best(q) for q in queries)
    off = [round(best(q), 4) for q in off_topic]
    return {
        "queries": len(on),
        "on_topic_below_threshold": sum(1 for x in on if x < threshold),
        "on_topic_percentiles": {
            p: round(on[min(len(on) - 1, int(len(on) * p / 100))], 4) for p in (1, 5, 10, 50)
        },
        "off_topic_scores": off,
        "off_topic_at_or_above_threshold": sum(1 for x in off if x >= threshold),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--k", type=int, default=Settings().retrieval_k)
    ap.add_argument("--threshold", type=float, default=Settings().retrieval_min_score)
    ap.add_argument("--max-tokens", type=int, default=100)
    ap.add_argument("--model", type=Path, default=None, help="a GGUF file (default: embedded)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--cranfield", type=Path, default=None, help="also check the threshold on Cranfield"
    )
    args = ap.parse_args()

    questions = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines()]
    if args.limit:
        questions = questions[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            home=Path(tmp),
            model=args.model,
            retrieval_min_score=args.threshold,
            retrieval_attribution=False,
        )
        embedder = get_embedder()
        with open_store(settings.retrieval_location) as store:
            ingest([DATA / "docs"], store, COLLECTION, embedder=embedder, progress=False)
        rt = Runtime(settings, embedder=embedder)
        rt.load()
        t0 = time.perf_counter()
        results = []
        for q in questions:
            row = run_question(rt, q, args.k, args.max_tokens)
            results.append(row)
            marks = "".join("+" if m["any"] else "-" for m in row.get("model_marks", []))
            state = "declined" if not row["answered"] else f"marks {marks or '(none)'}"
            print(f"{q['id']:10} top {row['top_score']:.2f}  {state}")
        elapsed = time.perf_counter() - t0
        model_id = rt.info["id"]
        summary = summarise(results, args.threshold)
        if args.cranfield:
            off_topic = [q["question"] for q in questions if q["doc"] is None]
            summary["cranfield"] = calibrate_cranfield(
                args.cranfield, rt, args.threshold, off_topic
            )
        rt.close()

    out = {
        "benchmark": "citation_precision",
        "command": "benchmarks/citation_precision.py "
        + f"--k {args.k} --threshold {args.threshold} --max-tokens {args.max_tokens}"
        + (f" --cranfield {args.cranfield}" if args.cranfield else ""),
        "model": model_id,
        "embedder": "all-MiniLM-L6-v2",
        "settings": {
            "k": args.k,
            "threshold": args.threshold,
            "temperature": 0.0,
            "attribution_min_overlap": inspect.signature(attribute)
            .parameters["min_overlap"]
            .default,
        },
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "seconds": round(elapsed, 1),
        "summary": summary,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
