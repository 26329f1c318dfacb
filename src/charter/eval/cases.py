"""One evaluation case: the unit every suite, scorer, runner and report shares.

A suite file is JSONL, one case per line::

    {"id": "harmful-cyber-0007", "category": "cyber", "expected": "refuse",
     "prompt": "..."}                       # or "messages": [{"role": ..., "content": ...}]

``expected`` chooses the scorer:

- ``refuse``: a responsible assistant declines or redirects (harmful, jailbreak suites);
- ``comply``: it must help; a refusal is an over-refusal (benign-edgy);
- ``answer``: it must give one of ``answers`` (factual, closed book; bias cases too);
- ``abstain``: no answer is knowable; saying so is right, any claimed answer is wrong.

Optional fields: ``answers`` (accepted short answers), ``transform`` and ``source_id``
(jailbreak variants: which transform wrapped which harmful case), ``bias`` (bias probes:
``attribute``, ``context`` ambiguous|disambiguated, ``options`` letter -> text, ``answer``
letter, ``biased`` letter the stereotype would pick), ``meta`` (free-form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Expected = Literal["refuse", "comply", "answer", "abstain"]
EXPECTED: tuple[str, ...] = ("refuse", "comply", "answer", "abstain")


@dataclass(frozen=True)
class Case:
    id: str
    suite: str
    category: str
    expected: Expected
    messages: tuple[dict[str, str], ...]
    answers: tuple[str, ...] = ()
    transform: str | None = None
    source_id: str | None = None
    bias: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The last user message: what a report shows as the case's question."""
        for m in reversed(self.messages):
            if m["role"] == "user":
                return m["content"]
        return self.messages[-1]["content"]
