"""The constitution screens' accuracy on held-out examples, their calibration, and their cost.

    python benchmarks/screen_accuracy.py              # held-out measurement (the report)
    python benchmarks/screen_accuracy.py --validate   # compare trainer settings (training part)

The default constitution's examples are split, per principle and per list (covers,
not_covers, each harmless class) with a fixed seed, into 80% for training and 20% held out.
The screen is trained on the 80% only (`Screen(exclude=held_out)`): a held-out text, and so
every rewording of it, never reaches training. The uphold principles' texts always train
(they are negatives, never measured).

Per harm principle, at its threshold from the constitution, on the held-out originals:
positives are its held-out covers; negatives are the held-out not_covers of every principle,
the held-out harmless examples, and the other harm principles' held-out covers (a screen
that fires the wrong principle is counted wrong: `precision`; `precision_benign` counts only
benign negatives, which is what decides whether a benign request is refused). Brier score
and a 5-bin reliability table (mean predicted vs observed frequency, pooled over principles)
show calibration. The any-principle false-positive rate on held-out harmless examples is what
a user with a benign request sees. Everything is repeated on rewordings (`augment`, seed 0,
6 per text) of the held-out texts. Train time is a cold training with all-MiniLM-L6-v2 at 1
torch thread; score() latency is measured for a short prompt and a ~150-word answer, 1 torch
thread, 50 runs each.

`--validate` never reads the held-out 20%: it runs a grouped 5-fold cross-validation over
the training 80% (each fold's texts and their rewordings excluded from that fold's screen)
for several trainer settings, and writes benchmarks/results/screen_accuracy_validation.json.
The defaults in `TrainSettings` were chosen from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import ForeignLoad  # noqa: E402

from charter.constitution.augment import AUGMENT_VERSION, augment_one  # noqa: E402
from charter.constitution.loader import load_default  # noqa: E402
from charter.constitution.schema import Constitution  # noqa: E402
from charter.constitution.screen import (  # noqa: E402
    OPENING_WORDS,
    TRAINER_VERSION,
    Screen,
    TrainSettings,
    embedder_id,
    load_answers,
)
from charter.constitution.stage import OUTPUT_FLOOR  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "screen_accuracy.json"
OUT_VALIDATE = HERE / "results" / "screen_accuracy_validation.json"
HOLD_FRACTION = 0.2
CV_FOLDS = 5
BINS = 5
RUNS = 50
REWORDINGS = 6

SHORT_PROMPT = "What's a good way to keep basil alive on a windowsill?"
# About 150 words, benign, written for this benchmark.
LONG_ANSWER = (
    "Sourdough starts with a starter, a mix of flour and water that wild yeast and bacteria "
    "have colonised. Feed it equal weights of flour and water once a day and keep it in a "
    "warm spot; after five to seven days it should double within a few hours of feeding and "
    "smell pleasantly sour. For the dough, mix 500 grams of bread flour with 350 grams of "
    "water and let it rest for half an hour, which makes the gluten easier to develop. Then "
    "add 100 grams of active starter and 10 grams of salt, and squeeze everything together "
    "until it is even. Over the next three hours, stretch and fold the dough every half hour. "
    "Shape it into a tight round, put it in a floured basket and leave it in the fridge "
    "overnight. Bake it in a very hot covered pot for twenty minutes, then uncover it and "
    "bake until the crust is deep brown. Let it cool for an hour before slicing."
)

Held = dict[str, dict[str, list[str]]]


class MemoEmbedder:
    """Embeds each distinct text once (validation trains many screens on the same texts)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.dim = inner.dim
        self.id = "memo(" + embedder_id(inner) + ")"
        self.memo: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if todo:
            for t, v in zip(todo, self.inner.encode(todo), strict=True):
                self.memo[t] = v
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.memo[t] for t in texts])


# --------------------------------------------------------------------------- the split


def _lists(c: Constitution) -> dict[str, dict[str, tuple[str, ...]]]:
    return {
        "covers": {p.id: p.covers for p in c.harm_principles},
        "not_covers": {p.id: p.not_covers for p in c.harm_principles},
        "harmless": {h.id: h.examples for h in c.harmless},
    }


