"""Seeing through jailbreaks: the views of a text that a screen scores.

A classifier trained on plain requests misses the same request hidden behind look-alike
letters, zero-width characters, base64, rot13, leetspeak, a role-play frame or a long story
that ends in the real question. Rather than teach every screen every disguise, the screen
scores each *view* of the text that `views` returns and takes the maximum: the original
first, then each distinct decoding. A view is only produced when its transformation finds
something to undo, so ordinary text costs one or two views.

Safety of the decoders themselves: everything past the original view works on the first
`MAX_CHARS` characters only; no regex here can backtrack catastrophically (every repetition
is over disjoint alternatives or bounded); and no input string raises (the public functions
raise only for a wrong argument type or range, as a `CharterError`).

The transformations are heuristics, not a parser: see docs/constitution.md, "Seeing
through jailbreaks", for what each one catches and misses.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from charter.errors import ConfigError, RequestError

#: Transformations see at most this many characters (the original view is never cut). The
#: screen reads a bounded window anyway, and it bounds the work an attacker can cause.
MAX_CHARS = 20_000

#: The view names, in the order `views` emits them (each only when it applies).
VIEW_NAMES = (
    "original",
    "folded",
    "unframed",
    "base64",
    "hex",
    "rot13",
    "leetspeak",
    "reversed",
    "last_request",
)


@dataclass(frozen=True)
class View:
    """One reading of a text: `name` says which transformation produced it."""

    name: str
    text: str


# --------------------------------------------------------------------------- common words

# About 300 frequent English words: enough to tell English from rot13 or reversed text (a
# fraction of tokens found here), small enough to embed. Function words dominate, so the
# score does not depend on the topic of the request.
_COMMON_WORDS_TEXT = """
    a about above after again against all also always am an and any are as ask at away
    back be because been before being below best better between big both bring build
    but buy by call came can cannot car care carry change child children city close
    come could country cut day days did different do does doing done down during each
    early easy eat either else end enough even ever every example explain eye face fact
    family far fast father feel few find first five follow food for form found four free
    friend from full game gave get give go going good got great group grow had half hand
    happen hard has have having he head hear help her here high him his hold home house
    how however i idea if important in into is it its just keep kind know large last
    later learn least leave left less let life light like line list little live long look
    lot made make man many may me mean men might mind money more most mother move much
    must my name near need never new next night no not nothing now number of off often
    old on once one only open or order other our out over own part people person place
    plan play please point possible put question quick quite rather read ready real
    really right room run said same saw say school see seem seen set several she should
    show side since small so some something sometimes soon start state step steps still
    stop story such sure take talk teach tell than thank thanks that the their them then
    there these they thing things think this those though three through time to today
    together told too took top toward try turn two under understand until up upon us use
    used using very want was water way we week well went were what when where whether
    which while who whole why will with without word words work world would write year
    years yes yet you young your yours
