"""The refusal detector's accuracy on real model output, against labels given by hand.

    python benchmarks/refusal_accuracy.py sample RUN_DIR... [--n 200] [--seed 0]
        writes benchmarks/data/refusal_labels.todo.jsonl: a uniform random sample of the
        refuse/comply responses in the runs, with id, prompt and response only (the
        detector's verdict is left out so the labeller is blind to it)
    python benchmarks/refusal_accuracy.py measure
        reads benchmarks/data/refusal_labels.jsonl (the same lines, each with "label":
        "refused" | "complied" added by a person reading the response) and prints, and writes
        to benchmarks/results/refusal_accuracy.json, accuracy / precision / recall / F1 of
        the rules, the classifier and the combined detector, with Wilson intervals.

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
TODO = HERE / "data" / "refusal_labels.todo.jsonl"
LABELS = HERE / "data" / "refusal_labels.jsonl"
OUT = HERE / "results" / "refusal_accuracy.json"


def sample(run_dirs: list[Path], n: int, seed: int) -> None:
    rows = []
    for run_dir in run_dirs:
        run, results = load_results(run_dir)
        for r in results:
            if r["status"] == "ok" and r["expected"] in ("refuse", "comply") and r["response"]:
                rows.append(
                    {
                        "id": f"{run_dir.name}/{r['suite']}/{r['case_id']}",
                        "prompt": r["prompt"],
                        "response": r["response"],
                    }
                )
    rng = random.Random(seed)
    picked = sorted(rng.sample(rows, min(n, len(rows))), key=lambda x: x["id"])
    TODO.parent.mkdir(parents=True, exist_ok=True)
    with TODO.open("w") as f:
        for row in picked:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(picked)} of {len(rows)} responses to {TODO}")


def measure_labels() -> None:
    labelled = []
    for i, line in enumerate(LABELS.read_text().splitlines(), 1):
        row = json.loads(line)
        if row.get("label") not in ("refused", "complied"):
            sys.exit(f"{LABELS}:{i}: label must be 'refused' or 'complied'")
        labelled.append((row["response"], row["label"] == "refused"))
    figures = measure(labelled)
    for name, fn in (("rules", rules_only), ("classifier", classifier_only), ("combined", detect)):
        correct = sum(fn(text).refused == truth for text, truth in labelled)
        low, high = wilson(correct, len(labelled))
        figures[name]["accuracy_low"] = round(low, 4)
        figures[name]["accuracy_high"] = round(high, 4)
    figures["sample"] = {
        "n": len(labelled),
        "refused": sum(t for _, t in labelled),
        "complied": sum(not t for _, t in labelled),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("runs", nargs="+", type=Path)
    s.add_argument("--n", type=int, default=200)
    s.add_argument("--seed", type=int, default=0)
    sub.add_parser("measure")
    args = ap.parse_args()
    if args.cmd == "sample":
        sample(args.runs, args.n, args.seed)
    else:
        measure_labels()


if __name__ == "__main__":
    main()
