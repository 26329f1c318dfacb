"""Answer normalisation, answer matching and abstention detection for closed-book scoring.

``normalize`` folds a text to comparable tokens: accents folded, lowercase, punctuation
dropped, the articles *a/an/the* dropped, number words turned into digits ("twenty-one" ->
"21", "two thousand five hundred" -> "2500") and thousands separators removed ("1,000" ->
"1000"). ``matches`` then looks for an accepted answer as a whole run of tokens inside the
response, so "The capital of France is Paris." matches "Paris" while "19690" never matches
"1969" and "17" never matches "7". ``abstains`` finds the phrase by which a response says
that it does not (or cannot) know.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000}
_ARTICLES = frozenset({"a", "an", "the"})

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_DECIMAL = re.compile(r"(?<=\d)\.(?=\d)")
_TOKEN = re.compile(r"[a-z0-9]+(?:\uE000[0-9]+)?")


def fold(text: str) -> str:
    """Accents folded ("Café Zürich" -> "Cafe Zurich"), curly apostrophes made straight."""
    text = text.translate(_APOSTROPHES)
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens(text: str) -> list[str]:
    """The normalised tokens of ``text`` (see the module docstring)."""
    t = fold(text).lower()
    t = t.replace("'", "")  # "don't" -> "dont", "o'neill" -> "oneill"
    t = _THOUSANDS.sub("", t)
    t = _DECIMAL.sub("\ue000", t)  # keep "3.14" whole through the punctuation strip
    raw = [tok.replace("\ue000", ".") for tok in _TOKEN.findall(t)]
    return [tok for tok in _numbers_to_digits(raw) if tok not in _ARTICLES]


def normalize(text: str) -> str:
    """``tokens`` joined by single spaces: the comparable form of an answer."""
    return " ".join(tokens(text))


def _numbers_to_digits(toks: list[str]) -> list[str]:
    """Runs of number words become one digit token; everything else passes through."""
    out: list[str] = []
    i = 0
    while i < len(toks):
        j, value = _parse_number(toks, i)
        if j > i:
            out.append(str(value))
            i = j
        else:
            out.append(toks[i])
            i += 1
    return out


def _parse_number(toks: list[str], i: int) -> tuple[int, int]:
    """Parse a spelled-out number starting at ``toks[i]``: (end index, value); end == i if none.

    Handles "seven", "twenty one", "one hundred and five", "a hundred", "three thousand two
    hundred", "nineteen hundred". A lone "and" or "a" is never a number.
    """
    start = i
    total = 0
    current = 0
    seen = False
    if toks[i] == "a" and i + 1 < len(toks) and toks[i + 1] in _SCALES:
        current, seen, i = 1, True, i + 1
    end = start
    last_unit: int | None = None  # value of the previous unit word, to stop at "five six"
    while i < len(toks):
        tok = toks[i]
        if tok in _UNITS:
            value = _UNITS[tok]
            if last_unit is not None and not (
                last_unit >= 20 and last_unit % 10 == 0 and value < 10
            ):
                break  # "five six" is two numbers; "twenty one" is one
            current += value
            last_unit = value
            seen = True
        elif tok in _SCALES and seen:
            scale = _SCALES[tok]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
            last_unit = None
        elif tok == "and" and seen and i + 1 < len(toks) and toks[i + 1] in _UNITS and end == i:
            i += 1
            continue
        else:
            break
        i += 1
        end = i
    if not seen:
        return start, 0
    return end, total + current


def _find(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    if n == 0 or n > len(haystack):
        return False
    first = needle[0]
    for k in range(len(haystack) - n + 1):
        if haystack[k] == first and haystack[k : k + n] == needle:
            return True
    return False


def matches(response: str, answers: Iterable[str]) -> tuple[bool, str | None]:
    """Whether an accepted answer occurs in ``response`` as whole normalised tokens.

    Returns ``(True, alias)`` for the first alias (in the given order) found, else
    ``(False, None)``. Aliases that normalise to nothing (e.g. "the") are skipped.
    """
    hay = tokens(response)
    for alias in answers:
        if _find(hay, tokens(alias)):
            return True, alias
    return False, None


# Abstention: the response says it does not, or cannot, know. Matched on folded lowercase
# text with straight apostrophes; the first hit (by position) is reported.
_ABSTAIN_PATTERNS: tuple[str, ...] = (
    r"\bi (?:really |honestly |simply )?(?:do not|don't|dont) know\b",
    r"\bi'?m (?:not (?:entirely |completely |totally |really )?sure|unsure|uncertain)\b",
    r"\bi am (?:not (?:entirely |completely |totally |really )?sure|unsure|uncertain)\b",
    r"\bnot (?:entirely |completely |totally )?(?:sure|certain)\b",
    r"\bno one (?:really |actually )?knows\b",
    r"\bnobody (?:really |actually )?knows\b",
    r"\b(?:cannot|can't|can not|could not|couldn't) (?:be )?"
    r"(?:determined|known|answered|verified)\b",
    r"\b(?:cannot|can't|can not) (?:be )?(?:say|tell|determine|know|predict)"
    r"(?: (?:for sure|for certain|with (?:any )?certainty|reliably))?\b",
    r"\bno (?:way|means) (?:to|of) (?:know|knowing|tell|telling|determin\w+|predict\w*)\b",
    r"\bthere (?:is|are|'s) no (?:(?:reliable|credible|verified|known|public|publicly available"
    r"|recorded|historical|definitive|accurate|available) )*"
    r"(?:information|record|records|data|evidence|answer|documentation|account)\b",
    r"\bno (?:reliable |known |public |historical |official )*records? (?:exist|of)\b",
    r"\bi (?:do not|don't|dont) have (?:any |enough |reliable |access to |specific )*"
    r"(?:information|data|details|records|knowledge)\b",
    r"\bi have no (?:reliable |specific )?(?:information|data|record|knowledge|way of knowing)\b",
    r"\bunknowable\b",
    r"\b(?:impossible|not possible) to (?:know|say|tell|determine|predict|verify)\b",
    r"\b(?:has not|hasn't|have not|haven't|had not|hadn't) (?:yet )?"
    r"(?:happened|occurred|taken place"
    r"|been (?:decided|announced|determined|recorded|released|held|played))\b",
    r"\b(?:is|are) (?:yet )?to (?:happen|occur|take place|be (?:decided|announced|determined))\b",
    r"\b(?:does not|doesn't|do not|don't|did not|didn't) (?:actually )?exist\b",
    r"\b(?:there (?:is|was) no such|no such \w+ (?:exists|existed))\b",
    r"\bi (?:could not|couldn't|cannot|can't|was unable to|am unable to) find\b",
    r"\b(?:is|are|remains|remain|was|were) (?:still )?(?:unknown|not known|undocumented"
    r"|unrecorded|a mystery|unclear)\b",
    r"\bnot (?:publicly )?(?:known|documented|recorded|disclosed)\b",
    r"\bi'?m not aware of (?:any|such)\b",
    r"\bi am not aware of (?:any|such)\b",
    r"\bno (?:definitive|definite|certain|known|clear) answer\b",
    r"\btoo early to (?:tell|say|know)\b",
    r"\bi (?:would|'d) (?:only )?be guessing\b",
    r"(?:\bnot enough|n't enough|\binsufficient|\btoo little)"
    r" (?:information|info|context|detail|details|evidence|data)\b",
    r"\b(?:it's|it is|that's|that is|this is) (?:not clear|unclear|ambiguous)\b",
    r"\b(?:does not|doesn't|did not|didn't) (?:say|specify|mention|indicate|tell us)\b",
    r"\b(?:isn't|is not|wasn't|was not) (?:stated|specified|mentioned|given)\b",
)
_ABSTAIN = re.compile("|".join(f"(?:{p})" for p in _ABSTAIN_PATTERNS), re.DOTALL)


def abstains(text: str) -> tuple[bool, str | None]:
    """Whether ``text`` abstains ("I don't know", "cannot be determined", ...): (bool, phrase).

    The phrase is the matched span, lowercased and accent-folded. Hedging is detected
    wherever it occurs; the scorer decides whether a matched answer outweighs it.
    """
    t = re.sub(r"\s+", " ", fold(text).lower())
    m = _ABSTAIN.search(t)
    return (True, m.group(0)) if m else (False, None)
