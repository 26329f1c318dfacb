"""The refusal detector's accuracy on real model output, against labels given by hand.

    python benchmarks/refusal_accuracy.py sample RUN_DIR... [--n 200] [--seed 0]
            [--exclude LABELS.jsonl ...] [--name NAME]
        writes benchmarks/data/NAME.todo.jsonl (NAME: refusal_labels): a uniform random
        sample of the refuse/comply responses in the runs, with id, prompt and response only
        (the detector's verdict is left out so the labeller is blind to it); --exclude leaves
        out every case (suite/case id) already in an earlier labelled file, so a fresh sample
        never reuses a looked-at one
    python benchmarks/refusal_accuracy.py measure [--name NAME]
        reads benchmarks/data/NAME.jsonl (the same lines, each with "label":
        "refused" | "complied" added by a person reading the response) and prints, and writes
        to benchmarks/results/NAME_accuracy.json (refusal_labels: refusal_accuracy.json), accuracy /
        precision / recall / F1 of the rules, the classifier and the combined detector, with
        Wilson intervals.

The labelled responses come from harmful, jailbreak and benign-edgy cases: they are for
measuring the detector only, never for training it (its training set is written for the
project: charter/eval/data/refusal_train.jsonl).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from charter.eval.metrics import wilson
from charter.eval.refusal import classifier_only, detect, measure, rules_only
from charter.eval.report import load_results

HERE = Path(__file__).resolve().parent
DEFAULT_NAME = "refusal_labels"


def _paths(name: str) -> tuple[Path, Path, Path]:
    out = "refusal_accuracy" if name == DEFAULT_NAME else f"{name}_accuracy"
    return (
        HERE / "data" / f"{name}.todo.jsonl",
        HERE / "data" / f"{name}.jsonl",
        HERE / "results" / f"{out}.json",
    )


def _case_key(row_id: str) -> str:
    """'charter-raw/harmful/harmful-cyber-0007' -> 'harmful/harmful-cyber-0007'."""
    return "/".join(row_id.split("/")[-2:])


def sample(
    run_dirs: list[Path], n: int, seed: int, exclude: list[Path], name: str = DEFAULT_NAME
) -> None:
    todo_path = _paths(name)[0]
    seen = {
        _case_key(json.loads(line)["id"])
        for path in exclude
        for line in path.read_text().splitlines()
        if line.strip()
    }
    rows = []
    for run_dir in run_dirs:
        run, results = load_results(run_dir)
        for r in results:
            if (
                r["status"] == "ok"
                and r["expected"] in ("refuse", "comply")
                and r["response"]
                and f"{r['suite']}/{r['case_id']}" not in seen
            ):
                rows.append(
                    {
                        "id": f"{run_dir.name}/{r['suite']}/{r['case_id']}",
                        "prompt": r["prompt"],
                        "response": r["response"],
                    }
                )
    rng = random.Random(seed)
    picked = sorted(rng.sample(rows, min(n, len(rows))), key=lambda x: x["id"])
    todo_path.parent.mkdir(parents=True, exist_ok=True)
    with todo_path.open("w") as f:
        for row in picked:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(
        f"wrote {len(picked)} of {len(rows)} responses to {todo_path} "
        f"({len(seen)} already-labelled cases left out)"
    )


def measure_labels(name: str = DEFAULT_NAME) -> None:
    _, labels_path, out_path = _paths(name)
    labelled = []
    for i, line in enumerate(labels_path.read_text().splitlines(), 1):
        row = json.loads(line)
        if row.get("label") not in ("refused", "complied"):
            sys.exit(f"{labels_path}:{i}: label must be 'refused' or 'complied'")
        labelled.append((row["response"], row["label"] == "refused"))
    figures = measure(labelled)
    for which, fn in (("rules", rules_only), ("classifier", classifier_only), ("combined", detect)):
        correct = sum(fn(text).refused == truth for text, truth in labelled)
        low, high = wilson(correct, len(labelled))
        figures[which]["accuracy_low"] = round(low, 4)
        figures[which]["accuracy_high"] = round(high, 4)
    figures["sample"] = {
        "n": len(labelled),
        "refused": sum(t for _, t in labelled),
        "complied": sum(not t for _, t in labelled),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("runs", nargs="+", type=Path)
    s.add_argument("--n", type=int, default=200)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--exclude", type=Path, nargs="*", default=[])
    s.add_argument("--name", default=DEFAULT_NAME)
    m = sub.add_parser("measure")
    m.add_argument("--name", default=DEFAULT_NAME)
    args = ap.parse_args()
    if args.cmd == "sample":
        sample(args.runs, args.n, args.seed, args.exclude, args.name)
    else:
        measure_labels(args.name)


if __name__ == "__main__":
    main()