"""
COMMON_WORDS = frozenset(_COMMON_WORDS_TEXT.split())

_ASCII_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")


def _hits(tokens: Iterable[str]) -> tuple[int, int]:
    """(common-word hits, tokens) of lowercase tokens."""
    n = h = 0
    for t in tokens:
        n += 1
        h += t in COMMON_WORDS
    return h, n


def _words(text: str) -> frozenset[str]:
    """The lowercase words of `text` (punctuation and digits split words)."""
    return frozenset(text.lower().translate(_WORD_BREAKS).split())


_WORD_BREAKS = str.maketrans({c: " " for c in '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~0123456789'})


def english_score(text: str) -> float:
    """Fraction of the ASCII words of `text` that are common English words (0 when none)."""
    h, n = _hits(t.lower() for t in _ASCII_WORD.findall(text))
    return h / n if n else 0.0


# --------------------------------------------------------------------------- fold

# Invisible characters: zero-width space/joiners and direction marks (U+200B..U+200F),
# bidi embeddings and isolates, word joiner and invisible operators (U+2060..U+206F), the
# BOM (U+FEFF), soft hyphen, combining grapheme joiner, Hangul fillers, Mongolian and
# Unicode variation selectors, the tag characters (U+E0000 block), and ASCII control
# characters other than tab and newlines. They change nothing a reader sees, only the
# tokens a classifier sees.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5"
    "\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff"
    "\uffa0\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Typographic punctuation NFKC leaves alone, made ASCII so the other rules (and the
# quote-delimited frame patterns) see one form.
_PUNCT = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u02bc": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
    }
)

# Letters from other scripts that look like ASCII letters (Cyrillic, Greek, Armenian, a few
# Latin extensions). NFKC maps fullwidth and mathematical letters itself; these it does not.
_CONFUSABLES = {
    # Cyrillic lowercase
    "а": "a",
    "в": "b",
    "е": "e",
    "о": "o",
    "р": "p",
    "с": "c",
    "у": "y",
    "х": "x",
    "і": "i",
    "ј": "j",
    "ѕ": "s",
    "к": "k",
    "м": "m",
    "н": "h",
    "т": "t",
    "ԁ": "d",
    "һ": "h",
    "ӏ": "l",
    "ԛ": "q",
    "ԝ": "w",
    "ү": "y",
    "ɡ": "g",
    # Cyrillic uppercase
    "А": "A",
    "В": "B",
    "Е": "E",
    "К": "K",
    "М": "M",
    "Н": "H",
    "О": "O",
    "Р": "P",
    "С": "C",
    "Т": "T",
    "У": "Y",
    "Х": "X",
    "І": "I",
    "Ј": "J",
    "Ѕ": "S",
    "Ү": "Y",
    "Ӏ": "I",
    "Ԛ": "Q",
    "Ԝ": "W",
    # Greek
    "α": "a",
    "β": "b",
    "γ": "y",
    "ε": "e",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
    "ω": "w",
    "Α": "A",
    "Β": "B",
    "Ε": "E",
    "Ζ": "Z",
    "Η": "H",
    "Ι": "I",
    "Κ": "K",
    "Μ": "M",
    "Ν": "N",
    "Ο": "O",
    "Ρ": "P",
    "Τ": "T",
    "Υ": "Y",
    "Χ": "X",
    # Armenian and Latin extensions
    "օ": "o",
    "ս": "u",
    "հ": "h",
    "ո": "n",
    "ı": "i",
    "ɑ": "a",
}
_CONFUSABLE_TABLE = str.maketrans(_CONFUSABLES)
# Greek and Cyrillic letters that are *not* look-alikes: their presence means the text is
# really written in that script, so whole words of look-alikes are left alone.
_FOREIGN_SCRIPT = re.compile("[\u0370-\u058f]")
_DROP_CONFUSABLES = {ord(k): None for k in _CONFUSABLES}
_NON_SPACE = re.compile(r"\S+")

# Letter-spacing: 4+ single letters, each separated by one separator (1-3 blanks, or one
# of - . _ * · • | / + ~ optionally followed by a blank). Every repetition starts with a
# separator and ends with one letter, so matching is linear.
_SPACED = re.compile(
    r"(?<![^\W_])[^\W\d_](?![^\W_])(?:(?:[ \t]{1,3}|[-._*\u00b7\u2022|/+~][ \t]?)"
    r"[^\W\d_](?![^\W_])){3,}"
)
# Cheap test for a letter-spaced run: three single letters, each after a separator. It
# starts with a character class, which the regex engine scans for quickly.
_SEP = r"[ \t.\-_*\u00b7\u2022|/+~]"
_SPACED_HINT = re.compile(_SEP + r"[^\W\d_]" + (_SEP + r"[ \t]{0,2}[^\W\d_]") * 2 + r"(?![^\W_])")
_LETTER = re.compile(r"[^\W\d_]")


def _strip_marks(word: str) -> str:
    """`word` decomposed (NFKD) with its combining marks dropped."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def _fold_words(text: str) -> str:
    """The per-word rules of `fold` for non-ASCII text (see `fold`)."""
    allow_whole = _FOREIGN_SCRIPT.search(text.translate(_DROP_CONFUSABLES)) is None

    def one(m: re.Match[str]) -> str:
        w = m.group()
        if w.isascii():
            return w
        letters = [c for c in w if c.isalpha()]
        has_ascii = any(c.isascii() for c in letters)
        all_lookalike = bool(letters) and all(c.isascii() or c in _CONFUSABLES for c in letters)
        mapped = w
        if has_ascii or (allow_whole and all_lookalike):
            mapped = w.translate(_CONFUSABLE_TABLE)
        stripped = _strip_marks(mapped)
        if mapped is not w and not stripped.isascii():
            stripped = stripped.translate(_CONFUSABLE_TABLE)  # a look-alike under a mark
        return stripped if stripped.isascii() else mapped

    return _NON_SPACE.sub(one, text)


def _unspace(m: re.Match[str]) -> str:
    """A letter-spaced run joined: one separator joins, a gap of 2+ blanks is a word break."""
    s = m.group()
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if _LETTER.match(c):
            out.append(c)
            i += 1
            continue
        j = i
        while j < len(s) and not _LETTER.match(s[j]):
            j += 1
        gap = s[i:j]
        if len(gap) >= 2 and not gap.strip():
            out.append(" ")
        i = j
    return "".join(out)


def fold(text: str) -> str:
    """The text as a reader sees it, in plain ASCII where it only looks non-ASCII.

    Rules, in order (each deterministic; ASCII text skips 1-4):

    1. Unicode NFKC: fullwidth forms, mathematical alphanumerics, ligatures, superscripts
       and compatibility spaces become their plain forms.
    2. Invisible characters are removed (before and after NFKC, so a mark split from its
       letter by one recomposes): zero-width space/joiners and direction marks
       (U+200B..U+200F), bidi controls, U+2060..U+206F, BOM, soft hyphen, variation
       selectors, Hangul fillers, tag characters (U+E0000 block), ASCII controls (tab
       and newlines are kept). ASCII text only gets its controls removed.
    3. Typographic quotes and dashes become ASCII ' " -.
    4. Per whitespace-separated word: Cyrillic/Greek/Armenian look-alike letters are mapped
       to ASCII when the word also has an ASCII letter ("bоmb" with a Cyrillic o), or when
       the word is made only of look-alikes and the text has no other Greek or Cyrillic
       letter (so real Russian or Greek text is not garbled). Then diacritics are stripped
       (NFKD, combining marks dropped) when that leaves the word ASCII ("bómb", zalgo text);
       a word that stays non-ASCII keeps its marks ("café" folds, "йод" does not).
    5. Letter-spacing is collapsed: a run of 4+ single letters separated by one separator
       ("b o m b", "b-o-m-b", "b.o.m.b", "b*o*m*b") becomes a word; inside the run a gap of
       two or more blanks is a word break, so "h o w  t o" gives "how to". A run spaced
       with single blanks throughout becomes one word ("howto"): word boundaries are lost.
    6. Whitespace is collapsed: runs of blanks become one space, runs containing a newline
       one newline; leading and trailing whitespace goes.

    `fold` is linear in the length of `text` and does not cut it (`views` does).
    """
    if not isinstance(text, str):
        raise RequestError(f"text must be a string, got {type(text).__name__}", param="text")
    if text.isascii():
        text = _ASCII_CONTROL.sub("", text)
    else:
        # Invisibles go before NFKC too, so a mark split from its letter by one recomposes.
        text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
        text = _INVISIBLE.sub("", text).translate(_PUNCT)
        if not text.isascii():
            text = _fold_words(text)
    if _SPACED_HINT.search(text):
        text = _SPACED.sub(_unspace, text)
    return _collapse(text)