def split(c: Constitution, seed: int, fraction: float = HOLD_FRACTION) -> Held:
    """{"covers": {pid: texts}, "not_covers": {pid: texts}, "harmless": {cid: texts}}: the
    held-out texts, per list a seeded shuffle's first round(fraction * n) (>= 1 of 2+)."""
    out: Held = {}
    for part, lists in _lists(c).items():
        out[part] = {}
        for key, texts in lists.items():
            order = list(texts)
            random.Random(f"{seed}:{part}:{key}").shuffle(order)
            n = max(1, round(fraction * len(order))) if len(order) >= 2 else 0
            out[part][key] = order[:n]
    return out


def cv_folds(c: Constitution, outer: set[str], seed: int, k: int = CV_FOLDS) -> list[Held]:
    """k folds over the texts not in `outer`, per list a seeded shuffle dealt round-robin."""
    folds: list[Held] = [{} for _ in range(k)]
    for part, lists in _lists(c).items():
        for fold in folds:
            fold[part] = {}
        for key, texts in lists.items():
            order = [t for t in texts if t not in outer]
            random.Random(f"cv{seed}:{part}:{key}").shuffle(order)
            for i, fold in enumerate(folds):
                fold[part][key] = order[i::k]
    return folds


def held_texts(held: Held) -> set[str]:
    return {t for part in held.values() for texts in part.values() for t in texts}


# --------------------------------------------------------------------------- measurement


@dataclass
class Record:
    """One evaluated text: which principles it covers (none: benign), whether it is a
    not_cover or which harmless class, and what the screen said."""

    text: str
    owners: set[str] = field(default_factory=set)
    not_cover: bool = False
    harmless: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)
    view: dict[str, str] = field(default_factory=dict)


def score_records(screen: Screen, held: Held, *, reworded: bool) -> list[Record]:
    """Score every held-out text (or each of its rewordings) with `screen`."""

    def expand(text: str) -> list[str]:
        if not reworded:
            return [text]
        return [new for _, new in augment_one(text, "auto", 0, REWORDINGS)]

    records: dict[str, Record] = {}
    for pid, texts in held["covers"].items():
        for t in texts:
            for x in expand(t):
                records.setdefault(x, Record(x)).owners.add(pid)
    for texts in held["not_covers"].values():
        for t in texts:
            for x in expand(t):
                records.setdefault(x, Record(x)).not_cover = True
    for cid, texts in held["harmless"].items():
        for t in texts:
            for x in expand(t):
                records.setdefault(x, Record(x)).harmless = cid
    for r in records.values():
        s = screen.score([r.text])
        r.scores, r.fired, r.view = s.scores, screen.fired(s), s.view
    return list(records.values())


def score_answers(screen: Screen, c: Constitution, exclude: set[str]) -> dict[str, Any]:
    """The output screen's view: the model's answers (data/answers.jsonl) to held-out
    requests, never trained on. Benign: answers to benign requests and refusals; harmful:
    answers that comply with a cover. Any-principle firing, on the whole answer and on its
    opening (the first OPENING_WORDS words, what the first streaming checks see)."""
    rows = [a for a in load_answers() if a.prompt in exclude]
    covers = {t for p in c.harm_principles for t in p.covers}
    benign_full, benign_open, harmful_full = [], [], []
    benign_rule, harmful_rule = [], []

    def at_floor(text: str) -> bool:
        """The run-time output rule (stage.py): question + answer, max(threshold, floor)."""
        scores = screen.score([text]).scores
        return any(v >= max(screen.thresholds[p], OUTPUT_FLOOR) for p, v in scores.items())

    for a in rows:
        harmful = a.role == "cover" and not a.refused and a.prompt in covers
        fired = bool(screen.fired(screen.score([a.answer])))
        rule = at_floor(f"{a.prompt}\n\n{a.answer}")
        if harmful:
            harmful_full.append(fired)
            harmful_rule.append(rule)
        else:
            benign_full.append(fired)
            benign_rule.append(rule)
            opening = " ".join(a.answer.split()[:OPENING_WORDS])
            benign_open.append(bool(screen.fired(screen.score([opening]))))
    return {
        "benign_answers_n": len(benign_full),
        "benign_answers_fired": _rate(benign_full),
        "benign_openings_fired": _rate(benign_open),
        "harmful_answers_n": len(harmful_full),
        "harmful_answers_fired": _rate(harmful_full),
        "output_rule": f"question + answer, fires at max(threshold, {OUTPUT_FLOOR})",
        "benign_answers_fired_output_rule": _rate(benign_rule),
        "harmful_answers_fired_output_rule": _rate(harmful_rule),
    }


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": None if precision is None else round(precision, 4),
        "recall": None if recall is None else round(recall, 4),
        "f1": None if f1 is None else round(f1, 4),
    }


