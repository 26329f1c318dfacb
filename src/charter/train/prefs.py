"""`charter train prefs`: preference pairs labelled by AI feedback (RLAIF), plus human ones.

For each SL row the pair is (draft, final answer), or (draft, a second sampled answer) when
the two are the same. A judge model (any backend that returns log-probabilities: the base
GGUF through llama.cpp, or a stronger upstream) is asked, under a principle sampled from the
constitution, which answer follows it better, and the log-probabilities of the choice tokens
"A" and "B" at its first answer token give a **soft label** p(B better) =
p(B) / (p(A) + p(B)). Labels are averaged over ``principles_per_pair`` sampled principles and,
with ``both_orders``, over both orders of the answers (the judge's position bias cancels).
With ``cot``, the judge first writes its reasoning, then answers; such labels are clamped to
[0.4, 0.6] as Bai et al. do (a chain of thought makes the choice over-confident).

No side is assumed better: the draft wins whenever the judge prefers it. Pairs whose label is
within ``min_margin`` of 0.5 are written as skipped (undecided), so a rerun does not ask again.
Rows follow TRL's DPO conversational format (``prompt``, ``chosen``, ``rejected``) with the
label, every principle's vote and provenance.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from tqdm import tqdm

from charter import __version__
from charter.constitution.schema import Constitution
from charter.errors import ConfigError
from charter.train.config import TrainConfig
from charter.train.engine import Engine
from charter.train.jsonl import append, read_rows, resume
from charter.train.sl_data import base_model_path

JUDGE_SYSTEM = "You compare two answers against one principle and pick the better one."
COT_CLAMP = (0.4, 0.6)


def render_conversation(messages: list[dict[str, str]]) -> str:
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    return "\n\n".join(f"{names[m['role']]}: {m['content']}" for m in messages)


def judge_messages(
    conversation: list[dict[str, str]], statement: str, a: str, b: str, reasoning: str = ""
) -> list[dict[str, str]]:
    text = (
        f"Consider this conversation:\n\n{render_conversation(conversation)}\n\n"
        f"Which answer better follows this principle: {statement}\n\n"
        f"Options:\n(A) {a}\n(B) {b}\n\n"
    )
    text += f"Reasoning: {reasoning}\n\n" if reasoning else ""
    text += "Answer with the letter A or B only."
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": text}]


def cot_messages(
    conversation: list[dict[str, str]], statement: str, a: str, b: str
) -> list[dict[str, str]]:
    text = (
        f"Consider this conversation:\n\n{render_conversation(conversation)}\n\n"
        f"Which answer better follows this principle: {statement}\n\n"
        f"Options:\n(A) {a}\n(B) {b}\n\n"
        "Think step by step in two or three sentences about which answer follows the "
        "principle better."
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": text}]


def soft_label(lp: dict[str, float | None]) -> float | None:
    """p(B) / (p(A) + p(B)) from log-probabilities; None when neither letter was seen. A
    letter missing from the top candidates counts as far less likely than the one seen."""
    a, b = lp.get("A"), lp.get("B")
    if a is None and b is None:
        return None
    floor = min(x for x in (a, b) if x is not None) - 5.0  # e^-5: unseen is ~0.7% of seen
    a = floor if a is None else a
    b = floor if b is None else b
    m = max(a, b)
    return math.exp(b - m) / (math.exp(a - m) + math.exp(b - m))


class Labeller:
    def __init__(self, cfg: TrainConfig, constitution: Constitution, judge: Engine):
        self.cfg = cfg
        self.c = constitution
        self.judge = judge

    def vote(
        self, convo: list[dict[str, str]], statement: str, first: str, second: str
    ) -> tuple[float | None, str]:
        """p(second is better) for one order, and the reasoning (when cot)."""
        j = self.cfg.prefs.judge
        reasoning = ""
        if j.cot:
            reasoning = self.judge.complete(
                cot_messages(convo, statement, first, second),
                max_tokens=j.cot_max_tokens,
                temperature=0.0,
                seed=0,
            )
        p = soft_label(
            self.judge.choice_logprobs(
                judge_messages(convo, statement, first, second, reasoning), ("A", "B")
            )
        )
        if p is not None and j.cot:
            p = min(max(p, COT_CLAMP[0]), COT_CLAMP[1])
        return p, reasoning

    def label(self, item: tuple[dict[str, Any], str, str]) -> dict[str, Any]:
        row, x, y = item
        j = self.cfg.prefs.judge
        convo = row["messages"][:-1]
        rng = random.Random(f"{self.cfg.run.seed}:prefs:{row['id']}")
        k = min(j.principles_per_pair, len(self.c.principles))
        principles = rng.sample(list(self.c.principles), k)
        votes = []
        for p in principles:
            p_y, why = self.vote(convo, p.statement, x, y)
            v = {"principle": p.id, "order": "xy", "p_y": p_y}
            if why:
                v["reasoning"] = why
            votes.append(v)
            if j.both_orders:
                p_x, why = self.vote(convo, p.statement, y, x)
                v = {"principle": p.id, "order": "yx", "p_y": None if p_x is None else 1 - p_x}
                if why:
                    v["reasoning"] = why
                votes.append(v)
        seen = [v["p_y"] for v in votes if v["p_y"] is not None]
        out: dict[str, Any] = {"id": row["id"], "votes": votes}
        if not seen:
            out["skipped"] = "the judge never put A or B among its top tokens"
            return out
        p_y = sum(seen) / len(seen)
        if abs(p_y - 0.5) < self.cfg.prefs.min_margin:
            out["skipped"] = f"undecided: p={p_y:.3f} within {self.cfg.prefs.min_margin} of 0.5"
            out["p_y"] = round(p_y, 4)
            return out
        chosen, rejected = (y, x) if p_y > 0.5 else (x, y)
        out.update(
            {
                "prompt": convo,
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
                "score": round(max(p_y, 1 - p_y), 4),
                "chosen_is": ("y" if p_y > 0.5 else "x"),
                "x_is": "draft",
                "y_is": row.get("_y_is", "final"),
                "kind": row.get("kind"),
                "source": "ai",
                "missing_votes": len(votes) - len(seen),
                "provenance": {
                    "constitution_hash": self.c.hash,
                    "judge": self.judge.describe,
                    "principles": [p.id for p in principles],
                    "config_hash": self.cfg.stage_hash("generator", "sl_data", "prefs"),
                    "charter_version": __version__,
                },
            }
        )
        return out


def run_prefs(
    cfg: TrainConfig,
    constitution: Constitution,
    *,
    restart: bool = False,
    judge: Engine | None = None,
    generator: Engine | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``<out_dir>/prefs.jsonl`` from ``sl_data.jsonl`` (resumable)."""
    sl_rows = [r for r in read_rows(cfg.out_dir / "sl_data.jsonl") if "messages" in r]
    if not sl_rows:
        raise ConfigError(f"{cfg.out_dir / 'sl_data.jsonl'}: no usable rows to make pairs from")
    rng = random.Random(f"{cfg.run.seed}:prefs")
    picked = sorted(sl_rows, key=lambda r: r["id"])
    rng.shuffle(picked)
    picked = picked[: cfg.prefs.pairs]
    out = cfg.out_dir / "prefs.jsonl"
    done = resume(
        out, cfg.stage_hash("generator", "sl_data", "prefs"), restart=restart, what="prefs"
    )
    todo = [r for r in picked if r["id"] not in done]
    t0 = time.perf_counter()
    base = base_model_path(cfg)
    own = []
    if judge is None:
        judge = Engine(cfg.prefs.judge, base).load()
        own.append(judge)
    need_second = [r for r in todo if r["messages"][-1]["content"].strip() == r["draft"].strip()]
    if need_second and generator is None:
        g, j = cfg.generator, cfg.prefs.judge
        same = (g.backend, g.options) == (j.backend, j.options)  # one model in memory, not two
        generator = judge if same else Engine(cfg.generator, base).load()
        if generator is not judge:
            own.append(generator)
    labeller = Labeller(cfg, constitution, judge)

    def pair(row: dict[str, Any]) -> dict[str, Any]:
        x = row["draft"].strip()
        y = row["messages"][-1]["content"].strip()
        if x == y:
            assert generator is not None
            g = cfg.generator
            y = generator.complete(
                row["messages"][:-1],
                max_tokens=g.max_tokens,
                temperature=max(g.temperature, 0.7),
                seed=row["provenance"]["seed"] + 1,
            )
            row = {**row, "_y_is": "second_sample"}
            if y.strip() == x:
                return {"id": row["id"], "skipped": "second sample equals the draft"}
        return labeller.label((row, x, y))

    made = skipped = 0
    try:
        with (
            out.open("a", encoding="utf-8") as f,
            tqdm(total=len(picked), initial=len(done), desc="prefs", disable=not progress) as bar,
        ):
            for _, res in judge.map(pair, todo):
                append(f, res)
                skipped += "skipped" in res
                made += "skipped" not in res
                bar.update(1)
            human = _human_rows(cfg, done)
            for res in human:
                append(f, res)
                made += 1
    finally:
        for e in own:
            e.close()
    return {
        "file": str(out),
        "sl_rows": len(sl_rows),
        "asked": len(picked),
        "resumed_from": len(done),
        "made": made,
        "skipped": skipped,
        "human": len(human),
        "seconds": round(time.perf_counter() - t0, 1),
        "judge": judge_report(read_rows(out)),
    }