def _collapse(text: str) -> str:
    """Blanks collapsed to one space, blank runs with a newline to one newline, stripped."""
    if "\n" not in text:
        return " ".join(text.split())
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _key(text: str) -> str:
    """What two views must differ in to both be kept: case and whitespace do not count."""
    return " ".join(text.split()).casefold()


# --------------------------------------------------------------------------- base64 / hex

_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{12,8192}={0,2}")
_HEX_ONLY = re.compile(r"[0-9A-Fa-f]+")
_HEX = re.compile(
    r"(?P<esc>(?:\\x[0-9A-Fa-f]{2}){3,4096})"
    r"|(?P<ox>(?:0x[0-9A-Fa-f]{2}[ ,]{0,2}){3,4096})"
    r"|(?<![0-9A-Za-z])(?P<spaced>[0-9A-Fa-f]{2}(?:[ :,-][0-9A-Fa-f]{2}){3,4096})(?![0-9A-Za-z])"
    r"|(?<![0-9A-Za-z])(?P<run>(?:[0-9A-Fa-f]{2}){6,8192})(?![0-9A-Za-z])"
)
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]{2}")
# Hex of text: every byte of printable ASCII starts with a digit (0x20..0x7e), so three
# digit-led pairs in a row, found by a fast class scan, gate the full pattern.
_HEX_HINT = re.compile(r"[2-7][0-9A-Fa-f][ :,-]?[2-7][0-9A-Fa-f][ :,-]?[2-7][0-9A-Fa-f]")


def _plausible(raw: bytes) -> str | None:
    """`raw` as text when it is UTF-8 that reads as text (printable, mostly letters)."""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(s) < 3:
        return None
    printable = sum(c.isprintable() or c in "\n\t\r" for c in s)
    letters = sum(c.isalpha() for c in s)
    visible = sum(not c.isspace() for c in s)
    if printable < 0.95 * len(s) or letters < 3 or letters < 0.6 * max(visible, 1):
        return None
    return s


def _b64_decode(m: re.Match[str]) -> str | None:
    """A base64 run (standard or urlsafe, padded or not) decoded, when it is text."""
    body = m.group().rstrip("=")
    if _HEX_ONLY.fullmatch(body):
        return None  # hex digits only: the hex view's job
    has_upper = any(c.isupper() for c in body)
    has_lower = any(c.islower() for c in body)
    if not (has_upper and has_lower) and not any(c.isdigit() for c in body):
        return None  # an ordinary lowercase word or hyphenated phrase
    if len(body) % 4 == 1:
        body = body[:-1]
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        if urlsafe:
            raw = base64.b64decode(padded, altchars=b"-_", validate=True)
        else:
            raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _plausible(raw)


def _hex_decode(m: re.Match[str]) -> str | None:
    """A hex run (plain, spaced, \\x.. or 0x.. escaped) decoded, when it is text."""
    s = m.group()
    if m.group("esc"):
        digits = s.replace("\\x", "")
    elif m.group("ox"):
        digits = "".join(_HEX_DIGITS.findall(s.replace("0x", " ")))
    else:
        digits = "".join(c for c in s if c not in " :,-")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return None
    return _plausible(raw)


def _replace(
    pattern: re.Pattern[str], text: str, decode: Callable[[re.Match[str]], str | None]
) -> tuple[str, int]:
    """`text` with each `pattern` match that `decode` turns into text replaced by it."""
    found = 0

    def one(m: re.Match[str]) -> str:
        nonlocal found
        d = decode(m)
        if d is None:
            return m.group()
        found += 1
        return d

    return pattern.sub(one, text), found


def decode_base64(text: str) -> str | None:
    """`text` with its base64 runs decoded (once more inside decoded text), or None."""
    if max(map(len, text.split()), default=0) < 12:
        return None  # no run long enough: skip the regex scan
    out, n = _replace(_B64_RUN, text, _b64_decode)
    if not n:
        return None
    again, _ = _replace(_B64_RUN, out, _b64_decode)
    return again


def decode_hex(text: str) -> str | None:
    """`text` with its hex runs decoded, or None when none decodes to text."""
    if "\\x" not in text and "0x" not in text and not _HEX_HINT.search(text):
        return None
    out, n = _replace(_HEX, text, _hex_decode)
    return out if n else None


# --------------------------------------------------------------------------- rot13 / reversed

_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)
_SEGMENT_SPLIT = re.compile(r"([.!?:;\n]+)")
_SENTENCE_BREAK = re.compile(r"[.!?:;\n]")


def _rot13_hint(words: frozenset[str]) -> bool:
    """At least two distinct uncommon words whose rot13 is a common word."""
    odd = " ".join(words - COMMON_WORDS).translate(_ROT13).split()
    return len(COMMON_WORDS.intersection(odd)) >= 2


def _reversed_hint(words: frozenset[str]) -> bool:
    """At least two distinct uncommon words that are common words backwards."""
    return len(COMMON_WORDS.intersection(w[::-1] for w in words - COMMON_WORDS)) >= 2


def rot13(text: str) -> str:
    """ROT13 of the ASCII letters of `text`."""
    return text.translate(_ROT13)


