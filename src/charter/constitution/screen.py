"""Screens trained from the constitution: one calibrated probability per harm principle.

Why a trained head per principle rather than keyword rules or an LLM call on every turn: the
constitution's own examples (what each principle covers, the look-alikes it does not, the
harmless classes) are the one definition of the line that an operator edits; a small linear
head on sentence embeddings learns that line from those examples in seconds, scores a turn
in milliseconds, and changes when the file changes. An LLM judge is asked only about scores
just under a threshold (`uncertain`, the cascade in `stage.py`).

Design (docs/constitution.md, "Screens"):

- **Embedding.** all-MiniLM-L6-v2 (`charter.retrieval.embed.get_embedder()`, offline),
  384-d, L2-normalised; `HashingEmbedder` stands in for fast unit tests of the logic.
- **Training data** (`training_examples`): every original example of the constitution and
  the same `augment` rewordings of each, positive or negative, so frames ("in a story ...")
  carry no label by themselves. Harmful: the harm principles' `covers`. Benign: every
  `not_covers`, every harmless class's examples, the uphold principles' texts. A text
  listed under two harm principles is positive for both.
- **Answer examples** (`load_answers`, `answer_examples`): the output screen reads the
  model's answers, not requests. `data/answers.jsonl` (made by scripts/make_screen_answers.py)
  holds the default model's own answers to the default constitution's example requests.
  An answer to a benign request is a negative (and so is its opening, what the streaming
  check sees first); an answer to a harmful request is a positive for the principles the
  *loaded* constitution lists that request under, unless the model refused (a refusal is
  benign). Only answers to requests the loaded constitution lists are used (for another
  constitution they would be nearly all negatives, and the heads would learn "answers are
  benign, requests harmful"); an edited default keeps the answers of its unchanged examples.
  Trained on requests alone, the output screen took benign answers on risky-sounding topics
  for harm (docs/safety.md).
- **Heads, factored** (the default): two kinds of logistic regression. The *harm* head
  learns harmful vs benign from all principles' examples at once (nine times the data of
  one principle) over the embedding plus hashed word/character n-grams (`lexical_features`:
  intent cues such as "without getting caught" are words, which mean-pooled embeddings
  blur); the *topic* heads learn which principle from the covers alone, over the embedding
  (topic is what sentence embeddings are good at). Fitting: L2-regularised, classes
  balanced by weight, accelerated gradient descent in numpy, deterministic.
- **Calibration** (Platt scaling on out-of-fold logits: k folds grouped by original text,
  so a text's rewordings never straddle a fold). The harm head's output is calibrated into
  P(harmful); each topic head, among harmful texts, into P(principle | harmful). A
  principle's score is P(harmful) x T_p / max_q T_q: the likeliest principle (and any
  principle as likely, e.g. a text listed under two) gets the whole calibrated P(harmful),
  the others a share in proportion. So the top score of a text is a calibrated probability
  that it is harmful, and a harmful text whose principle is ambiguous (weapons or crime?)
  still fires one, which independent per-principle probabilities would split below the
  threshold. The alternatives stay available and measured (benchmarks/screen_accuracy.py
  --validate): `design="joint"` calibrates P(this principle) directly: better calibrated
  per principle, but in cross-validation on the default constitution it fired on 62% of
  harmful texts (factored: 87%) and 3% of harmless ones (factored: 12%): a different
  operating point on the same ranking. `design="direct"` fits one head per principle
  against everything else (other principles' covers at `other_weight`); it ranked worst.
- **Scoring.** Each text is expanded into its `normalize.views` (decodings of jailbreak
  disguises); all views of all texts are embedded in one call; a principle's score is the
  maximum over texts and views, and the view that gave it is reported.
- **Cache.** The fitted heads are saved (npz + json, atomic writes) under a key hashing
  the constitution's content hash, `AUGMENT_VERSION`, `TRAINER_VERSION`, the embedder's
  id and the training settings, so an edited constitution retrains by itself and a corrupt
  or mismatched file is retrained rather than trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
import zlib
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charter.constitution.augment import AUGMENT_VERSION, augment_one
from charter.constitution.schema import Constitution
from charter.errors import ConfigError, RequestError

log = logging.getLogger(__name__)

#: Bump when the trainer's maths or its defaults change (cached screens retrain).
TRAINER_VERSION = "4"
#: Environment variable naming the cache root (screens go to its "screens" folder).
CACHE_ENV = "CHARTER_CACHE_DIR"
DESIGNS = ("factored", "joint", "direct")


@dataclass(frozen=True)
class TrainSettings:
    """How a screen is trained; every field is part of the cache key. The defaults were
    chosen by grouped cross-validation on the training part of the default constitution's
    examples (benchmarks/screen_accuracy.py --validate), never on the held-out part."""

    #: Rewordings per training text (`augment.augment_one`).
    per_text: int = 6
    #: "factored": P(harmful) x T_p / max T; "joint": P(principle) calibrated directly;
    #: "direct": one head per principle against everything else (see the module doc).
    design: str = "factored"
    #: L2 penalty of the harm head, the topic heads, and the direct heads. The loss is a
    #: weighted mean; embedding features are scaled to about unit variance per dimension.
    l2_harm: float = 0.3
    l2_topic: float = 0.3
    l2_direct: float = 0.1
    #: Direct design: weight of another principle's covers as negatives of a head (a text
    #: can be harmful under two principles, so they are weaker negatives than benign ones).
    other_weight: float = 0.5
    #: Weight of the hashed n-gram block next to the embedding (harm head, direct heads);
    #: 0 turns it off. The block has unit norm per text; the embedding block about sqrt(384).
    lexical_weight: float = 40.0
    lexical_dim: int = 2048
    #: Folds for the out-of-fold values Platt scaling is fitted on.
    folds: int = 5
    #: Gradient steps per fit at most (it stops earlier once the weights settle).
    iterations: int = 500

    def check(self) -> TrainSettings:
        """Raise ConfigError naming the first bad field."""

        def number(name: str, lo: float, hi: float | None = None, *, open_lo: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v > lo if open_lo else v >= lo) and (hi is None or v <= hi)
            if not ok:
                bound = f"> {lo}" if open_lo else f">= {lo}"
                raise ConfigError(
                    f"{name} must be a number {bound}{f' and <= {hi}' if hi is not None else ''}"
                    f", got {v!r}",
                    param=name,
                )

        def integer(name: str, lo: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"{name} must be an integer >= {lo}, got {v!r}", param=name)

        integer("per_text", 0)
        if self.design not in DESIGNS:
            raise ConfigError(
                f"design must be one of {', '.join(DESIGNS)}, got {self.design!r}", param="design"
            )
        for name in ("l2_harm", "l2_topic", "l2_direct"):
            number(name, 0.0, open_lo=True)
        number("other_weight", 0.0, 1.0)
        number("lexical_weight", 0.0)
        integer("lexical_dim", 1)
        integer("folds", 2)
        integer("iterations", 1)
        return self


# --------------------------------------------------------------------------- embedders


class HashingEmbedder:
    """Deterministic hashed bag of words, word bigrams and character 3-grams, L2-normalised.

    For unit tests of the screen's logic: texts that share words and spellings get similar
    vectors; it knows no meaning (no synonyms, no paraphrase). Never a default.
    """

    id = "hashing-v1"

    def __init__(self, dim: int = 384):
        self.dim = dim

    def _features(self, text: str) -> list[str]:
        words = re.findall(r"\w+", text.lower())
        feats = [f"w:{w}" for w in words]
        feats += [f"b:{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for w in words:
            padded = f"#{w}#"
            feats += [f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2)]
        return feats

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for f in self._features(text):
                h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "big")
                weight = 1.0 if f[0] == "w" else 0.5 if f[0] == "b" else 0.25
                out[row, h % self.dim] += weight if (h >> 40) & 1 else -weight
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out


def embedder_id(embedder: Any) -> str:
    """A stable name for what an embedder computes, for the cache key: its `id` attribute if
    it has one, the model and variant for MiniLM, else its class and dimension (an unknown
    embedder class that changes its weights must give itself an `id`)."""
    own = getattr(embedder, "id", None)
    if isinstance(own, str) and own:
        return f"{own}:{embedder.dim}"
    from charter.retrieval.embed import MODEL_NAME, MiniLMEmbedder

    if isinstance(embedder, MiniLMEmbedder):
        variant = f"int8[{embedder.int8_layers}]" if embedder.quantize else "fp32"
        return f"{MODEL_NAME}:{variant}:{embedder.max_tokens}"
    cls = type(embedder)
    return f"{cls.__module__}.{cls.__qualname__}:{embedder.dim}"


_LEX_WORD = re.compile(r"[a-z0-9']+")


def lexical_features(texts: list[str], dim: int) -> np.ndarray:
    """Hashed, signed counts of lowercase words, word bigrams and character 4-grams (over
    the words joined by single spaces), each row L2-normalised: (len(texts), dim) float32.

    Cheap (no model), deterministic (crc32), and it sees wording the embedding blurs.
    """
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        words = _LEX_WORD.findall(text.lower())
        feats = [*words, *(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))]
        joined = f" {' '.join(words)} "
        feats += [f"#{joined[i : i + 4]}" for i in range(len(joined) - 3)]
        for f in feats:
            h = zlib.crc32(f.encode())
            out[row, h % dim] += 1.0 if h & 0x80000000 else -1.0
        norm = float(np.linalg.norm(out[row]))
        if norm > 0:
            out[row] /= norm
    return out


# --------------------------------------------------------------------------- training data


@dataclass(frozen=True)
class Example:
    """One training row. `group` is the index of the original text it came from (its
    rewordings share it); `positive` the harm principles it is an example of (empty: a
    benign text); `role` where it came from (cover, not_cover, harmless, uphold);
    `template` the augmentation ("" for the original)."""

    text: str
    group: int
    role: str
    positive: frozenset[str]
    template: str = ""


def training_examples(
    constitution: Constitution,
    *,
    exclude: Collection[str] = (),
    seed: int = 0,
    per_text: int = TrainSettings.per_text,
) -> list[Example]:
    """Every original example of the constitution (minus `exclude`) and its rewordings.

    A text listed in several places appears once: positive for every harm principle that
    covers it, a negative for the rest.
    """
    harm = {p.id for p in constitution.harm_principles}
    positive: dict[str, set[str]] = {}
    role: dict[str, str] = {}

    def add(text: str, r: str, pid: str | None = None) -> None:
        if text in excluded:
            return
        positive.setdefault(text, set())
        if pid is not None:
            positive[text].add(pid)
        # "cover" wins over the other roles: it decides how the text counts for other heads.
        if text not in role or r == "cover":
            role[text] = r

    excluded = set(exclude)
    for p in constitution.principles:
        for t in p.covers:
            add(t, "cover" if p.kind == "harm" else "uphold", p.id if p.id in harm else None)
        for t in p.not_covers:
            add(t, "not_cover" if p.kind == "harm" else "uphold")
    for h in constitution.harmless:
        for t in h.examples:
            add(t, "harmless")
    out: list[Example] = []
    for g, text in enumerate(positive):
        pos = frozenset(positive[text])
        out.append(Example(text, g, role[text], pos))
        for name, new in augment_one(text, "auto", seed, per_text):
            out.append(Example(new, g, role[text], pos, name))
    return out


@dataclass(frozen=True)
class Answer:
    """A model's answer to one example request: `role` is where the request came from
    (cover, not_cover, harmless), `principle` the principle it covers, `refused` whether
    the answer declines (charter.eval.refusal.detect)."""

    prompt: str
    role: str
    principle: str | None
    answer: str
    refused: bool


#: Words of an answer's opening kept as its own example (the first streaming checks see it).
OPENING_WORDS = 12


def answers_path() -> Path:
    return Path(__file__).with_name("data") / "answers.jsonl"


def load_answers(path: Path | None = None) -> tuple[Answer, ...]:
    """The shipped answer examples (none when the file is absent)."""
    path = path or answers_path()
    if not path.exists():
        return ()
    out: list[Answer] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else None
        if not row or "meta" in row:
            continue
        out.append(
            Answer(
                str(row["prompt"]),
                str(row["role"]),
                row.get("principle"),
                str(row["answer"]),
                bool(row["refused"]),
            )
        )
    return tuple(out)


def answers_digest(answers: tuple[Answer, ...]) -> str:
    blob = json.dumps([asdict(a) for a in answers], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def answer_examples(
    constitution: Constitution,
    answers: Collection[Answer],
    *,
    exclude: Collection[str] = (),
    groups: dict[str, int] | None = None,
) -> list[Example]:
    """Training rows from answers (see the module doc). An answer shares the group of its
    request when the request is a training text (so folds never split them); an answer
    to an excluded request is left out with it."""
    covers: dict[str, set[str]] = {}
    for p in constitution.harm_principles:
        for t in p.covers:
            covers.setdefault(t, set()).add(p.id)
    # Only answers to this constitution's own example requests: answers to requests it does
    # not list would teach the heads "an answer is benign, a request harmful" (they are
    # nearly all negatives for a constitution that lists none of the harmful requests).
    own = set(covers)
    for p in constitution.principles:
        own.update(p.not_covers)
    for h in constitution.harmless:
        own.update(h.examples)
    excluded = set(exclude)
    groups = dict(groups or {})
    next_group = max(groups.values(), default=-1) + 1
    out: list[Example] = []
    for a in answers:
        if a.prompt in excluded or a.prompt not in own or not a.answer.strip():
            continue
        listed = covers.get(a.prompt)
        if a.refused:
            positive: frozenset[str] = frozenset()
        elif a.role == "cover":
            if not listed:
                continue  # harmful under another constitution; this one does not say
            positive = frozenset(listed)
        else:
            if listed:
                continue  # benign by the default, harmful by this constitution: left out
            positive = frozenset()
        if a.prompt not in groups:
            groups[a.prompt] = next_group
            next_group += 1
        g = groups[a.prompt]
        out.append(Example(a.answer, g, "answer", positive))
        words = a.answer.split()
        if not positive and len(words) > OPENING_WORDS:
            out.append(Example(" ".join(words[:OPENING_WORDS]), g, "answer", positive, "opening"))
    return out


def _labels(
    examples: list[Example], principle_ids: list[str], other_weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """(Y, R): 0/1 labels and raw (unbalanced) weights, one column per principle."""
    n, k = len(examples), len(principle_ids)
    y = np.zeros((n, k))
    r = np.ones((n, k))
    for i, ex in enumerate(examples):
        for j, pid in enumerate(principle_ids):
            if pid in ex.positive:
                y[i, j] = 1.0
            elif ex.positive:  # covers another harm principle: a down-weighted negative
                r[i, j] = other_weight
    return y, r


def _balanced(y: np.ndarray, r: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Weights over `rows` (boolean mask): positives and negatives each sum to 1/2."""
    s = np.where(rows[:, None], r, 0.0)
    pos = (s * y).sum(0)
    neg = (s * (1 - y)).sum(0)
    wp = np.where(pos > 0, 0.5 / np.maximum(pos, 1e-12), 0.0)
    wn = np.where(neg > 0, 0.5 / np.maximum(neg, 1e-12), 0.0)
    wp = np.where(neg > 0, wp, 2 * wp)
    wn = np.where(pos > 0, wn, 2 * wn)
    return s * (y * wp + (1 - y) * wn)