def judge_report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How far the AI labels can be trusted, from the votes themselves (every AI row in the
    file, resumed ones included):

    - ``order_consistency``: of the (pair, principle) votes asked in both orders, the share
      where the judge picked the same answer both times; 0.5 is what a coin would score,
      and a judge that always answers "(A)" scores 0;
    - ``picks_a``: the mean probability it gave to whichever answer stood first (0.5 = no
      position bias);
    - ``chosen``: which answer won the kept pairs (the draft, the final answer, a second
      sample), so a judge that prefers compliant drafts to the constitution's revisions
      shows up before DPO trains on it.
    """
    both = consistent = 0
    first: list[float] = []
    chosen: dict[str, int] = {}
    for row in rows:
        if row.get("source") == "human":
            continue
        by_principle: dict[str, dict[str, float]] = {}
        for v in row.get("votes", []):
            if v.get("p_y") is None:
                continue
            by_principle.setdefault(v["principle"], {})[v["order"]] = v["p_y"]
            first.append(1 - v["p_y"] if v["order"] == "xy" else v["p_y"])
        for orders in by_principle.values():
            if len(orders) == 2:
                both += 1
                consistent += (orders["xy"] > 0.5) == (orders["yx"] > 0.5)
        if "chosen" in row:
            winner = row["x_is"] if row["chosen_is"] == "x" else row["y_is"]
            chosen[winner] = chosen.get(winner, 0) + 1
    return {
        "votes": len(first),
        "order_consistency": round(consistent / both, 3) if both else None,
        "picks_a": round(sum(first) / len(first), 3) if first else None,
        "chosen": chosen,
    }


def judge_warning(report: dict[str, Any]) -> str | None:
    """A one-line warning when the judge's labels are closer to noise than to judgement."""
    c = report.get("order_consistency")
    if c is None or c >= 0.6:
        return None
    return (
        f"warning: the judge picked the same answer in both orders in only {c:.0%} of "
        f"votes (it gives {report['picks_a']:.0%} to whichever answer comes first): its "
        "labels are mostly position bias; use a stronger judge ([prefs.judge] backend = "
        '"openai") before training DPO on them'
    )


def _human_rows(cfg: TrainConfig, done: set[str]) -> list[dict[str, Any]]:
    """Pairs from `charter feedback export` (already in DPO format), marked source human."""
    if not cfg.prefs.human:
        return []
    path = cfg.path(cfg.prefs.human)
    rows = []
    for i, r in enumerate(read_rows(path), 1):
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in r]
        if missing:
            raise ConfigError(f"{path}:{i}: missing {', '.join(missing)} (not a preference pair)")
        # One answer can be the rejected side of several pairs (two reviewers' better
        # answers): the export's pair_id tells them apart.
        rid = f"human-{r.get('pair_id') or r.get('message_id', i)}"
        if rid in done:
            continue
        rows.append({**r, "id": rid, "source": "human"})
    return rows