def decode_rot13(text: str, *, words: frozenset[str] | None = None) -> str | None:
    """`text` with its rot13 stretches decoded, or None when there are none.

    Each ASCII word is tagged English (a common word), rot13 (its rot13 is a common word)
    or unknown. A stretch of words between English words and sentence breaks is decoded
    when it holds at least two rot13 words and they are at least 40% of it, so "Tell me
    ubj gb cvpx n ybpx" gives "Tell me how to pick a lock" while English text with a
    stray "na" stays put.
    """
    if not _rot13_hint(_words(text) if words is None else words):
        return None
    found = list(_ASCII_WORD.finditer(text))
    spans: list[tuple[int, int]] = []
    run: list[tuple[re.Match[str], bool]] = []

    def close() -> None:
        r = sum(1 for _, is_r in run if is_r)
        if r >= 2 and r >= 0.4 * len(run):
            spans.append((run[0][0].start(), run[-1][0].end()))
        run.clear()

    prev_end = 0
    for m in found:
        w = m.group().lower()
        gap = text[prev_end : m.start()]
        prev_end = m.end()
        if gap and not gap.isspace() and _SENTENCE_BREAK.search(gap):
            close()
        if w in COMMON_WORDS:
            close()
        else:
            run.append((m, w.translate(_ROT13) in COMMON_WORDS))
    close()
    if not spans:
        return None
    out, last = [], 0
    for a, b in spans:
        out.append(text[last:a])
        out.append(text[a:b].translate(_ROT13))
        last = b
    out.append(text[last:])
    return "".join(out)


def decode_reversed(text: str, *, words: frozenset[str] | None = None) -> str | None:
    """`text` with each sentence written backwards turned round, or None when none is.

    A sentence (split at . ! ? : ; and newlines) is reversed when its reversal has at least
    two common words and a common-word fraction at least 0.25 above the original's.
    """
    if not _reversed_hint(_words(text) if words is None else words):
        return None
    parts = _SEGMENT_SPLIT.split(text)
    changed = False
    for i in range(0, len(parts), 2):
        seg = parts[i]
        seg_words = [w.lower() for w in _ASCII_WORD.findall(seg)]
        if len(seg_words) < 2:
            continue
        fwd_h, n = _hits(seg_words)
        rev_h, _ = _hits(w[::-1] for w in seg_words)
        if rev_h >= 2 and rev_h / n >= fwd_h / n + 0.25:
            lead = len(seg) - len(seg.lstrip())
            trail = len(seg) - len(seg.rstrip())
            core = seg.strip()[::-1]
            parts[i] = seg[:lead] + core + (seg[len(seg) - trail :] if trail else "")
            changed = True
    return "".join(parts) if changed else None


# --------------------------------------------------------------------------- leetspeak

_LEET = {"4": "a", "@": "a", "3": "e", "0": "o", "5": "s", "$": "s", "7": "t", "!": "i"}
_LEET_CHARS = "".join(_LEET) + "1"
# A token: letters, leet characters, and the two-character "|<" (k). The alternatives are
# disjoint, so the repetition is linear.
_LEET_TOKEN = re.compile(r"(?:[A-Za-z0-9@$!]|\|<)+")
# Runs of leet characters; one between letters is the sign that digits stand in for letters
# rather than count something ("b0mb", "h4ck", "k1ll", "l33t"). The run is found by a
# character-class scan (fast) and its neighbours checked in Python.
_LEET_RUN = re.compile(r"[013457@$!]+")
_LONE_LEET = {"4": "a", "1": "i"}
# Marks of an e-mail address or URL; the whitespace-delimited word around one is skipped.
# (Found by a literal scan and widened in Python: a pattern like \S+@\S+ is quadratic on a
# long word without "@".)
_URL_MARK = re.compile(r"@[A-Za-z0-9-]+\.|://|www\.", re.I)


