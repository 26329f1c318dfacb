"""TREC evaluation on an example small enough to compute by hand (worked out in comments)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest

from charter.errors import RequestError
from charter.retrieval.trec import (
    average_precision,
    evaluate,
    ndcg_at_k,
    read_qrels,
    read_queries,
    read_run,
    recall_at_k,
    write_run,
)

# q1: d1 grade 3, d2 grade 1, d3 judged not relevant, d4 grade 2 (never retrieved).
Q1 = {"d1": 3, "d2": 1, "d3": 0, "d4": 2}
RUN1 = ["d2", "dx", "d1", "d3"]


def test_ndcg_by_hand() -> None:
    # DCG = 1/log2(2) + 0 + 3/log2(4) + 0 = 1 + 1.5 = 2.5
    # IDCG = 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.2618595 + 0.5 = 4.7618595
    assert ndcg_at_k(RUN1, Q1, 10) == pytest.approx(2.5 / 4.7618595, abs=1e-7)
    assert ndcg_at_k(RUN1, Q1, 10) == pytest.approx(0.5250050, abs=1e-6)
    # @2: DCG = 1, IDCG = 3 + 1.2618595
    assert ndcg_at_k(RUN1, Q1, 2) == pytest.approx(1 / (3 + 2 / math.log2(3)))
    assert ndcg_at_k(["d1", "d4", "d2"], Q1, 10) == pytest.approx(1.0)
    assert ndcg_at_k(RUN1, {"d9": 0}, 10) == 0.0


def test_recall_and_average_precision_by_hand() -> None:
    # relevant: d1, d2, d4; top 10 holds d2 and d1
    assert recall_at_k(RUN1, Q1, 10) == pytest.approx(2 / 3)
    assert recall_at_k(RUN1, Q1, 1) == pytest.approx(1 / 3)
    # precision at d2 (rank 1) = 1, at d1 (rank 3) = 2/3; d4 missing counts 0: (1 + 2/3) / 3
    assert average_precision(RUN1, Q1, 100) == pytest.approx(5 / 9)
    assert average_precision(RUN1, Q1, 2) == pytest.approx(1 / 3)


def test_evaluate_averages_over_queries_with_relevant_documents() -> None:
    qrels = {"q1": Q1, "q2": {"d5": 1}, "q3": {"d6": 0}}
    result = evaluate({"q1": RUN1, "qx": ["d5"]}, qrels)  # q2 missing from the run: scores 0
    assert result["queries"] == 2  # q3 has nothing relevant: not counted
    assert result["ndcg@10"] == pytest.approx(0.5250050 / 2, abs=1e-6)
    assert result["recall@10"] == pytest.approx(1 / 3)
    assert result["map@100"] == pytest.approx(5 / 18)
    assert result["per_query"]["q2"] == {"ndcg@10": 0.0, "recall@10": 0.0, "map@100": 0.0}


def test_qrels_in_beir_and_trec_layouts(tmp_path: Path) -> None:
    beir = tmp_path / "qrels.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\n1\t184\t3\n1\t29\t4\n2\t12\t1\n")
    assert read_qrels(beir) == {"1": {"184": 3, "29": 4}, "2": {"12": 1}}
    trec = tmp_path / "qrels.txt"
    trec.write_text("1 0 184 3\n1 0 29 -1\n")
    assert read_qrels(trec) == {"1": {"184": 3, "29": -1}}
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\t184\t3\n1\t29\tlots\n")
    with pytest.raises(RequestError, match=r"bad.tsv:2: grade 'lots' is not a number"):
        read_qrels(bad)


def test_run_round_trip() -> None:
    out = io.StringIO()
    n = write_run(out, {"1": [("d2", 0.9), ("d1", 0.5)], "2": [("d7", 1.25)]}, tag="hyb")
    assert n == 3
    assert out.getvalue() == (
        "1 Q0 d2 1 0.900000 hyb\n1 Q0 d1 2 0.500000 hyb\n2 Q0 d7 1 1.250000 hyb\n"
    )
    with pytest.raises(RequestError, match="one word"):
        write_run(io.StringIO(), {}, tag="two words")


def test_read_run_orders_by_rank(tmp_path: Path) -> None:
    path = tmp_path / "run.tsv"
    path.write_text("1 Q0 b 2 0.5 t\n1 Q0 a 1 0.9 t\n2 Q0 c 1 0.1 t\n")
    assert read_run(path) == {"1": ["a", "b"], "2": ["c"]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"_id": "1", "text": "ok"}\n{"_id": 2, "text": \n', r"q.jsonl:2: not valid JSON"),
        (
            '{"_id": "1", "text": "ok"}\n\n{"text": "no id"}\n',
            r'q.jsonl:3: a query line needs "_id"',
        ),
        ('{"_id": "1", "text": "  "}\n', r"q.jsonl:1: query '1' has empty text"),
        (
            '{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n',
            r"q.jsonl:2: query id '1' appears",
        ),
        ("\n", r"q.jsonl: no queries in it"),
    ],
)
def test_bad_query_files_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(content)
    with pytest.raises(RequestError, match=message) as err:
        read_queries(path)
    assert "\n" not in str(err.value)


def test_queries_read_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"_id": 1, "text": "first"}\n{"_id": "b", "text": "second"}\n')
    assert read_queries(path) == [("1", "first"), ("b", "second")]
    with pytest.raises(RequestError, match="no such file"):
        read_queries(tmp_path / "missing.jsonl")