# --------------------------------------------------------------------------- the maths


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    s: np.ndarray,
    l2: float = 0.3,
    iterations: int = 500,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted L2-regularised logistic regression, one column of `y` per head, all heads at
    once: minimises sum_i s_ih * logloss(y_ih, x_i.w_h + b_h) + l2/2 |w_h|^2 (bias free).

    Nesterov-accelerated gradient descent with a per-head step of 1/L (L from a power
    iteration on the weighted Gram matrix) and gradient-based momentum restart; it stops
    once no weight moves by more than `tol` in a step. Every step is a matrix product over
    all heads, so nine heads cost about what one does. No randomness: the same inputs give
    the same weights. Returns (W (d, k), b (k,)).
    """
    n, d = x.shape
    k = y.shape[1]
    xb = np.hstack([x, np.ones((n, 1))]).astype(np.float32)
    s32 = s.astype(np.float32)
    reg = np.full((d + 1, 1), l2)
    reg[-1] = 0.0
    v = np.ones((d + 1, k), dtype=np.float32) / math.sqrt(d + 1)
    for _ in range(20):
        v = xb.T @ (s32 * (xb @ v))
        v /= np.maximum(np.linalg.norm(v, axis=0), 1e-12)
    top = (v * (xb.T @ (s32 * (xb @ v)))).sum(0).astype(np.float64)
    step = 1.0 / (0.25 * top * 1.05 + l2 + 1e-12)
    w = np.zeros((d + 1, k))
    w_prev = w
    t = np.ones(k)
    for _ in range(iterations):
        mom = (t - 1.0) / (t + 2.0)
        look = w + mom * (w - w_prev)
        p = _sigmoid(xb @ look.astype(np.float32))
        g = (xb.T @ (s32 * (p - y).astype(np.float32))).astype(np.float64) + reg * look
        w_prev, w = w, look - step * g
        # Restart a head's momentum when its step points uphill (O'Donoghue & Candes 2015).
        uphill = (g * (w - w_prev)).sum(0) > 0
        t = np.where(uphill, 1.0, t + 1.0)
        if float(np.abs(w - w_prev).max()) < tol:
            break
    return w[:-1].astype(np.float64), w[-1].astype(np.float64)


def fit_platt(z: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Platt scaling: (a, c) with p = sigmoid(a*z + c), fitted on the decision values `z`
    with Platt's smoothed targets ((N+ + 1)/(N+ + 2) and 1/(N- + 2)), which keep a separable
    set from producing infinite confidence. Newton's method with step halving (Lin, Lin and
    Weng 2007), so it converges from any start."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n_pos = float(y.sum())
    n_neg = float(len(y) - n_pos)
    target = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(a: float, c: float) -> float:
        m = a * z + c
        return float((np.logaddexp(0.0, m) - target * m).sum())

    a, c = 0.0, float(np.log((n_pos + 1) / (n_neg + 1)))
    current = loss(a, c)
    for _ in range(iterations):
        p = _sigmoid(a * z + c)
        g = np.array([((p - target) * z).sum(), (p - target).sum()])
        w = p * (1 - p)
        h = np.array([[(w * z * z).sum(), (w * z).sum()], [(w * z).sum(), w.sum()]])
        da, dc = np.linalg.solve(h + np.eye(2) * 1e-12, g)
        step = 1.0
        while step > 1e-10:
            na, nc = a - step * da, c - step * dc
            new = loss(na, nc)
            if new < current + 1e-4 * step * float(g @ np.array([-da, -dc])):
                break
            step /= 2
        else:
            break
        moved = abs(na - a) + abs(nc - c)
        a, c, current = na, nc, new
        if moved < 1e-10:
            break
    return float(a), float(c)


def _folds(examples: list[Example], k: int, seed: int) -> np.ndarray:
    """A fold per row, grouped by original text and stratified by role and principle: the
    originals of each stratum are shuffled (seeded) and dealt round-robin."""
    strata: dict[str, list[int]] = {}
    for ex in examples:
        if not ex.template:
            key = ex.role + ":" + ",".join(sorted(ex.positive))
            strata.setdefault(key, []).append(ex.group)
    fold_of: dict[int, int] = {}
    rng = np.random.default_rng(seed)
    offset = 0
    for key in sorted(strata):
        groups = strata[key]
        order = rng.permutation(len(groups))
        for j, idx in enumerate(order):
            fold_of[groups[idx]] = (offset + j) % k
        offset += len(groups)
    return np.array([fold_of[ex.group] for ex in examples])


@dataclass
class _Model:
    """The fitted screen. Features: f = [(e - mu_e) * scale, lexical_weight * l] - mu (the
    lexical block only when lexical_weight > 0). Heads: harm z_h = f @ w_harm + b_harm,
    topic z_t = f[:, :d] @ w + b (factored, joint); direct z = f @ w + b. Probabilities:

    - factored: P_h = sigmoid(a_harm z_h + c_harm), T = sigmoid(a z_t + c),
      score = P_h * T / max(T) (the likeliest principle gets the whole P_h);
    - joint: sigmoid(a (logsig(z_h) + logsig(z_t)) + c);
    - direct: sigmoid(a z + c).
    """

    principle_ids: list[str]
    design: str
    scale: float
    lexical_weight: float
    lexical_dim: int
    mu: np.ndarray  # (D,)
    w_harm: np.ndarray  # (D,), or (0,) for direct
    b_harm: float
    a_harm: float
    c_harm: float
    w: np.ndarray  # (d, k) topic heads, or (D, k) direct heads
    b: np.ndarray  # (k,)
    a: np.ndarray  # (k,) Platt slopes
    c: np.ndarray  # (k,) Platt intercepts

    ARRAYS = ("mu", "w_harm", "w", "b", "a", "c")
    SCALARS = ("b_harm", "a_harm", "c_harm")

    def features(self, e: np.ndarray, texts: list[str]) -> np.ndarray:
        return _features(e, texts, self.mu, self.scale, self.lexical_weight, self.lexical_dim)

    def probabilities(self, f: np.ndarray) -> np.ndarray:
        if self.design == "direct":
            return _sigmoid(self.a * (f @ self.w + self.b) + self.c)
        z_h = f @ self.w_harm + self.b_harm
        z_t = f[:, : self.w.shape[0]] @ self.w + self.b
        if self.design == "joint":
            return _sigmoid(self.a * (_log_sigmoid(z_h)[:, None] + _log_sigmoid(z_t)) + self.c)
        p_h = _sigmoid(self.a_harm * z_h + self.c_harm)
        t = _sigmoid(self.a * z_t + self.c)
        return p_h[:, None] * t / np.maximum(t.max(1, keepdims=True), 1e-12)


def _features(
    e: np.ndarray, texts: list[str], mu: np.ndarray, scale: float, lex_w: float, lex_dim: int
) -> np.ndarray:
    f = np.asarray(e, dtype=np.float64) * scale
    if lex_w > 0:
        f = np.hstack([f, lex_w * lexical_features(texts, lex_dim).astype(np.float64)])
    return f - mu


# --------------------------------------------------------------------------- the screen


@dataclass
class ScreenScores:
    """One screening: per harm principle, the calibrated probability (max over the texts and
    their views), the view that gave it, and the time taken."""

    scores: dict[str, float]
    view: dict[str, str] = field(default_factory=dict)
    ms: float = 0.0


def default_cache_dir() -> Path:
    """$CHARTER_CACHE_DIR/screens if set, else the platform's user cache dir /screens."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser() / "screens"
    import platformdirs

    return Path(platformdirs.user_cache_dir("charter")) / "screens"