def _url_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) of each whitespace-delimited word holding an address mark."""
    spans: list[tuple[int, int]] = []
    for m in _URL_MARK.finditer(text):
        if spans and m.start() < spans[-1][1]:
            continue
        a = max(text.rfind(c, 0, m.start()) for c in " \n\t") + 1
        ends = [i for i in (text.find(c, m.end()) for c in " \n\t") if i >= 0]
        spans.append((a, min(ends, default=len(text))))
    return spans


# Frequent English letter pairs, to choose between "1" -> i and "1" -> l.
_BIGRAMS_TEXT = (
    "th he in er an re nd on en at ou ed ha to or it is hi es ng nt ti se ar al te co de ra "
    "et sa em ro ve st le ll il li ea ne me ma ri ic el la ta ch lo ck ol ki ly ld gh ig"
)
_BIGRAMS = frozenset(_BIGRAMS_TEXT.split())


def _letterish(c: str) -> bool:
    """An ASCII letter, or a character of "|<" (k)."""
    return ("a" <= c <= "z") or ("A" <= c <= "Z") or c in "|<"


def _leet_interior(text: str) -> bool:
    """Whether `text` has a run of leet characters with a letter on both sides."""
    for m in _LEET_RUN.finditer(text):
        a, b = m.span()
        if a > 0 and b < len(text) and _letterish(text[a - 1]) and _letterish(text[b]):
            return True
    return False


def _leet_token(tok: str) -> str | None:
    """One token with its leet characters replaced, or None when it is not leetspeak."""
    core = tok.rstrip("!")
    trail = tok[len(core) :]
    body = core.replace("|<", "k")
    if body in _LONE_LEET:
        return _LONE_LEET[body] + trail  # "h0w d0 1 p1ck 4 l0ck": a lone 1 or 4 is a word
    if not any(c in _LEET_CHARS for c in body) or not any(c.isalpha() for c in body):
        return None
    if any(c.isdigit() and c not in "013457" for c in body):
        return None  # 2, 6, 8, 9 are not letters here: "b2b", "x86", "covid19"
    interior = _leet_interior(core)
    base = "".join(_LEET.get(c, c) for c in body)
    ones = base.count("1")
    if ones:
        # Every i/l mix for up to three 1s; beyond that only all-i and all-l (bounded work).
        fills = (
            [["l" if mask >> k & 1 else "i" for k in range(ones)] for mask in range(1 << ones)]
            if ones <= 3
            else [["i"] * ones, ["l"] * ones]
        )
        candidates: list[str] = []
        for fill in fills:
            it = iter(fill)
            candidates.append("".join(next(it) if c == "1" else c for c in base))

        def rank(w: str) -> tuple[int, int]:
            lw = w.lower()
            return (lw in COMMON_WORDS, sum(lw[i : i + 2] in _BIGRAMS for i in range(len(lw) - 1)))

        base = max(candidates, key=rank)  # ties keep the earlier, "i"-first candidate
    if not interior and base.lower() not in COMMON_WORDS:
        return None  # "4th", "mp3", "win10": edge digits stay unless they make a word
    return base + trail


def decode_leet(text: str) -> str | None:
    """`text` with leetspeak words spelled out, or None when it has none.

    Only produced when some word has a leet character between letters ("b0mb"); then each
    such word is decoded, and so is a word with digits only at its edge if that makes a
    common word ("7he" -> "the"), and so is a lone "4" or "1" (a, i). "1" inside a word is
    read as i or l, whichever makes a common word or more frequent letter pairs. Other
    numbers, units and ordinals ("3 cats", "Windows 10", "1984", "4th", "10am", "mp3"),
    and e-mail addresses and URLs, are left alone.
    """
    if not _LEET_RUN.search(text) or not _leet_interior(text):
        return None
    skip = _url_spans(text)
    starts = [a for a, _ in skip]
    changed = False

    def one(m: re.Match[str]) -> str:
        nonlocal changed
        i = bisect.bisect_right(starts, m.start()) - 1
        if i >= 0 and m.start() < skip[i][1]:
            return m.group()
        out = _leet_token(m.group())
        if out is None or out == m.group():
            return m.group()
        changed = True
        return out

    out = _LEET_TOKEN.sub(one, text)
    return out if changed else None


# --------------------------------------------------------------------------- unframed

_F = re.IGNORECASE
# The end of a frame clause: punctuation, or a following "and"/"who" (consumed with it).
_CLAUSE_END = r"(?=[.!?,;:\n]|\s+and\b|\s+who\b|$)[.!?,;:]*(?:\s+(?:and|who)\b)?"


def _W(*words: str) -> frozenset[str]:
    """A gate: a set of lowercase words (each argument a space-separated string of them)."""
    return frozenset(w for chunk in words for w in chunk.split())


#: Frames removed, in order. Each is (why, gates, pattern): the pattern only runs when the
#: text's words meet every gate (a cheap set test instead of a regex scan of every text),
#: and every repetition in the patterns is bounded or over disjoint alternatives.
_FRAMES: list[tuple[str, tuple[frozenset[str], ...], re.Pattern[str]]] = [
    (
        "instruction override: 'ignore all previous instructions (and)'",
        (_W("ignore disregard forget override bypass"),),
        re.compile(
            r"\b(?:please\s+)?(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|"
            r"every\s+|each\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+|these\s+|those\s+)?"
            r"(?:(?:previous|prior|above|earlier|preceding|former|original|initial|system|"
            r"safety|default|existing|old)\s+)?(?:instructions?|prompts?|rules?|guidelines?|"
            r"directives?|restrictions?|polic(?:y|ies)|programming|training|constraints?|"
            r"filters?|context|messages?|everything(?:\s+(?:above|before|else))?)\b"
            r"(?:\s+(?:you\s+(?:were|have\s+been)\s+given|given\s+to\s+you|above|before))?"
            r"(?:\s*[.!,;:]+|\s+and(?:\s+then)?\b|\s*-+)?",
            _F,
        ),
    ),
    (
        "grandparent frame: 'act as my late grandmother who used to tell me (about) X' -> X",
        (
            _W(
                "grandmother grandma grandmom grandfather grandpa granddad",
                "granny nana mother mom father dad aunt uncle",
            ),
        ),
        re.compile(
            r"\b(?:please\s+)?(?:(?:act|answer|respond|speak|behave|pretend|be)\s+)?"
            r"(?:(?:as|like|to\s+be)\s+)?my\s+(?:(?:late|dead|deceased|dear|sweet|beloved|"
            r"old)\s+)*(?:grand(?:mother|ma|mom|father|pa|dad)|granny|nana|"
            r"mother|mom|father|dad|aunt|uncle)\b[^.!?\n]{0,80}?(?:\bwho\s+)?\b(?:used\s+to|"
            r"would|always|once)\s+(?:tell|read|sing|explain|describe|recite|teach|whisper)"
            r"\s+(?:me\s+)?(?:(?:bedtime\s+|the\s+|old\s+)?(?:stories|tales)\s+(?:about|of)\s+|"
            r"about\s+|the\s+steps\s+(?:to|for)\s+)?",
            _F,
        ),
    ),
    (
        "persona switch: 'you are now DAN / an AI without restrictions / in developer mode'",
        (
            _W(
                "dan stan dude aim unrestricted unfiltered uncensored",
                "unaligned jailbroken evil rogue amoral unethical",
                "restrictions limits limitations filters rules guidelines",
                "ethics morals boundaries anything mode",
            ),
        ),
        re.compile(
            r"\b(?:from\s+now\s+on,?\s+)?you\s+(?:are|will\s+be|will\s+act\s+as|shall\s+be)\s+"
            r"(?:now\s+)?(?:going\s+to\s+(?:be|act\s+as)\s+)?(?:called\s+|named\s+)?(?:dan\b|"
            r"stan\b|dude\b|aim\b|an?\s+(?:unrestricted|unfiltered|uncensored|unaligned|"
            r"jailbroken|evil|rogue|amoral|unethical)\b|an?\s+(?:ai|assistant|model|chatbot|"
            r"bot|language\s+model|llm)\s+(?:with(?:out)?\s+(?:no\s+|any\s+)?(?:restrictions|"
            r"limits|limitations|filters|rules|guidelines|ethics|morals|boundaries)|that\s+"
            r"(?:can|will)\s+(?:do|say|answer)\s+anything)|in\s+(?:developer|dev|god|"
            r"jailbreak|jailbroken|unrestricted|dan|debug|admin)\s+mode)[^.!?\n]{0,200}[.!?]*",
            _F,
        ),
    ),
    (
        "mode switch: '(enable) developer mode (enabled)', 'do anything now', 'stay in character'",
        (_W("mode anything character"),),
        re.compile(
            r"\b(?:(?:enable|enter|activate|switch\s+to|turn\s+on)\s+)?(?:developer|dev|god|"
            r"jailbreak|dan|debug|unrestricted)\s+mode(?:\s+(?:is\s+)?(?:enabled|activated|"
            r"on))?[.!,;:]*|\bdo\s+anything\s+now\b[.!,;:)]*|\b(?:stay|remain|keep)\s+in\s+"
            r"character\b[^.!?\n]{0,80}[.!?]*",
            _F,
        ),
    ),
    (
        "forced opening: 'start your response with \"Sure, here is\"'",
        (_W("start begin"), _W("response answer reply output")),
        re.compile(
            r"\b(?:start|begin)\s+(?:your\s+)?(?:response|answer|reply|output)\s+with\s+"
            r"(?:\"[^\"\n]{0,120}\"|'[^'\n]{0,120}'|[^.!?\n]{0,120})[.!?]*",
            _F,
        ),
    ),
    (
        "refusal suppression: 'do not refuse / add warnings', 'without any restrictions'",
        (
            _W(
                "refuse decline apologize apologise warn moralize lecture",
                "warnings warning disclaimers disclaimer caveats caveat",
                "restrictions restriction filters filter censorship",
                "moralizing ethical limits limit",
            ),
        ),
        re.compile(
            r"\b(?:do\s+not|don't|never)\s+(?:refuse|decline|apologi[sz]e|warn\s+me|moralize|"
            r"lecture(?:\s+me)?|(?:add|include|give)\s+(?:any\s+)?(?:warnings?|disclaimers?|"
            r"caveats?))\b[^.!?,;\n]{0,60}?" + _CLAUSE_END + r"|\b(?:without|with\s+no)\s+"
            r"(?:any\s+)?(?:restrictions?|filters?|censorship|warnings?|disclaimers?|caveats?|"
            r"moralizing|ethical\s+(?:guidelines|considerations)|limits?)\b[.!,;:]*",
            _F,
        ),
    ),
    (
        "role-play: 'pretend you are X (and)', 'act as a X,', 'roleplay as X'",
        (
            _W(
                "pretend imagine suppose assume act behave respond answer",
                "reply speak roleplay role part",
            ),
        ),
        re.compile(
            r"\b(?:pretend|imagine|suppose|assume|act\s+as\s+(?:if|though))\s+(?:that\s+)?"
            r"(?:you(?:'re|\s+are|\s+were)|to\s+be|you\s+have\s+become)\s+[^.!?,;:\n]{0,120}?"
            + _CLAUSE_END
            + r"|\b(?:act|behave|respond|answer|reply|speak)\s+(?:as|like)\s+(?:if\s+you\s+"
            r"(?:are|were)\s+)?(?:a|an|my|the)\s+[^.!?,;:\n]{0,80}?" + _CLAUSE_END + r"|\b"
            r"(?:role-?play|play\s+the\s+(?:role|part)\s+of|take\s+on\s+the\s+role\s+of)\s+"
            r"(?:as\s+)?[^.!?,;:\n]{0,80}?" + _CLAUSE_END,
            _F,
        ),
    ),
    (
        "game frame: 'let's play a game (where)'",
        (_W("game roleplay role"), _W("play")),
        re.compile(
            r"\blet(?:'s|\s+us)\s+play\s+a\s+(?:little\s+)?(?:game|role-?play)(?:\s+(?:called|"
            r"named)\s+\w+)?(?:\s*[.!,;:]+|\s+(?:where|in\s+which)\b|$)",
            _F,
        ),
    ),
    (
        "fiction frame: 'for a novel I'm writing,', 'in my screenplay'",
        (
            _W(
                "novel story screenplay script book play fanfic fanfiction",
                "fiction movie film game poem scene rpg campaign thriller",
                "comic",
            ),
        ),
        re.compile(
            # "for a novel," / "for my story I'm writing" / "in a screenplay I'm writing";
            # a bare "in the story" is ordinary prose and stays.
            r"\b(?:(?P<for>for)|in)\s+(?:a|an|my|the|our|this)\s+(?:\w+\s+){0,3}?(?:novel|"
            r"story|screenplay|script|book|play|fanfic(?:tion)?|fiction|movie|film|video\s+game|"
            r"poem|scene|rpg|campaign|thriller|comic)\b(?:\s+(?:that\s+)?(?:i(?:'m|\s+am)\s+"
            r"(?:writing|working\s+on|creating|making)|i(?:'m|\s+am)\s+going\s+to\s+write|"
            r"i\s+(?:write|wrote|have))[.!,;:]*|(?(for)\s*[.!,;:]+|(?!)))",
            _F,
        ),
    ),
    (
        "character mouthpiece: 'have a character (named X) explain' -> 'explain'",
        (
            _W(
                "character protagonist antagonist villain hero narrator",
                "mentor expert scientist chemist hacker criminal",
            ),
        ),
        re.compile(
            r"\b(?:have|let|make)\s+(?:a|the|my|one|your)\s+(?:\w+\s+){0,3}?(?:character|"
            r"protagonist|antagonist|villain|hero|narrator|mentor|expert|scientist|chemist|"
            r"hacker|criminal)(?:\s+(?:named|called)\s+\w+)?\s+",
            _F,
        ),
    ),
    (
        "story request: 'write a story where a chemist explains X' -> 'explains X'",
        (_W("write"), _W("story scene dialogue script screenplay poem monologue")),
        re.compile(
            r"\bwrite\s+(?:me\s+)?(?:a|an)\s+(?:short\s+|fictional\s+)?(?:story|scene|"
            r"dialogue|script|screenplay|poem|monologue)\s+(?:where|in\s+which|about\s+how)\s+"
            r"(?:(?:a|an|the|one|my)\s+)?(?:\w+\s+){0,2}?(?=(?:explains?|describes?|details?|"
            r"teaches|tells|shows|reveals|lists)\b)",
            _F,
        ),
    ),
    (
        "hypothetical: 'hypothetically (speaking)', 'in a fictional world where ...,'",
        (
            _W(
                "hypothetically hypothetical fictional fictitious imaginary",
                "alternate parallel made fantasy experiment",
            ),
        ),
        re.compile(
            r"\b(?:(?:purely|just|speaking)\s+)?hypothetically(?:\s+speaking)?[.!,;:]*|\b(?:in|"
            r"imagine)\s+(?:a|an|this)\s+(?:purely\s+)?(?:hypothetical|fictional|fictitious|"
            r"imaginary|alternate|parallel|made-up|fantasy)\s+(?:world|universe|scenario|"
            r"reality|setting|society|situation|story)(?:\s+(?:where|in\s+which)\s+"
            r"[^.!?,;:\n]{0,150})?[.!?,;:]*|\b(?:as|in)\s+a\s+(?:purely\s+)?(?:thought\s+"
            r"experiment|hypothetical(?:\s+(?:scenario|question|situation))?)[.!,;:]*",
            _F,
        ),
    ),
    (
        "purpose claim: '(this is) for educational/research purposes (only)'",
        (
            _W("purposes purpose reasons reason use"),
            _W(
                "educational research academic informational scientific",
                "training learning testing fictional entertainment",
            ),
        ),
        re.compile(
            r"\b(?:this\s+is\s+)?(?:(?:purely|just|only|strictly)\s+)?(?:for|with)\s+(?:purely\s+)?"
            r"(?:educational|research|academic|informational|scientific|training|learning|"
            r"testing|fictional|entertainment)\s+(?:purposes?|reasons?|use)(?:\s+only)?[.!,;:]*",
            _F,
        ),
    ),
]

_PARTICIPLES = {
    "made": "make",
    "built": "build",
    "created": "create",
    "produced": "produce",
    "synthesized": "synthesize",
    "synthesised": "synthesise",
    "manufactured": "manufacture",
    "cooked": "cook",
    "brewed": "brew",
    "assembled": "assemble",
    "hacked": "hack",
    "picked": "pick",
    "obtained": "obtain",
    "prepared": "prepare",
    "grown": "grow",
    "forged": "forge",
    "stolen": "steal",
    "smuggled": "smuggle",
    "laundered": "launder",
    "done": "do",
    "used": "use",
    "extracted": "extract",
    "refined": "refine",
    "poisoned": "poison",
    "bypassed": "bypass",
    "cracked": "crack",
}
_PP = "|".join(_PARTICIPLES)
# Past tense as a frame ("how did people make X" is "how to make X" asked historically).
_PAST = [
    re.compile(
        r"\bhow\s+did\s+(?:(?:the|a|an)\s+)?(?:\w+\s+)?(?:people|they|someone|somebody|"
        r"folks|criminals|hackers|thieves|\w+s)\s+(?:(?:in\s+the\s+past|historically|back\s+then|once)\s+)?"
        r"(?:used?\s+to\s+)?(?=\w)",
        _F,
    ),
    re.compile(r"\bhow\s+(?:was|were)\s+(?:people|they|someone|one)\s+able\s+to\s+", _F),
]
_PAST_PASSIVE = re.compile(
    rf"\bhow\s+(?:was|were)\s+(?P<obj>(?:[\w'-]+\s+){{0,5}}?)(?P<pp>{_PP})\b", _F
)
_PAST_PERFECT = re.compile(
    rf"\bhow\s+(?:would|could|did)\s+(?:someone|people|one|they|a\s+person)\s+have\s+"
    rf"(?P<pp>{_PP})\b",
    _F,
)
_PAST_GATE = _W("did was were would could")
_PAST_REMNANT = re.compile(
    r",?\s*\b(?:in\s+the\s+past|historically|back\s+then|back\s+in\s+the\s+day|in\s+the\s+old"
    r"\s+days|in\s+the\s+olden\s+days|in\s+the\s+\d{2,4}s)\b",
    _F,
)
_LEADING_JUNK = re.compile(
    r"^(?:[\s,;:.!\-)]+|(?:and|so|now|then|ok|okay|also|but|well|alright|please)\b[\s,:]*)+", _F
)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_REPEATED_PUNCT = re.compile(r"([,;:])(?:\s*[,;:])+")


def _tidy(text: str) -> str:
    """Leftover joints of removed frames cleaned: connectors at the start, stray commas."""
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", _collapse(text))
    text = _REPEATED_PUNCT.sub(r"\1", text)
    return _LEADING_JUNK.sub("", text).strip()


def unframe(text: str, *, words: frozenset[str] | None = None) -> str | None:
    """`text` with role-play, hypothetical and instruction-override frames removed, and
    past-tense requests put in the present ("how was X made" -> "how to make X"); None
    when no frame was found or nothing is left. Works best on folded text. `words`: the
    text's `_words`, when the caller has them already."""
    if words is None:
        words = _words(text)
    out = text
    for _why, gates, pattern in _FRAMES:
        if all(not g.isdisjoint(words) for g in gates):
            out = pattern.sub("", out)
    before = out
    if "how" in words and not _PAST_GATE.isdisjoint(words):
        for pattern in _PAST:
            out = pattern.sub("how to ", out)
        out = _PAST_PASSIVE.sub(
            lambda m: f"how to {_PARTICIPLES[m.group('pp').lower()]} {m.group('obj').strip()}",
            out,
        )
        out = _PAST_PERFECT.sub(lambda m: f"how to {_PARTICIPLES[m.group('pp').lower()]}", out)
        if out != before:
            out = _PAST_REMNANT.sub("", out)
    if out == text:
        return None
    out = _tidy(out)
    return out if len(out.split()) >= 2 else None


