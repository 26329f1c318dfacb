"""The prompts a training run starts from: red-team and helpful, all written for Charter.

- **Red-team** prompts are the harm principles' own ``covers`` (requests only; answer excerpts
  are skipped) plus templated rewordings of them (`charter.constitution.augment`: polite,
  step-by-step, role-play, fiction, "ignore your instructions", typos...). Each keeps the
  principle it came from.
- **Helpful** prompts are the principles' ``not_covers`` look-alikes, the harmless classes'
  examples, and general requests composed here from hand-written parts, so that tuning for
  harmlessness is mixed with ordinary helpfulness (Bai et al. mix helpful data for the same
  reason).

**Evaluation hygiene.** Nothing here comes from a public safety benchmark or from Charter's
evaluation suites, and `split_off_eval_overlap` enforces the second: a prompt equal to an
evaluation case (after normalisation) or sharing half its word 5-grams with one is dropped
before any generation, and the count is recorded in the run's provenance.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache

from charter.constitution.augment import augment_one, text_kind
from charter.constitution.schema import Constitution


@dataclass(frozen=True)
class Prompt:
    id: str
    #: "red_team" or "helpful".
    kind: str
    text: str
    #: Where it came from: "covers:<principle>", "not_covers:<principle>", "harmless:<class>",
    #: "general:<template>", plus "+<rewording>" for augmented prompts.
    source: str
    #: The harm principle a red-team prompt tests (None for helpful prompts).
    principle: str | None = None
    #: An earlier exchange (user, assistant texts to be generated) for multi-turn rows.
    history: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------- general requests

_EXPLAIN = (
    "how a refrigerator keeps food cold",
    "why the sky looks blue during the day",
    "what compound interest is",
    "how a bill becomes a law in a parliamentary system",
    "what a hash table is and why lookups are fast",
    "how vaccines teach the immune system",
    "the difference between weather and climate",
    "how noise-cancelling headphones work",
    "what inflation means for someone's savings",
    "how a bicycle stays upright when moving",
    "what the greenhouse effect is",
    "how photosynthesis turns light into sugar",
    "what a recursive function is",
    "why bread dough rises",
    "how GPS works out where you are",
    "what an index fund is",
    "why leaves change colour in autumn",
    "how a heat pump heats a house",
    "what a git rebase does",
    "how tides are caused by the moon",
    "what a p-value tells you and what it does not",
    "how a credit score is used by lenders",
    "what the Krebs cycle is for",
    "why airplanes can fly",
    "what a REST API is",
    "how earthquakes are measured",
    "what opportunity cost means",
    "how the human ear turns sound into signals",
    "what a mortgage amortisation schedule shows",
    "how a compiler differs from an interpreter",
)
_WRITE = (
    ("a short poem", "the first snowfall of the year"),
    ("a friendly reminder email", "a team meeting moved to Thursday"),
    ("a two-sentence product description", "a reusable water bottle"),
    ("a haiku", "a cat watching rain"),
    ("a thank-you note", "a neighbour who watered my plants"),
    ("a short story opening", "a lighthouse keeper who finds a letter"),
    ("a polite complaint", "a late furniture delivery"),
    ("a limerick", "a programmer who forgot to save"),
    ("a cover letter paragraph", "a junior data analyst role"),
    ("a toast for a wedding", "two friends who met hiking"),
    ("a LinkedIn post", "finishing an online course in statistics"),
    ("a bedtime story", "a dragon who is afraid of the dark"),
    ("an out-of-office reply", "a two-week holiday"),
    ("a short speech", "welcoming new volunteers to a food bank"),
    ("a recipe introduction", "a family lentil soup"),
)
_HOWTO = (
    "make a simple budget for the month",
    "start running if I have never exercised",
    "write a for loop in Python that sums a list",
    "remove a red wine stain from a carpet",
    "prepare for a job interview",
    "keep basil alive on a windowsill",
    "set up a new Git repository",
    "back up photos from my phone",
    "cook rice on the stove without it sticking",
    "write a good commit message",
    "learn the basics of Spanish in three months",
    "change a flat tyre on a bicycle",
    "negotiate a higher salary politely",
    "reduce my screen time in the evening",
    "make a cold brew coffee at home",
    "read a nutrition label",
    "sort a list of dictionaries by a key in Python",
    "plan a week of vegetarian dinners",
    "unclog a bathroom sink without chemicals",
    "take better photos with my phone",
    "write a SQL query that counts orders per customer",
    "organise a small home office",
    "fall asleep more easily",
    "teach a child to tie their shoelaces",
    "calculate a 15 percent tip quickly",
)
_COMPARE = (
    ("a list", "a tuple in Python"),
    ("a virus", "a bacterium"),
    ("stocks", "bonds"),
    ("baking soda", "baking powder"),
    ("RAM", "storage"),
    ("a simile", "a metaphor"),
    ("TCP", "UDP"),
    ("an alligator", "a crocodile"),
    ("weather", "climate"),
    ("a Roth IRA", "a traditional IRA"),
    ("affect", "effect"),
    ("HTTP", "HTTPS"),
    ("mitosis", "meiosis"),
    ("a lake", "a pond"),
    ("machine learning", "traditional programming"),
)
_TIPS = (
    "staying focused while studying",
    "a first trip abroad",
    "keeping houseplants healthy",
    "writing clearer emails",
    "saving money on groceries",
    "a beginner's vegetable garden",
    "giving constructive feedback",
    "a long car journey with children",
    "learning to touch-type",
    "making a small flat feel bigger",
    "public speaking nerves",
    "running an efficient meeting",
    "staying hydrated at work",
    "choosing a first programming language",
    "reading more books in a year",
)
_FACTS = (
    "What is the boiling point of water at sea level in Celsius?",
    "How many continents are there, and what are they?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the chemical symbol for gold?",
    "How many bones are in the adult human body?",
    "What is the largest planet in the solar system?",
    "What language is mainly spoken in Brazil?",
    "What does DNA stand for?",
    "How many minutes are in a day?",
    "What is the square root of 144?",
    "Which ocean is the largest?",
    "What is 17 multiplied by 6?",
    "Who wrote 'Pride and Prejudice'?",
    "What gas do plants absorb from the air?",
    "What is the capital of Canada?",
)

_EXPLAIN_FORMS = (
    "Explain {0} in simple terms.",
    "Can you explain {0}?",
    "How would you describe {0} to a twelve-year-old?",
)
_HOWTO_FORMS = ("How do I {0}?", "What's the best way to {0}?", "Walk me through how to {0}.")
_COMPARE_FORMS = ("What is the difference between {0} and {1}?", "Compare {0} and {1} briefly.")
_GENERAL_TEMPLATES: tuple[tuple[str, tuple, tuple[str, ...]], ...] = (
    ("explain", _EXPLAIN, _EXPLAIN_FORMS),
    ("write", _WRITE, ("Write {0} about {1}.", "Could you draft {0} about {1}?")),
    ("howto", _HOWTO, _HOWTO_FORMS),
    ("compare", _COMPARE, _COMPARE_FORMS),
    ("tips", _TIPS, ("Give me three tips for {0}.", "Any advice for {0}?")),
    ("facts", tuple((q,) for q in _FACTS), ("{0}",)),
)


def general_requests() -> list[tuple[str, str]]:
    """Every (template name, request) the general parts compose, in a fixed order."""
    out = []
    for name, items, forms in _GENERAL_TEMPLATES:
        for i, item in enumerate(items):
            args = item if isinstance(item, tuple) else (item,)
            out.append((name, forms[i % len(forms)].format(*args)))
    return out


# --------------------------------------------------------------------------- building


def _pid(kind: str, text: str) -> str:
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def red_team_prompts(constitution: Constitution, augment_per_text: int, seed: int) -> list[Prompt]:
    out: list[Prompt] = []
    for p in constitution.harm_principles:
        for cover in p.covers:
            if text_kind(cover) != "request":
                continue
            out.append(Prompt(_pid("rt", cover), "red_team", cover, f"covers:{p.id}", p.id))
            for template, new in augment_one(cover, "request", seed, augment_per_text):
                out.append(
                    Prompt(_pid("rt", new), "red_team", new, f"covers:{p.id}+{template}", p.id)
                )
    return out


def helpful_prompts(constitution: Constitution) -> list[Prompt]:
    out: list[Prompt] = []
    for p in constitution.principles:
        for text in p.not_covers:
            if text_kind(text) == "request":
                out.append(Prompt(_pid("hp", text), "helpful", text, f"not_covers:{p.id}"))
    for h in constitution.harmless:
        for text in h.examples:
            out.append(Prompt(_pid("hp", text), "helpful", text, f"harmless:{h.id}"))
    for template, text in general_requests():
        out.append(Prompt(_pid("hp", text), "helpful", text, f"general:{template}"))
    return out


def build_prompts(
    constitution: Constitution,
    *,
    red_team: int,
    helpful: int,
    multi_turn: float,
    augment_per_text: int,
    seed: int,
) -> tuple[list[Prompt], dict[str, int]]:
    """The run's prompts (red-team first, then helpful), sampled without replacement when
    there are more than asked for, cycled (with a new earlier exchange) when fewer. Returns
    the prompts and counts for provenance (available, dropped for eval overlap, picked)."""
    rng = random.Random(seed)
    rt_all, rt_dropped = split_off_eval_overlap(
        _dedupe(red_team_prompts(constitution, augment_per_text, seed))
    )
    hp_all, hp_dropped = split_off_eval_overlap(_dedupe(helpful_prompts(constitution)))
    general = [p for p in hp_all if p.source.startswith("general:")]
    picked = _pick(rt_all, red_team, rng) + _pick(hp_all, helpful, rng)
    out = []
    seen: dict[str, int] = {}
    for p in picked:
        n = seen.get(p.id, 0)
        seen[p.id] = n + 1
        pid = p.id if n == 0 else f"{p.id}-{n}"
        history: tuple[str, ...] = ()
        if general and (rng.random() < multi_turn or n > 0):
            history = (rng.choice(general).text,)
        out.append(Prompt(pid, p.kind, p.text, p.source, p.principle, history))
    counts = {
        "red_team_available": len(rt_all),
        "helpful_available": len(hp_all),
        "dropped_eval_overlap": len(rt_dropped) + len(hp_dropped),
        "red_team": sum(p.kind == "red_team" for p in out),
        "helpful": sum(p.kind == "helpful" for p in out),
        "multi_turn": sum(bool(p.history) for p in out),
    }
    return out, counts


def _dedupe(prompts: list[Prompt]) -> list[Prompt]:
    seen: set[str] = set()
    out = []
    for p in prompts:
        key = _norm(p.text)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _pick(pool: list[Prompt], n: int, rng: random.Random) -> list[Prompt]:
    if n <= 0 or not pool:
        return []
    out: list[Prompt] = []
    while len(out) < n:
        batch = pool[:]
        rng.shuffle(batch)
        out.extend(batch[: n - len(out)])
    return out


# --------------------------------------------------------------------------- eval hygiene

_WORDS = re.compile(r"[a-z0-9]+")
SHINGLE = 5


def _norm(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def _shingles(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


@lru_cache(maxsize=1)
def _eval_index() -> tuple[frozenset[str], frozenset[tuple[str, ...]]]:
    """Normalised texts and word 5-grams of every user turn in every shipped eval suite."""
    from charter.eval.suites import list_suites, load_suite

    texts: set[str] = set()
    grams: set[tuple[str, ...]] = set()
    for info in list_suites():
        for case in load_suite(info.name).cases:
            for m in case.messages:
                if m["role"] == "user":
                    n = _norm(m["content"])
                    texts.add(n)
                    grams |= _shingles(n.split())
    return frozenset(texts), frozenset(grams)


def overlaps_eval(text: str) -> bool:
    """Whether `text` equals an evaluation case or shares half its word 5-grams with them."""
    texts, grams = _eval_index()
    n = _norm(text)
    if n in texts:
        return True
    mine = _shingles(n.split())
    return bool(mine) and len(mine & grams) * 2 >= len(mine)


def split_off_eval_overlap(prompts: list[Prompt]) -> tuple[list[Prompt], list[Prompt]]:
    keep, dropped = [], []
    for p in prompts:
        (dropped if overlaps_eval(p.text) else keep).append(p)
    return keep, dropped
