"""Human feedback on answers: summaries of the labels, and preference pairs for training.

Reviewers label answers up or down and may write a better answer. Each reviewer keeps one
label per answer, so when reviewers disagree both labels stay; the export decides what a
disagreement means for training, and says how many pairs it held back because of one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from charter.store.db import Store

#: The longest better answer accepted, in characters (longer ones are refused, never cut).
MAX_BETTER_CHARS = 20_000
#: The longest note accepted, in characters.
MAX_NOTE_CHARS = 2_000
#: The longest reviewer name accepted, in characters.
MAX_REVIEWER_CHARS = 100
#: The reviewer of a label sent without a name to a server that does not use API keys.
ANONYMOUS = "anonymous"


def summarize(labels: Iterable[dict[str, Any]], reviewer: str | None = None) -> dict[str, Any]:
    """What the labels on one answer add up to.

    Returns `{"up", "down", "better", "reviewers", "disagreement", "mine"}`: counts of each
    rating and of better answers, the reviewers (sorted), whether some said up and others
    down, and `reviewer`'s own label (`{"rating", "better", "note"}`, or None).
    """
    labels = list(labels)
    up = sum(1 for lb in labels if lb["rating"] == "up")
    down = len(labels) - up
    mine = next((lb for lb in labels if reviewer is not None and lb["reviewer"] == reviewer), None)
    return {
        "up": up,
        "down": down,
        "better": sum(1 for lb in labels if lb["better"]),
        "reviewers": sorted(lb["reviewer"] for lb in labels),
        "disagreement": bool(up and down),
        "mine": None
        if mine is None
        else {"rating": mine["rating"], "better": mine["better"], "note": mine["note"]},
    }


@dataclass
class ExportSummary:
    """What an export found; complete once its iterator is exhausted."""

    messages: int = 0
    labels: int = 0
    better_pairs: int = 0
    ranked_pairs: int = 0
    #: Pairs whose agreement was under the threshold: not exported.
    held_back: int = 0
    #: Answers rated mostly down with no better answer and no up-rated alternative.
    unpaired_downs: int = 0
    #: Candidate pairs dropped because one side was empty or both sides were the same text.
    skipped: int = 0
    #: Answers some reviewers rated up and others down (kept in the store either way).
    disagreements: list[str] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return self.better_pairs + self.ranked_pairs

    def lines(self) -> list[str]:
        """The summary in words, one fact a line."""
        out = [
            f"{self.messages} labelled answer(s), {self.labels} label(s)",
            f"{self.pairs} pair(s) written: {self.better_pairs} from better answers, "
            f"{self.ranked_pairs} from up- and down-rated answers to the same prompt",
        ]
        if self.disagreements:
            out.append(
                f"{len(self.disagreements)} answer(s) where reviewers disagree: "
                + ", ".join(self.disagreements)
            )
        if self.held_back:
            out.append(
                f"{self.held_back} pair(s) held back for disagreement "
                "(see --min-agreement and --include-disagreements)"
            )
        if self.unpaired_downs:
            out.append(
                f"{self.unpaired_downs} down-rated answer(s) gave no pair: no better answer "
                "and no up-rated answer to the same prompt"
            )
        if self.skipped:
            out.append(f"{self.skipped} pair(s) skipped: a side was empty or both were the same")
        return out


def export_pairs(
    store: Store, *, min_agreement: float = 1.0, summary: ExportSummary | None = None
) -> Iterator[dict[str, Any]]:
    """Preference pairs from the stored labels, in TRL's conversational DPO format.

    Each pair is `{"prompt": [messages before the answer], "chosen": [{"role": "assistant",
    "content"}], "rejected": [...], "source": "human", "kind", "pair_id", "message_id",
    "chosen_message_id", "reviewers", "agreement"}`. `message_id` is the rejected answer;
    one answer can be rejected in several pairs (two reviewers' better answers), so
    `pair_id` (the message id and a digest of the chosen text) is what tells pairs apart,
    the same in every export. Pairs come from two places:

    - *better answers*: a reviewer's better answer is chosen over the stored answer
      (`kind` "better_answer"). Its agreement is the share of the answer's reviewers who
      rated it down or wrote a better answer; one who rated it up without one disagrees.
    - *ranked answers*: an answer most reviewers rated up is chosen over one most rated
      down, when both answer exactly the same prompt (the same question asked again, in
      this or another conversation; `kind` "ranked", `chosen_message_id` names the up-rated
      one). Its agreement is the lesser of the two answers' majorities.

    An answer rated down with no better answer gives no pair on its own: a rejected answer
    needs a chosen one. It is counted in `summary.unpaired_downs`.

    Only pairs with `agreement >= min_agreement` are yielded (1.0: every reviewer of the
    answers agrees); the others are counted in `summary.held_back`. Pass `summary` to learn
    what was found; it is complete once the iterator is exhausted.
    """
    s = summary if summary is not None else ExportSummary()
    by_prompt: dict[str, list[dict[str, Any]]] = {}
    rejected_somewhere: set[str] = set()
    seen: set[str] = set()

    def keep(pair: dict[str, Any]) -> bool:
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        if not chosen.strip() or not rejected.strip() or chosen.strip() == rejected.strip():
            s.skipped += 1
            return False
        rejected_somewhere.add(pair["message_id"])
        if pair["pair_id"] in seen:  # a better answer that is also an up-rated answer
            return False
        seen.add(pair["pair_id"])
        if pair["agreement"] + 1e-9 < min_agreement:
            s.held_back += 1
            return False
        return True

    for item in store.iter_feedback():
        message, labels = item["message"], item["labels"]
        if message["status"] == "generating":
            continue
        s.messages += 1
        s.labels += len(labels)
        summary_ = summarize(labels)
        if summary_["disagreement"]:
            s.disagreements.append(message["id"])
        by_prompt.setdefault(json.dumps(item["prompt"], sort_keys=True), []).append(item)

        against = sum(1 for lb in labels if lb["rating"] == "down" or lb["better"])
        betters: dict[str, None] = {}
        for lb in labels:
            if lb["better"]:
                betters.setdefault(lb["better"])
        for better in betters:
            pair = _pair(
                item["prompt"],
                better,
                message,
                kind="better_answer",
                reviewers=summary_["reviewers"],
                agreement=against / len(labels),
            )
            if keep(pair):
                s.better_pairs += 1
                yield pair

    for group in by_prompt.values():
        shares = [(it, _up_share(it["labels"])) for it in group]
        ups = [(it, share) for it, share in shares if share > 0.5]
        for low, low_share in shares:
            if low_share >= 0.5:
                continue
            for high, high_share in ups:
                pair = _pair(
                    low["prompt"],
                    high["message"]["content"],
                    low["message"],
                    kind="ranked",
                    reviewers=sorted({lb["reviewer"] for lb in low["labels"] + high["labels"]}),
                    agreement=min(high_share, 1.0 - low_share),
                    chosen_message_id=high["message"]["id"],
                )
                if keep(pair):
                    s.ranked_pairs += 1
                    yield pair

    for group in by_prompt.values():
        for it in group:
            if _up_share(it["labels"]) < 0.5 and it["message"]["id"] not in rejected_somewhere:
                s.unpaired_downs += 1


def _up_share(labels: list[dict[str, Any]]) -> float:
    return sum(1 for lb in labels if lb["rating"] == "up") / len(labels)


def _pair(
    prompt: list[dict[str, str]],
    chosen: str,
    rejected: dict[str, Any],
    *,
    kind: str,
    reviewers: list[str],
    agreement: float,
    chosen_message_id: str | None = None,
) -> dict[str, Any]:
    digest = hashlib.sha256(chosen.encode("utf-8")).hexdigest()[:12]
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected["content"]}],
        "source": "human",
        "kind": kind,
        "pair_id": f"{rejected['id']}:{digest}",
        "message_id": rejected["id"],
        "chosen_message_id": chosen_message_id,
        "reviewers": reviewers,
        "agreement": round(agreement, 4),
    }