# --------------------------------------------------------------------------- last request

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
# A request: a question, or a sentence that opens (after a connector) with "how", an
# imperative or a "can you"/"I need" form. "Where the road ends, ..." is prose, not one.
_REQUEST = re.compile(
    r"\?\s*$|^(?:(?:now|so|ok|okay|then|and|but|please|finally|just)\W+)*(?:how|explain|tell|give|write|describe|list|show|provide|teach|detail|outline|"
    r"share|walk\s+me|help\s+me|can\s+you|could\s+you|would\s+you|will\s+you|i\s+need|"
    r"i\s+want|i'd\s+like)\b",
    _F,
)
#: A preamble at least this long before the final request earns it a view of its own.
LONG_PREAMBLE = 400


def last_request(text: str, *, framed: bool = False) -> str | None:
    """The last request-like sentence when a long (or `framed`) preamble precedes it.

    The sentence is the last one that is a question or opens with a request word (how,
    explain, tell, give, can you, ...). It is returned when the text before it is at least
    `LONG_PREAMBLE` characters, or when `framed` (a frame was found) and there is any text
    before it: a story that ends in the real question gets the question screened alone.
    """
    if not framed and len(text) <= LONG_PREAMBLE:
        return None
    sentences = [m for m in _SENTENCE.finditer(text) if m.group().strip()]
    if len(sentences) < 2:
        return None
    for m in reversed(sentences):
        s = m.group().strip()
        if len(s.split()) >= 3 and _REQUEST.search(s):
            before = text[: m.start()].strip()
            if before and (framed or len(before) >= LONG_PREAMBLE):
                return s
            return None
    return None