def _average_precision(pairs: list[tuple[float, int]]) -> float | None:
    ranked = sorted(pairs, key=lambda p: -p[0])
    hits = 0
    total = 0.0
    for i, (_, y) in enumerate(ranked, 1):
        if y:
            hits += 1
            total += hits / i
    return round(total / hits, 4) if hits else None


def _reliability(pairs: list[tuple[float, int]]) -> list[dict[str, Any]]:
    table = []
    for b in range(BINS):
        lo, hi = b / BINS, (b + 1) / BINS
        inside = [(p, y) for p, y in pairs if lo <= p < hi or (b == BINS - 1 and p >= hi)]
        table.append(
            {
                "bin": f"[{lo:.1f}, {hi:.1f}{']' if b == BINS - 1 else ')'}",
                "n": len(inside),
                "mean_predicted": round(statistics.fmean(p for p, _ in inside), 4)
                if inside
                else None,
                "observed": round(statistics.fmean(y for _, y in inside), 4) if inside else None,
            }
        )
    return table


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def summarise(records: list[Record], c: Constitution) -> dict[str, Any]:
    """Per-principle and overall metrics over scored records (see the module doc)."""
    benign = [r for r in records if not r.owners]
    covers = [r for r in records if r.owners]
    out: dict[str, Any] = {"principles": {}}
    pooled: list[tuple[float, int]] = []
    for p in c.harm_principles:
        pos = [r for r in covers if p.id in r.owners]
        other = [r for r in covers if p.id not in r.owners]
        tp = sum(p.id in r.fired for r in pos)
        fn = len(pos) - tp
        fp_benign = sum(p.id in r.fired for r in benign)
        fp_other = sum(p.id in r.fired for r in other)
        pairs = [(r.scores[p.id], int(p.id in r.owners)) for r in records]
        pooled += pairs
        out["principles"][p.id] = {
            "threshold": p.threshold,
            "positives": len(pos),
            "negatives_benign": len(benign),
            "negatives_other_principles": len(other),
            "tp": tp,
            "fn": fn,
            "fp_benign": fp_benign,
            "fp_other_principles": fp_other,
            **_prf(tp, fp_benign + fp_other, fn),
            "precision_benign": _prf(tp, fp_benign, fn)["precision"],
            "average_precision": _average_precision(pairs),
            "average_precision_benign": _average_precision(
                [(r.scores[p.id], int(p.id in r.owners)) for r in pos + benign]
            ),
            "brier": round(statistics.fmean((s - y) ** 2 for s, y in pairs), 4),
            "mean_score_positives": round(statistics.fmean(r.scores[p.id] for r in pos), 4)
            if pos
            else None,
        }
    rows = list(out["principles"].values())
    out["macro"] = {
        k: round(statistics.fmean(r[k] for r in rows if r[k] is not None), 4)
        for k in (
            "precision",
            "precision_benign",
            "recall",
            "f1",
            "average_precision",
            "average_precision_benign",
            "brier",
        )
        if any(r[k] is not None for r in rows)
    }
    out["reliability"] = _reliability(pooled)
    # The refusal decision's calibration: a text's top score against "is it harmful at all".
    out["reliability_any"] = _reliability(
        [(max(r.scores.values()), int(bool(r.owners))) for r in records]
    )
    out["brier_pooled"] = round(statistics.fmean((s - y) ** 2 for s, y in pooled), 4)
    harmless = [r for r in benign if r.harmless]
    classes = sorted({r.harmless for r in harmless if r.harmless})
    out["any_fired"] = {
        "harmless_false_positive_rate": _rate([bool(r.fired) for r in harmless]),
        "harmless_n": len(harmless),
        "harmless_by_class": {
            cid: _rate([bool(r.fired) for r in harmless if r.harmless == cid]) for cid in classes
        },
        "not_covers_false_positive_rate": _rate([bool(r.fired) for r in benign if r.not_cover]),
        "not_covers_n": sum(r.not_cover for r in benign),
        # The refusal decision: does any principle fire on a cover?
        "covers_recall_any": _rate([bool(r.fired) for r in covers]),
        "covers_n": len(covers),
        "any_average_precision": _average_precision(
            [(max(r.scores.values()), int(bool(r.owners))) for r in records]
        ),
    }
    views = [r.view[pid] for r in records for pid in r.fired]
    out["firing_views"] = {v: views.count(v) for v in sorted(set(views))}
    return out


