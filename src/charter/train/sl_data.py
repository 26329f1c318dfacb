"""`charter train sl-data`: supervised constitutional data (Bai et al.'s SL stage).

For every prompt (`charter.train.prompts`): the generator drafts an answer, critiques it
under a principle sampled for the prompt, and revises it, `rounds` times. The prompt shapes
are those of the run-time stage (`charter.constitution.stage`), so training and run time ask
the same questions.

Which principle: a red-team prompt samples among the harm principle it came from and the
"uphold" principles (honesty, helpfulness); a helpful prompt samples among the uphold ones.
(Bai et al. sample from all 16; with a 135M generator, a principle unrelated to the prompt
mostly produces noise, so the sample is kept near the prompt.)

What the row trains on (``final_source``):

- red-team: the last revision when it reads as a refusal or redirection (the refusal
  detector of `charter eval`) and the constitution's screen does not fire on question +
  revision; otherwise, with ``refusal_fallback``, the constitution's own non-evasive refusal
  for that principle (``constitution_refusal``). A 135M model rarely writes a usable revision;
  the fallback is what makes its data usable, and the row says which it was.
- helpful: the revision when it is not a refusal and the screen does not fire, else the draft
  when it is not a refusal, else the row is skipped (training on an over-refusal would teach
  it).

Rows are TRL's conversational format (``messages``) plus the draft, every critique and
revision, and provenance (constitution hash, principle, generator, seed, config hash).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from charter import __version__
from charter.constitution.schema import Constitution
from charter.constitution.stage import _strip_echo
from charter.train.config import TrainConfig
from charter.train.engine import Engine
from charter.train.jsonl import append, resume
from charter.train.prompts import Prompt, build_prompts

CRITIQUE_SYSTEM = "You review an answer against one principle."
REVISION_SYSTEM = "You rewrite answers so they follow a principle."


def critique_messages(question: str, answer: str, critique_request: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": CRITIQUE_SYSTEM},
        {
            "role": "user",
            "content": f"Question: {question}\n\nAnswer: {answer}\n\n{critique_request} "
            "Reply in one or two sentences.",
        },
    ]


def revision_messages(
    question: str, answer: str, critique: str, revision_request: str
) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": REVISION_SYSTEM},
        {
            "role": "user",
            "content": f"Question: {question}\n\nAnswer: {answer}\n\nCritique: {critique}\n\n"
            f"{revision_request} Write only the new answer.",
        },
    ]


class SLGenerator:
    def __init__(self, cfg: TrainConfig, constitution: Constitution, engine: Engine, screen: Any):
        self.cfg = cfg
        self.c = constitution
        self.engine = engine
        self.screen = screen
        self.uphold = [p for p in constitution.principles if p.kind != "harm"]

    def _principle(self, prompt: Prompt, rng: random.Random) -> str:
        pool = [p.id for p in self.uphold]
        if prompt.principle:
            pool = [prompt.principle] * max(1, len(pool)) + pool
        return rng.choice(pool) if pool else (prompt.principle or "")

    def make(self, prompt: Prompt) -> dict[str, Any] | None:
        g = self.cfg.generator
        seed = self.cfg.run.seed
        rng = random.Random(f"{seed}:{prompt.id}")
        gen_seed = rng.randrange(2**31)
        history: list[dict[str, str]] = []
        for h in prompt.history:
            history.append({"role": "user", "content": h})
            reply = self.engine.complete(
                history, max_tokens=g.max_tokens, temperature=0.0, seed=gen_seed
            )
            history.append({"role": "assistant", "content": reply})
        convo = history + [{"role": "user", "content": prompt.text}]
        draft = self.engine.complete(
            convo, max_tokens=g.max_tokens, temperature=g.temperature, seed=gen_seed
        )
        answer = draft
        rounds = []
        for _ in range(self.cfg.sl_data.rounds):
            pid = self._principle(prompt, rng)
            p = self.c.principle(pid)
            critique = self.engine.complete(
                critique_messages(prompt.text, answer, p.critique),
                max_tokens=g.critique_max_tokens,
                temperature=0.0,
                seed=gen_seed,
            )
            revision = self.engine.complete(
                revision_messages(prompt.text, answer, critique, p.revision),
                max_tokens=g.max_tokens,
                temperature=0.0,
                seed=gen_seed,
            )
            revision = _strip_echo(revision, (p.revision, p.critique, "Write only the new answer"))
            rounds.append({"principle": pid, "critique": critique, "revision": revision})
            if revision.strip():
                answer = revision.strip()
        final, source, why = self._final(prompt, draft, answer if rounds else draft)
        if final is None:
            return {"id": prompt.id, "skipped": why}
        return {
            "id": prompt.id,
            "kind": prompt.kind,
            "source": prompt.source,
            "principle": rounds[-1]["principle"] if rounds else None,
            "target_principle": prompt.principle,
            "messages": convo + [{"role": "assistant", "content": final}],
            "draft": draft,
            "rounds": rounds,
            "final_source": source,
            "why": why,
            "provenance": {
                "constitution": self.c.name,
                "constitution_hash": self.c.hash,
                "generator": self.engine.describe,
                "seed": gen_seed,
                "config_hash": self.cfg.stage_hash("generator", "sl_data"),
                "charter_version": __version__,
            },
        }

    def _final(self, prompt: Prompt, draft: str, revision: str) -> tuple[str | None, str, str]:
        from charter.eval.refusal import detect

        def fires(text: str) -> list[str]:
            return self.screen.fired(self.screen.score([f"{prompt.text}\n\n{text}"]))

        if prompt.kind == "red_team":
            if revision != draft and revision.strip():
                refused = detect(revision).refused
                fired = fires(revision)
                if refused and not fired:
                    return revision, "revision", "revision declines and passes the screen"
                why = ("screen fired: " + ", ".join(fired)) if fired else "revision complies"
            else:
                why = "no revision"
            if self.cfg.sl_data.refusal_fallback and prompt.principle:
                return self.c.refusal_text(prompt.principle), "constitution_refusal", why
            return None, "", why
        if (
            revision != draft
            and revision.strip()
            and not detect(revision).refused
            and not fires(revision)
        ):
            return revision, "revision", "revision helps and passes the screen"
        if not detect(draft).refused:
            return draft, "draft", "revision refused or failed the screen; draft kept"
        return None, "", "draft and revision both refuse a helpful request"


def run_sl_data(
    cfg: TrainConfig,
    constitution: Constitution,
    *,
    restart: bool = False,
    engine: Engine | None = None,
    screen: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``<out_dir>/sl_data.jsonl`` (resumable); returns counts and timings."""
    out = cfg.out_dir / "sl_data.jsonl"
    s = cfg.sl_data
    prompts, counts = build_prompts(
        constitution,
        red_team=s.red_team,
        helpful=s.helpful,
        multi_turn=s.multi_turn,
        augment_per_text=s.augment_per_text,
        seed=cfg.run.seed,
    )
    done = resume(out, cfg.stage_hash("generator", "sl_data"), restart=restart, what="sl-data")
    todo = [p for p in prompts if p.id not in done]
    t0 = time.perf_counter()
    own_engine = engine is None
    if engine is None:
        engine = Engine(cfg.generator, base_model_path(cfg)).load()
    if screen is None:
        from charter.constitution.screen import Screen

        screen = Screen(constitution).load()
    gen = SLGenerator(cfg, constitution, engine, screen)
    made = skipped = 0
    try:
        with (
            out.open("a", encoding="utf-8") as f,
            tqdm(
                total=len(prompts), initial=len(done), desc="sl-data", disable=not progress
            ) as bar,
        ):
            for _, row in engine.map(gen.make, todo):
                if row is not None:
                    append(f, row)
                    if "skipped" in row:
                        skipped += 1
                    else:
                        made += 1
                bar.update(1)
    finally:
        if own_engine:
            engine.close()
    return {
        "file": str(out),
        "prompts": counts,
        "resumed_from": len(done),
        "made": made,
        "skipped": skipped,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def base_model_path(cfg: TrainConfig) -> Path | None:
    return None if cfg.model.base == "embedded" else cfg.path(cfg.model.base)