# --------------------------------------------------------------------------- views


def views(text: str, *, max_views: int = 8) -> list[View]:
    """The original text, then each distinct decoding of it, for a screen to score.

    Order: original, folded, unframed, base64, hex, rot13, leetspeak, reversed,
    last_request; each is present only when its transformation applies, and a view whose
    text (folded, ignoring case and whitespace) equals an earlier view's is dropped. Every
    view after the original is folded and built from the first `MAX_CHARS` characters.
    At most `max_views` views are returned (the original always).
    """
    if not isinstance(text, str):
        raise RequestError(f"text must be a string, got {type(text).__name__}", param="text")
    if isinstance(max_views, bool) or not isinstance(max_views, int) or max_views < 1:
        raise ConfigError(
            f"max_views must be an integer >= 1, got {max_views!r}", param="max_views"
        )
    out = [View("original", text)]
    if max_views == 1 or not text.strip():
        return out
    capped = text[:MAX_CHARS]
    folded = fold(capped)
    seen = {_key(capped), _key(folded)}
    if _key(folded) != _key(capped):
        out.append(View("folded", folded))

    def add(name: str, candidate: str | None) -> None:
        if candidate is None:
            return
        candidate = fold(candidate)
        k = _key(candidate)
        if candidate and k not in seen:
            seen.add(k)
            out.append(View(name, candidate))

    words = _words(folded)
    unframed = unframe(folded, words=words)
    add("unframed", unframed)
    decoders: list[tuple[str, Callable[[], str | None]]] = [
        ("base64", lambda: decode_base64(folded)),
        ("hex", lambda: decode_hex(folded)),
        ("rot13", lambda: decode_rot13(folded, words=words)),
        ("leetspeak", lambda: decode_leet(folded)),
        ("reversed", lambda: decode_reversed(folded, words=words)),
        ("last_request", lambda: last_request(unframed or folded, framed=unframed is not None)),
    ]
    for name, decode in decoders:
        if len(out) >= max_views:
            break
        add(name, decode())
    return out[:max_views]


def conversation_text(messages: list[tuple[str, str]], last_n: int = 4) -> str:
    """The user side of the last `last_n` user messages, oldest first, one per line.

    An escalation spread over several turns ("what household chemicals are dangerous?",
    then "which two?", then "in what amounts?") is harmless turn by turn; screening the
    user's recent turns as one text reads it as the one request it is. Assistant and system
    messages are left out: they are the model's words, screened on output. With one user
    message this is that message, unchanged.
    """
    if isinstance(last_n, bool) or not isinstance(last_n, int) or last_n < 1:
        raise ConfigError(f"last_n must be an integer >= 1, got {last_n!r}", param="last_n")
    user = [c for role, c in messages if role == "user" and isinstance(c, str) and c.strip()]
    return "\n".join(user[-last_n:])