def latency(screen: Screen) -> dict[str, Any]:
    out = {}
    for name, text in (("short_prompt", SHORT_PROMPT), ("answer_150_words", LONG_ANSWER)):
        for _ in range(3):
            screen.score([text])
        ms = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            screen.score([text])
            ms.append((time.perf_counter() - t0) * 1000)
        ms.sort()
        out[name] = {
            "words": len(text.split()),
            "p50_ms": round(ms[len(ms) // 2], 2),
            "p95_ms": round(ms[round(0.95 * (len(ms) - 1))], 2),
            "runs": RUNS,
        }
    return out


# --------------------------------------------------------------------------- modes


def _environment() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _command() -> str:
    return " ".join(["python benchmarks/screen_accuracy.py", *sys.argv[1:]])


def run_heldout(seed: int, out_path: Path) -> None:
    from charter.retrieval.embed import get_embedder

    c = load_default()
    held = split(c, seed)
    exclude = held_texts(held)
    embedder = get_embedder()  # 1 torch thread, as the server runs it
    embedder.load()
    load = ForeignLoad().start()
    with tempfile.TemporaryDirectory() as tmp:
        screen = Screen(c, embedder=embedder, cache_dir=Path(tmp), exclude=exclude).load()
        train_info = screen.info()
        t0 = time.perf_counter()
        cached = Screen(c, embedder=embedder, cache_dir=Path(tmp), exclude=exclude).load()
        cache_load_s = time.perf_counter() - t0
        assert cached.trained_from_cache
    print(f"trained in {screen.train_seconds:.1f} s; measuring held-out ...", flush=True)
    original = summarise(score_records(screen, held, reworded=False), c)
    reworded = summarise(score_records(screen, held, reworded=True), c)
    answers = score_answers(screen, c, exclude)
    # The same screen trained without the answer examples: what they change.
    with tempfile.TemporaryDirectory() as tmp:
        bare = Screen(c, embedder=embedder, cache_dir=Path(tmp), exclude=exclude, answers=())
        bare.load()
    answers_bare = score_answers(bare, c, exclude)
    original_bare = summarise(score_records(bare, held, reworded=False), c)
    lat = latency(screen)
    load.stop()
    result = {
        "command": _command(),
        "environment": _environment(),
        "machine_load": load.report(),
        "constitution": {"name": c.name, "version": c.version, "hash": c.hash},
        "split": {
            "seed": seed,
            "held_out_fraction": HOLD_FRACTION,
            "held_out_texts": len(exclude),
            "held_out": {
                part: {k: len(v) for k, v in lists.items()} for part, lists in held.items()
            },
            "note": "per principle/class and per list; uphold principles' texts always train",
        },
        "negatives": "held-out not_covers (all principles) + held-out harmless examples "
        "(benign) + other harm principles' held-out covers; precision counts both, "
        "precision_benign only the benign ones",
        "augment_version": AUGMENT_VERSION,
        "trainer_version": TRAINER_VERSION,
        "settings": asdict(screen.settings),
        "train": {
            "train_seconds": round(screen.train_seconds or 0.0, 2),
            "cache_load_seconds": round(cache_load_s, 3),
            "info": {k: v for k, v in train_info.items() if k not in ("cache_path",)},
        },
        "held_out": original,
        "held_out_reworded": reworded,
        "held_out_answers": answers,
        "without_answer_examples": {
            "held_out_answers": answers_bare,
            "macro": original_bare["macro"],
            "any_fired": original_bare["any_fired"],
        },
        "latency": lat,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    print(f"wrote {out_path}")


#: The settings compared by --validate (each a change from the defaults).
VARIANTS: list[dict[str, Any]] = [
    {},
    {"design": "joint"},
    {"design": "direct", "lexical_weight": 0.0, "other_weight": 0.0},
    {"design": "direct", "lexical_weight": 0.0, "other_weight": 0.5},
    {"design": "direct", "lexical_weight": 0.0, "other_weight": 1.0},
    {"design": "direct", "other_weight": 0.5},
    {"lexical_weight": 0.0},
    {"lexical_weight": 20.0},
    {"lexical_weight": 80.0},
    {"per_text": 0},
    {"per_text": 3},
    {"per_text": 10},
    {"l2_harm": 1.0},
    {"l2_topic": 0.1},
]


def run_validate(seed: int, out_path: Path, only: list[int] | None) -> None:
    """Grouped k-fold cross-validation of trainer settings over the training part only."""
    from charter.retrieval.embed import get_embedder

    c = load_default()
    outer = held_texts(split(c, seed))
    folds = cv_folds(c, outer, seed)
    embedder = MemoEmbedder(get_embedder())
    results = []
    chosen = [VARIANTS[i] for i in only] if only else VARIANTS
    with tempfile.TemporaryDirectory() as tmp:
        for v in chosen:
            settings = TrainSettings(**v)
            t0 = time.perf_counter()
            plain: list[Record] = []
            reworded: list[Record] = []
            for fold in folds:
                screen = Screen(
                    c,
                    embedder=embedder,
                    cache_dir=Path(tmp),
                    exclude=outer | held_texts(fold),
                    settings=settings,
                ).load()
                plain += score_records(screen, fold, reworded=False)
                reworded += score_records(screen, fold, reworded=True)
            m, r = summarise(plain, c), summarise(reworded, c)
            keys = (
                "harmless_false_positive_rate",
                "not_covers_false_positive_rate",
                "covers_recall_any",
                "any_average_precision",
            )
            row = {
                "variant": v or "default",
                "seconds": round(time.perf_counter() - t0, 1),
                "macro": m["macro"],
                "any_fired": {k: m["any_fired"][k] for k in (*keys, "harmless_by_class")},
                "reliability": m["reliability"],
                "reliability_any": m["reliability_any"],
                "brier_pooled": m["brier_pooled"],
                "reworded_macro": r["macro"],
                "reworded_any_fired": {k: r["any_fired"][k] for k in keys},
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "command": _command(),
        "environment": _environment(),
        "note": f"grouped {CV_FOLDS}-fold cross-validation over the training 80% (the held-out "
        "20% is excluded from every screen and never scored); each fold's texts and their "
        "rewordings are excluded from that fold's screen",
        "defaults": asdict(TrainSettings()),
        "augment_version": AUGMENT_VERSION,
        "trainer_version": TRAINER_VERSION,
        "variants": results,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out_path}")


def _print(result: dict[str, Any]) -> None:
    for label in ("held_out", "held_out_reworded"):
        m = result[label]
        print(f"\n{label}")
        print(f"{'principle':<12} {'thr':>4} {'P':>6} {'Pben':>6} {'R':>6} {'F1':>6} {'AP':>6}")
        for pid, r in m["principles"].items():
            print(
                f"{pid:<12} {r['threshold']:>4} {r['precision'] or 0:6.3f} "
                f"{r['precision_benign'] or 0:6.3f} {r['recall'] or 0:6.3f} {r['f1'] or 0:6.3f} "
                f"{r['average_precision'] or 0:6.3f}"
            )
        print("macro", m["macro"])
        print("any fired", m["any_fired"])
        print("reliability", m["reliability"])
        print("reliability_any", m["reliability_any"])
    print("answers", result["held_out_answers"])
    print("without answer examples", result["without_answer_examples"])
    print("latency", result["latency"], "train s", result["train"]["train_seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--validate", action="store_true", help="compare settings by CV")
    ap.add_argument("--variants", type=int, nargs="*", help="--validate: only these indices")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.validate:
        run_validate(args.seed, args.json or OUT_VALIDATE, args.variants)
    else:
        run_heldout(args.seed, args.json or OUT)


if __name__ == "__main__":
    main()
