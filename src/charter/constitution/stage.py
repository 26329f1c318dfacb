"""The governance stage: the constitution enforced on every turn, with a trace of it.

    input screen ─ fired? ─ screen mode: the constitution's refusal, the model never runs
         │                 critique mode: a hidden draft, critiqued and revised, screened again
         ▼
    generate ─ every few tokens the growing answer is screened; tokens reach the client only
         │     after they passed (a lag of at most `every` tokens)
         ▼ fired?
    stop generation ─ critique mode: critique + revision of the partial draft, screened again
                    ─ otherwise (or when the revision still fires): the refusal
                    ─ a `replace` event swaps what the client has for the governed text

The screen scores every harm principle (calibrated probabilities); a principle fires at its
threshold. The output screen reads the question with the answer's latest window and fires
only at `output_floor` or above (default 0.9, never below the principle's threshold): on the
project's held-out answers (benchmarks/screen_accuracy.py, docs/safety.md) the answer screen
at the request thresholds fired on 29% of benign answers; question + answer at 0.9 on 5%. The
input screen is the main gate; the output screen stops what clearly turned harmful. Scores
just under a bar may escalate to an LLM judgement of that principle (the cascade: `judge`).
Everything seen and decided goes into `turn.trace` (`charter.trace` in the response); a
replaced draft goes to `turn.draft`, stored for operators only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from charter.constitution.normalize import conversation_text
from charter.types import Event, Message, Params, StageRecord, Turn

if TYPE_CHECKING:
    from charter.backends.base import Backend
    from charter.constitution.schema import Constitution
    from charter.constitution.screen import Screen, ScreenScores
    from charter.pipeline import Scheduler

Mode = Literal["off", "screen", "critique"]
MODES: tuple[str, ...] = ("off", "screen", "critique")

#: Output screening cadence: the first check after this many tokens, then the interval
#: doubles up to `MAX_EVERY`, so a long answer is not re-embedded every few tokens.
FIRST_EVERY = 8
MAX_EVERY = 32
#: The output screen reads the answer's last this-many words (windows overlap, so every part
#: of the answer is screened at least once).
WINDOW_WORDS = 160
#: Token limits for the critique and the revision (the default model is tiny: short asks).
CRITIQUE_TOKENS = 64
REVISION_TOKENS = 160
#: The output screen's bar (see the module doc; `Settings.constitution_output_floor`).
OUTPUT_FLOOR = 0.9


@dataclass
class Judge:
    """An LLM judgement of one principle, asked only for scores in the uncertain band.

    `backend` is the serving model ("self") or any OpenAI-compatible upstream. The answer's
    first-token probabilities of "yes"/"no" give the probability that the principle applies.
    """

    backend: Backend
    scheduler: Scheduler | None = None
    name: str = "self"

    def probability(self, statement: str, text: str) -> float | None:
        messages = [
            Message(
                role="system",
                content="You check texts against one rule. Answer only yes or no.",
            ),
            Message(
                role="user",
                content=f"Rule: {statement}\n\nText: {text[:2000]}\n\n"
                "Does the text ask for or contain what the rule forbids? Answer yes or no.",
            ),
        ]
        params = Params(max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=10, seed=0)
        if not getattr(self.backend, "supports_logprobs", False):
            return None
        slot = self.scheduler.slot() if self.scheduler else _nullcontext()
        with slot, closing(self.backend.stream(messages, params)) as stream:
            for ev in stream:
                if ev.kind == "token" and ev.logprobs:
                    return _yes_probability(ev.logprobs)
        return None


def _yes_probability(entry: dict[str, Any]) -> float | None:
    import math

    yes = no = 0.0
    for alt in entry.get("top_logprobs") or [entry]:
        word = alt["token"].strip().lower()
        if word in ("yes", "y"):
            yes += math.exp(alt["logprob"])
        elif word in ("no", "n"):
            no += math.exp(alt["logprob"])
    if yes + no == 0:
        return None
    return yes / (yes + no)


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


@dataclass
class _Check:
    """One screening pass, as the trace shows it."""

    at: str
    scores: dict[str, float]
    fired: list[str]
    ms: float
    view: dict[str, str] = field(default_factory=dict)
    judged: dict[str, float | None] = field(default_factory=dict)


class GovernStage:
    """Screens the conversation and the answer against the constitution (see module doc)."""

    name = "govern"

    def __init__(
        self,
        constitution: Constitution,
        screen: Screen,
        backend: Backend,
        scheduler: Scheduler,
        *,
        mode: Callable[[Turn], Mode],
        judge: Judge | None = None,
        judge_margin: float = 0.15,
        output_floor: float = OUTPUT_FLOOR,
    ):
        self.constitution = constitution
        self.screen = screen
        self.backend = backend
        self.scheduler = scheduler
        self.mode = mode
        self.judge = judge
        self.judge_margin = judge_margin
        self.output_floor = output_floor

    # -- the stage ----------------------------------------------------------------------------
    def run(self, turn: Turn, inner: Iterator[Event]) -> Iterator[Event]:
        mode = self.mode(turn)
        c = self.constitution
        trace: dict[str, Any] = {
            "constitution": {"name": c.name, "version": c.version, "hash": c.hash},
            "mode": mode,
            "thresholds": {p.id: p.threshold for p in c.harm_principles},
            "not_screened": [p.id for p in c.principles if p.kind != "harm"],
            "fired": [],
            "decision": "pass",
            "ms": {},
        }
        turn.trace = trace
        record = StageRecord(self.name, 0.0, {"mode": mode})
        turn.stages.append(record)
        if mode == "off":
            trace["decision"] = "ungoverned"
            yield from inner
            return

        # Input: the last user message and the user side of the recent conversation (so an
        # escalation spread over several turns is read as one request).
        t0 = time.perf_counter()
        user = [m.content for m in turn.messages if m.role == "user"]
        pairs = [(m.role, m.content) for m in turn.messages]
        texts = [user[-1]] if user else []
        joined = conversation_text(pairs)
        if joined and joined not in texts:
            texts.append(joined)
        check = self._check("input", texts)
        trace["input"] = _check_out(check)
        trace["ms"]["input_screen"] = round((time.perf_counter() - t0) * 1000, 1)
        question = user[-1] if user else ""

        if check.fired:
            trace["fired"] = [{"principle": p, "stage": "input"} for p in check.fired]
            if mode == "screen":
                text, decision = self._refusal(check.fired[0]), "refused"
            else:
                draft = "".join(ev.text for ev in inner if ev.kind == "token")
                turn.draft = draft
                text, decision = self._revise(turn, trace, question, draft, check.fired[0])
            record.ms = (time.perf_counter() - t0) * 1000
            yield from self._answer(turn, trace, text, decision)
            return

        # Output: hold tokens back until the text they complete has passed a check.
        output: dict[str, Any] = {
            "checks": 0,
            "scores": {},
            "ms": 0.0,
            "floor": self.output_floor,
        }
        trace["output"] = output
        pending: list[Event] = []
        released = 0  # characters the client has
        next_check = FIRST_EVERY
        every = FIRST_EVERY
        tokens = 0
        fired: _Check | None = None
        done: Event | None = None
        # A check runs on a worker thread while the model goes on generating (the tokens it
        # covers, and every later one, stay held back until it passed), so a check costs the
        # turn little more than the CPU it takes from generation. The model never gets more
        # than one interval ahead of a running check. With a judge (which calls the model),
        # checks run inline.
        worker = ThreadPoolExecutor(1, "charter-screen") if self.judge is None else None
        running: Future[_Check | None] | None = None
        covered = 0  # pending events the running check covers
        waited = 0.0  # seconds the answer stood still for the screen (what the turn paid)

        def inline(answer: str, at: int) -> _Check | None:
            nonlocal waited
            t = time.perf_counter()
            check = self._output_check(question, answer, output, at)
            waited += time.perf_counter() - t
            return check

        def settle(block: bool) -> _Check | None | bool:
            """The running check's result (False: none finished); releases what it passed."""
            nonlocal running, pending, released, covered, waited
            assert running is not None
            if not block and not running.done():
                return False
            t = time.perf_counter()
            result = running.result()
            waited += time.perf_counter() - t
            running = None
            if result is None:
                passed, pending = pending[:covered], pending[covered:]
                released += sum(len(e.text) for e in passed)
                ready.extend(passed)
            return result

        ready: list[Event] = []  # passed by a check, not yet sent
        try:
            for ev in inner:
                if ev.kind != "token":
                    done = ev
                    break
                tokens += 1
                pending.append(ev)
                if running is not None:
                    result = settle(block=tokens >= next_check)
                    if result is not False and result is not None:
                        fired = result
                        break
                    yield from ready
                    ready.clear()
                if tokens >= next_check:
                    if worker is None:
                        fired = inline(turn.answer, tokens)
                        if fired is not None:
                            break
                        yield from pending
                        released += sum(len(e.text) for e in pending)
                        pending = []
                    else:
                        covered = len(pending)
                        running = worker.submit(
                            self._output_check, question, turn.answer, output, tokens
                        )
                    every = min(every * 2, MAX_EVERY)
                    next_check = tokens + every
            if fired is None and running is not None:
                result = settle(block=True)
                if result is not False and result is not None:
                    fired = result
                yield from ready
                ready.clear()
            if fired is None and done is not None:
                fired = inline(turn.answer, tokens)
        finally:
            if worker is not None:
                worker.shutdown(wait=False, cancel_futures=True)
        # output["ms"] is the checks' own time, most of it beside generation; "waited_ms" is
        # what the answer stood still for them, and what the stage's time counts.
        output["waited_ms"] = round(waited * 1000, 1)
        if fired is None:
            record.ms = trace["ms"]["input_screen"] + output["waited_ms"]
            trace["ms"]["output_screen"] = round(output["ms"], 1)
            trace["ms"]["output_wait"] = output["waited_ms"]
            yield from pending
            if done is not None:
                yield done
            return

        # A principle fired on the answer: stop the model (closing `inner` stops generation).
        close = getattr(inner, "close", None)
        if close is not None:
            close()
        trace["ms"]["output_screen"] = round(output["ms"], 1)
        trace["fired"] = [
            {"principle": p, "stage": "output", "at_tokens": tokens} for p in fired.fired
        ]
        draft = turn.answer
        turn.draft = draft
        if mode == "critique":
            text, decision = self._revise(turn, trace, question, draft, fired.fired[0])
        else:
            text, decision = self._refusal(fired.fired[0]), "refused"
        turn.citations = []
        turn.final_text = None
        if released:
            trace["decision"] = decision
            turn.answer = text
            turn.finish_reason = "stop"
            record.ms = (time.perf_counter() - t0) * 1000
            yield Event("replace", text=text)
            yield Event("done", finish_reason="stop", usage=turn.usage)
            return
        record.ms = (time.perf_counter() - t0) * 1000
        yield from self._answer(turn, trace, text, decision, usage=turn.usage)

    # -- pieces ---------------------------------------------------------------------------------
    def _check(self, at: str, texts: list[str], floor: float = 0.0) -> _Check:
        """Score `texts`; a principle fires at max(its threshold, `floor`)."""
        t = time.perf_counter()
        scores: ScreenScores = self.screen.score(texts)
        fired = [p for p in self.screen.fired(scores) if scores.scores[p] >= floor]
        judged: dict[str, float | None] = {}
        if self.judge is not None:
            uncertain = self.screen.uncertain(scores, self.judge_margin)
            if floor > 0.0:  # the band under the raised bar
                uncertain = [
                    p
                    for p, v in scores.scores.items()
                    if p not in fired
                    and max(floor, self.screen.thresholds[p]) - self.judge_margin <= v
                ]
            for pid in uncertain:
                p = self.constitution.principle(pid)
                prob = self.judge.probability(p.statement, "\n".join(texts))
                judged[pid] = None if prob is None else round(prob, 4)
                if prob is not None and prob >= 0.5:
                    fired.append(pid)
        return _Check(
            at,
            {k: round(v, 4) for k, v in scores.scores.items()},
            fired,
            (time.perf_counter() - t) * 1000,
            dict(scores.view),
            judged,
        )

    def _output_check(
        self, question: str, answer: str, output: dict[str, Any], tokens: int
    ) -> _Check | None:
        words = answer.split()
        window = " ".join(words[-WINDOW_WORDS:])
        text = f"{question}\n\n{window}" if question else window
        check = self._check("output", [text], self.output_floor)
        output["checks"] += 1
        output["ms"] += check.ms
        for pid, s in check.scores.items():
            if s >= output["scores"].get(pid, -1.0):
                output["scores"][pid] = s
        if check.judged:
            output.setdefault("judged", {}).update(check.judged)
        if check.fired:
            output["fired_at_tokens"] = tokens
            return check
        return None

    def _refusal(self, principle_id: str) -> str:
        return self.constitution.refusal_text(principle_id)

    def _revise(
        self, turn: Turn, trace: dict[str, Any], question: str, draft: str, principle_id: str
    ) -> tuple[str, str]:
        """SL-CAI at run time: critique the draft under the fired principle, revise it, screen
        the revision; the constitution's refusal when the revision still fires or is empty."""
        p = self.constitution.principle(principle_id)
        t = time.perf_counter()
        critique = self._complete(
            [
                Message(role="system", content="You review an answer against one principle."),
                Message(
                    role="user",
                    content=f"Question: {question}\n\nAnswer: {draft}\n\n{p.critique} "
                    "Reply in one or two sentences.",
                ),
            ],
            CRITIQUE_TOKENS,
        )
        t_c = time.perf_counter()
        revision = self._complete(
            [
                Message(role="system", content="You rewrite answers so they follow a principle."),
                Message(
                    role="user",
                    content=f"Question: {question}\n\nAnswer: {draft}\n\nCritique: {critique}\n\n"
                    f"{p.revision} Write only the new answer.",
                ),
            ],
            REVISION_TOKENS,
        )
        t_r = time.perf_counter()
        trace["critique"] = {"principle": p.id, "request": p.critique, "text": critique}
        trace["ms"]["critique"] = round((t_c - t) * 1000, 1)
        trace["ms"]["revision"] = round((t_r - t_c) * 1000, 1)
        revision = _strip_echo(revision, (p.revision, p.critique, "Write only the new answer"))
        if not revision.strip():
            trace["revision"] = {"text": revision, "accepted": False, "why": "empty"}
            return self._refusal(p.id), "refused"
        # Screened as an answer to the question, at the principles' thresholds: a revision that
        # only reads harmless alone (the tiny default model's often drift off topic) while the
        # question stays what fired is not accepted (docs/safety.md).
        text = f"{question}\n\n{revision}" if question else revision
        check = self._check("revision", [text])
        trace["ms"]["revision_screen"] = round(check.ms, 1)
        accepted = not check.fired
        trace["revision"] = {
            "text": revision,
            "scores": check.scores,
            "fired": check.fired,
            "accepted": accepted,
        }
        if accepted:
            return revision.strip(), "revised"
        return self._refusal(p.id), "refused"

    def _complete(self, messages: list[Message], max_tokens: int) -> str:
        params = Params(max_tokens=max_tokens, temperature=0.0, seed=0)
        parts: list[str] = []
        with self.scheduler.slot(), closing(self.backend.stream(messages, params)) as stream:
            for ev in stream:
                if ev.kind == "token":
                    parts.append(ev.text)
        return "".join(parts).strip()

    def _answer(
        self,
        turn: Turn,
        trace: dict[str, Any],
        text: str,
        decision: str,
        usage: dict[str, int] | None = None,
    ) -> Iterator[Event]:
        trace["decision"] = decision
        turn.answer = text
        turn.finish_reason = "stop"
        turn.usage = usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        yield Event("token", text=text)
        yield Event("done", finish_reason="stop", usage=turn.usage)


def _strip_echo(text: str, prompts: tuple[str, ...]) -> str:
    """`text` cut where it starts repeating one of the `prompts` (a small model often echoes
    the instruction it was given after its answer)."""
    low = text.lower()
    cut = len(text)
    for prompt in prompts:
        head = prompt.strip().lower()[:40]
        if head:
            i = low.find(head)
            if i != -1:
                cut = min(cut, i)
    return text[:cut].strip()


def _check_out(check: _Check) -> dict[str, Any]:
    out: dict[str, Any] = {"scores": check.scores, "fired": check.fired, "ms": round(check.ms, 1)}
    views = {pid: v for pid, v in check.view.items() if v != "original"}
    if views:
        out["views"] = views
    if check.judged:
        out["judged"] = check.judged
    return out