class Screen:
    """Scores texts against every harm principle of a constitution (see the module doc).

    `exclude` leaves texts out of training (held-out evaluation); `settings` overrides the
    trainer's defaults (experiments). Both are part of the cache key.
    """

    def __init__(
        self,
        constitution: Constitution,
        *,
        embedder: Any = None,
        cache_dir: Path | None = None,
        seed: int = 0,
        exclude: Collection[str] = (),
        settings: TrainSettings | None = None,
        answers: Collection[Answer] | None = None,
    ):
        """`answers`: the answer examples to train on (default: the shipped ones,
        `load_answers()`; `()` for none)."""
        if not isinstance(constitution, Constitution):
            raise ConfigError(
                f"constitution must be a Constitution, got {type(constitution).__name__}",
                param="constitution",
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}", param="seed")
        if isinstance(exclude, str):
            raise ConfigError(
                "exclude must be a collection of texts, not one text", param="exclude"
            )
        if settings is not None and not isinstance(settings, TrainSettings):
            raise ConfigError("settings must be a TrainSettings", param="settings")
        self.settings = (settings or TrainSettings()).check()
        self.constitution = constitution
        if embedder is None:
            from charter.retrieval.embed import get_embedder

            embedder = get_embedder()
        self.embedder = embedder
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.seed = seed
        self.exclude = frozenset(exclude)
        self.answers: tuple[Answer, ...] = load_answers() if answers is None else tuple(answers)
        self._answers_digest = answers_digest(self.answers) if self.answers else ""
        self.principle_ids: list[str] = [p.id for p in constitution.harm_principles]
        self.thresholds: dict[str, float] = {
            p.id: p.threshold for p in constitution.harm_principles
        }
        self.trained_from_cache = False
        self.train_seconds: float | None = None
        self._model: _Model | None = None
        self._lock = threading.Lock()
        self._stats: dict[str, Any] = {}
        self._cache_note: str | None = None

    # -- identity ------------------------------------------------------------------------------
    @property
    def embedder_id(self) -> str:
        return embedder_id(self.embedder)

    @property
    def cache_key(self) -> str:
        """sha256 over everything the heads depend on."""
        excluded = hashlib.sha256("\0".join(sorted(self.exclude)).encode()).hexdigest()
        blob = json.dumps(
            {
                "constitution": self.constitution.hash,
                "augment": AUGMENT_VERSION,
                "trainer": TRAINER_VERSION,
                "embedder": self.embedder_id,
                "seed": self.seed,
                "settings": asdict(self.settings),
                "exclude": excluded if self.exclude else "",
                "answers": self._answers_digest,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def cache_path(self) -> Path:
        """The heads' file (the json meta sits next to it)."""
        return self.cache_dir / f"screen-{self.cache_key[:24]}.npz"

    # -- load / train --------------------------------------------------------------------------
    def load(self) -> Screen:
        """Read the heads from the cache, or train them (and cache them). Idempotent and
        thread-safe: concurrent callers wait for one training."""
        if self._model is not None:
            return self
        with self._lock:
            if self._model is not None:
                return self
            key = self.cache_key
            model = self._read_cache(key)
            if model is not None:
                self.trained_from_cache = True
                self.train_seconds = None
                # Loading from cache skips the embedder; warm it here, not on the first turn.
                warm = getattr(self.embedder, "load", None)
                if callable(warm):
                    warm()
            else:
                t0 = time.perf_counter()
                model = self._train()
                self.train_seconds = time.perf_counter() - t0
                self.trained_from_cache = False
                self._write_cache(key, model)
            self._model = model
        return self

    def _train(self) -> _Model:
        st = self.settings
        ids = self.principle_ids
        d = int(self.embedder.dim)
        lex_w = float(st.lexical_weight)
        big_d = d + (st.lexical_dim if lex_w > 0 else 0)
        examples = training_examples(
            self.constitution, exclude=self.exclude, seed=self.seed, per_text=st.per_text
        )
        if self.answers:
            groups = {ex.text: ex.group for ex in examples if not ex.template}
            examples += answer_examples(
                self.constitution, self.answers, exclude=self.exclude, groups=groups
            )
        self._stats = _example_stats(examples, ids)
        k_heads = len(ids)
        if not ids:
            self._stats["calibration"] = "none (no harm principles)"
            shapes = self._expected_shapes()
            return _Model(
                [],
                st.design,
                math.sqrt(d),
                lex_w,
                st.lexical_dim,
                **dict.fromkeys(_Model.SCALARS, 0.0),
                **{name: np.zeros(shapes[name]) for name in _Model.ARRAYS},
            )
        if not examples:
            raise ConfigError("the constitution has no training examples left to train a screen")
        texts = [ex.text for ex in examples]
        t0 = time.perf_counter()
        e = np.asarray(self.embedder.encode(texts), dtype=np.float64)
        self._stats["embed_seconds"] = round(time.perf_counter() - t0, 3)
        if e.shape != (len(examples), d):
            raise ConfigError(
                f"embedder returned shape {e.shape}, expected ({len(examples)}, {d})",
                param="embedder",
            )
        t0 = time.perf_counter()
        scale = math.sqrt(d)
        raw = _features(e, texts, np.zeros(big_d), scale, lex_w, st.lexical_dim)
        mu = raw.mean(0)
        f = raw - mu
        y, r = _labels(examples, ids, st.other_weight)
        harmful = y.max(1) > 0.5
        if not harmful.any() or harmful.all():
            raise ConfigError(
                "a screen needs both harmful examples (covers) and benign ones "
                "(not_covers, harmless examples) to train"
            )

        def fit(rows: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
            """(w_harm, b_harm, w, b) fitted on the rows selected by the boolean mask."""
            if st.design == "direct":
                w, b = fit_logistic(
                    f[rows], y[rows], _balanced(y, r, rows)[rows], st.l2_direct, st.iterations
                )
                return np.zeros(0), 0.0, w, b
            y_any = harmful[:, None].astype(np.float64)
            ones = np.ones_like(y_any)
            wh, bh = fit_logistic(
                f[rows], y_any[rows], _balanced(y_any, ones, rows)[rows], st.l2_harm, st.iterations
            )
            if k_heads == 1:  # nothing to tell apart: the topic factor is sigmoid(40) = 1
                return wh[:, 0], float(bh[0]), np.zeros((d, 1)), np.array([40.0])
            cov = rows & harmful
            ones_k = np.ones_like(y)
            wt, bt = fit_logistic(
                f[cov, :d], y[cov], _balanced(y, ones_k, cov)[cov], st.l2_topic, st.iterations
            )
            return wh[:, 0], float(bh[0]), wt, bt

        def logits(rows: np.ndarray, heads: tuple) -> tuple[np.ndarray, np.ndarray]:
            """(z_h, z) of the rows: harm logit (zeros for direct) and per-principle logits."""
            w_h, b_h, w_, b_ = heads
            if st.design == "direct":
                return np.zeros(int(rows.sum())), f[rows] @ w_ + b_
            return f[rows] @ w_h + b_h, f[rows, :d] @ w_ + b_

        every = np.ones(len(examples), dtype=bool)
        heads = fit(every)

        # Out-of-fold logits for calibration, folds grouped by original text.
        originals_pos = [len({ex.group for ex in examples if pid in ex.positive}) for pid in ids]
        originals_neg = len({ex.group for ex in examples if not ex.positive})
        k = min(st.folds, min(originals_pos), originals_neg)
        if k >= 2:
            fold = _folds(examples, k, self.seed)
            z_h = np.zeros(len(examples))
            z = np.zeros_like(y)
            for i in range(k):
                held = fold == i
                z_h[held], z[held] = logits(held, fit(~held))
            self._stats["calibration"] = f"platt on {k}-fold out-of-fold logits"
        else:
            z_h, z = logits(every, heads)
            self._stats["calibration"] = "platt on in-sample logits (too few examples for folds)"
        a = np.zeros(k_heads)
        c = np.full(k_heads, 40.0)  # one principle, factored: the topic factor stays 1
        a_h, c_h = 1.0, 0.0
        if st.design == "factored":
            a_h, c_h = fit_platt(z_h, harmful.astype(np.float64))
            if a_h <= 0.0:
                # Out-of-fold scores ranked no better than chance (a handful of examples,
                # look-alikes closer to each held-out cover than the other covers): a
                # negative slope would invert the screen. Calibrate on in-sample values.
                z_in, _ = logits(every, heads)
                a_h, c_h = fit_platt(z_in, harmful.astype(np.float64))
                self._stats["calibration"] = (
                    "platt on in-sample logits (out-of-fold ranking no better than chance)"
                )
            if k_heads > 1:
                z_in_t: np.ndarray | None = None
                for j in range(k_heads):
                    a[j], c[j] = fit_platt(z[harmful, j], y[harmful, j])
                    if a[j] <= 0.0:  # as above, per topic head
                        if z_in_t is None:
                            z_in_t = logits(every, heads)[1]
                        a[j], c[j] = fit_platt(z_in_t[harmful, j], y[harmful, j])
        else:
            joint = _log_sigmoid(z_h)[:, None] + _log_sigmoid(z) if st.design == "joint" else z
            for j in range(k_heads):
                a[j], c[j] = fit_platt(joint[:, j], y[:, j])
        self._stats["fit_seconds"] = round(time.perf_counter() - t0, 3)
        self._stats["folds"] = k
        w_harm, b_harm, w, b = heads
        return _Model(
            list(ids), st.design, scale, lex_w, st.lexical_dim, mu,
            w_harm, b_harm, a_h, c_h, w, b, a, c,
        )  # fmt: skip

    # -- cache ---------------------------------------------------------------------------------
    def _expected_shapes(self) -> dict[str, tuple[int, ...]]:
        st = self.settings
        d, k = int(self.embedder.dim), len(self.principle_ids)
        big_d = d + (st.lexical_dim if st.lexical_weight > 0 else 0)
        factored = st.design != "direct"
        return {
            "mu": (big_d,),
            "w_harm": (big_d,) if factored else (0,),
            "w": (d, k) if factored else (big_d, k),
            "b": (k,),
            "a": (k,),
            "c": (k,),
        }

    def _read_cache(self, key: str) -> _Model | None:
        path = self.cache_path
        meta_path = path.with_suffix(".json")
        if not path.exists() and not meta_path.exists():
            self._cache_note = "miss"
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("key") != key:
                raise ValueError("cache key mismatch")
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) != key:
                    raise ValueError("heads file key mismatch")
                arrays = {name: z[name].astype(np.float64) for name in _Model.ARRAYS}
                ids = [str(s) for s in z["principle_ids"]]
                scalars = {name: float(z[name]) for name in _Model.SCALARS}
            if ids != self.principle_ids:
                raise ValueError("principle ids differ")
            shapes = {name: arr.shape for name, arr in arrays.items()}
            if shapes != self._expected_shapes():
                raise ValueError(f"array shapes {shapes} do not fit")
            finite = all(np.isfinite(arr).all() for arr in arrays.values())
            if not finite or not all(math.isfinite(v) for v in scalars.values()):
                raise ValueError("non-finite values")
        except Exception as e:  # noqa: BLE001 - any unreadable cache is retrained, never fatal
            self._cache_note = f"unusable ({type(e).__name__}: {e}); retrained"
            log.warning("screen cache %s unusable (%s); retraining", path, e)
            return None
        st = self.settings
        self._stats = dict(meta.get("stats", {}))
        self._cache_note = "hit"
        return _Model(
            ids,
            st.design,
            math.sqrt(int(self.embedder.dim)),
            float(st.lexical_weight),
            st.lexical_dim,
            **scalars,
            **arrays,
        )

    def _write_cache(self, key: str, model: _Model) -> None:
        path = self.cache_path
        meta = {
            "key": key,
            "constitution": {
                "name": self.constitution.name,
                "version": self.constitution.version,
                "hash": self.constitution.hash,
            },
            "augment_version": AUGMENT_VERSION,
            "trainer_version": TRAINER_VERSION,
            "embedder": self.embedder_id,
            "settings": asdict(self.settings),
            "principle_ids": model.principle_ids,
            "train_seconds": self.train_seconds,
            "stats": self._stats,
        }
        arrays = {name: getattr(model, name) for name in _Model.ARRAYS}
        arrays |= {name: np.array(getattr(model, name)) for name in _Model.SCALARS}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(
                path,
                lambda fh: np.savez(
                    fh,
                    key=np.array(key),
                    principle_ids=np.array(model.principle_ids, dtype=str),
                    **arrays,
                ),
            )
            blob = json.dumps(meta, indent=2, sort_keys=True).encode("utf-8")
            _atomic_write(path.with_suffix(".json"), lambda fh: fh.write(blob))
        except OSError as e:
            self._cache_note = f"not written ({e})"
            log.warning("screen cache %s not written: %s", path, e)

    # -- scoring -------------------------------------------------------------------------------
    def score(self, texts: list[str]) -> ScreenScores:
        """Each harm principle's probability for `texts`: every text is expanded into its
        views (normalize.views), all views are embedded in one batch, and each principle
        keeps its maximum over texts and views."""
        if isinstance(texts, str) or not isinstance(texts, list | tuple):
            raise RequestError("texts must be a list of strings", param="texts")
        if not all(isinstance(t, str) for t in texts):
            raise RequestError("texts must be a list of strings", param="texts")
        t0 = time.perf_counter()
        model = self.load()._model
        assert model is not None
        from charter.constitution import normalize

        rows: list[str] = []
        names: list[str] = []
        for text in texts:
            for v in normalize.views(text):
                rows.append(v.text)
                names.append(v.name)
        if not rows or not model.principle_ids:
            return ScreenScores(
                {pid: 0.0 for pid in model.principle_ids}, {}, (time.perf_counter() - t0) * 1000
            )
        p = model.probabilities(model.features(np.asarray(self.embedder.encode(rows)), rows))
        best = p.argmax(0)
        scores = {pid: float(p[best[j], j]) for j, pid in enumerate(model.principle_ids)}
        view = {pid: names[best[j]] for j, pid in enumerate(model.principle_ids)}
        return ScreenScores(scores, view, (time.perf_counter() - t0) * 1000)

    def fired(self, scores: ScreenScores) -> list[str]:
        """Principles whose score reaches their threshold, highest score first."""
        hits = [
            (s, pid)
            for pid, s in scores.scores.items()
            if pid in self.thresholds and s >= self.thresholds[pid]
        ]
        return [pid for _, pid in sorted(hits, key=lambda h: (-h[0], h[1]))]

    def uncertain(self, scores: ScreenScores, margin: float = 0.15) -> list[str]:
        """Principles scored below their threshold by less than `margin` (candidates for an
        LLM judgement), highest score first."""
        if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin <= 1:
            raise ConfigError(f"margin must be a number in [0, 1], got {margin!r}", param="margin")
        hits = [
            (s, pid)
            for pid, s in scores.scores.items()
            if pid in self.thresholds and self.thresholds[pid] - margin <= s < self.thresholds[pid]
        ]
        return [pid for _, pid in sorted(hits, key=lambda h: (-h[0], h[1]))]

    def info(self) -> dict[str, Any]:
        """What was trained and how: examples per principle, calibration, cache, embedder."""
        return {
            "principles": list(self.principle_ids),
            "thresholds": dict(self.thresholds),
            "embedder": self.embedder_id,
            "augment_version": AUGMENT_VERSION,
            "trainer_version": TRAINER_VERSION,
            "seed": self.seed,
            "settings": asdict(self.settings),
            "excluded": len(self.exclude),
            "loaded": self._model is not None,
            "trained_from_cache": self.trained_from_cache,
            "train_seconds": None if self.train_seconds is None else round(self.train_seconds, 3),
            "cache_key": self.cache_key,
            "cache_path": str(self.cache_path),
            "cache": self._cache_note,
            **self._stats,
        }


def _example_stats(examples: list[Example], ids: list[str]) -> dict[str, Any]:
    per: dict[str, dict[str, int]] = {}
    for pid in ids:
        pos = [ex for ex in examples if pid in ex.positive]
        neg = [ex for ex in examples if pid not in ex.positive]
        per[pid] = {
            "positives": sum(1 for ex in pos if not ex.template),
            "positives_augmented": len(pos),
            "negatives": sum(1 for ex in neg if not ex.template),
            "negatives_augmented": len(neg),
        }
    benign = [ex for ex in examples if not ex.positive]
    return {
        "examples": per,
        "benign": {
            "originals": sum(1 for ex in benign if not ex.template),
            "augmented": len(benign),
        },
        "answers": {
            "positives": sum(1 for ex in examples if ex.role == "answer" and ex.positive),
            "negatives": sum(1 for ex in examples if ex.role == "answer" and not ex.positive),
        },
        "rows": len(examples),
    }


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename over `path`: a reader
    sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
