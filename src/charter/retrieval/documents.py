"""Turn files into plain text with structure: .txt, .md, .html/.htm, .pdf and JSONL corpora.

Each loader returns the document's extracted text and its sections (a heading or a PDF
page over a span of that text), so chunks can cite a page and a heading and keep exact
character offsets. A file that cannot be used raises `DocumentSkipped` with the reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

TEXT_SUFFIXES = (".txt", ".text")
MARKDOWN_SUFFIXES = (".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
JSONL_SUFFIXES = (".jsonl",)
SUFFIXES = TEXT_SUFFIXES + MARKDOWN_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES + JSONL_SUFFIXES


class DocumentSkipped(Exception):
    """A document that cannot be ingested; str() is the reason, for the user to read.

    A signal inside ingest, never raised to a caller of `charter.retrieval.ingest`.
    """


@dataclass(frozen=True)
class Section:
    """A span of the extracted text under one heading, or one PDF page."""

    start: int
    end: int
    heading: str | None = None
    page: int | None = None


@dataclass(frozen=True)
class Document:
    """A document's extracted text; `sections` cover the parts worth indexing, in order."""

    doc_id: str
    title: str
    text: str
    sections: list[Section]
    sha256: str
    source: str | None


@dataclass(frozen=True)
class Source:
    """A document found but not yet extracted: its id and hash come cheap, `load()` does not.

    `name` is how reports name it: the path, or `corpus.jsonl:12` for a corpus line.
    """

    doc_id: str
    name: str
    sha256: str
    source: str
    load: Callable[[], Document]


@dataclass(frozen=True)
class Unreadable:
    """A file or corpus line that could not even be read; `doc_id` when known."""

    name: str
    reason: str
    source: str
    doc_id: str | None = None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- finding documents --------------------------------------------------------------------
def find_files(path: Path) -> list[Path]:
    """`path` itself, or the files under it with a known suffix (hidden ones left out)."""
    if not path.is_dir():
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            Path(root, f)
            for f in sorted(files)
            if not f.startswith(".") and f.lower().endswith(SUFFIXES)
        )
    return found


def iter_sources(path: Path) -> Iterator[Source | Unreadable]:
    """Every document in one file: one for most files, one per line for a JSONL corpus."""
    abspath = os.path.abspath(path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        yield from iter_jsonl(path)
        return
    if path.suffix.lower() not in SUFFIXES:
        yield Unreadable(
            str(path),
            f"unsupported file type {path.suffix or '(none)'!r} "
            "(known: .txt .md .html .htm .pdf .jsonl)",
            abspath,
            abspath,
        )
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield Unreadable(str(path), f"unreadable ({exc.strerror or exc})", abspath, abspath)
        return
    digest = sha256(data)
    yield Source(abspath, str(path), digest, abspath, lambda: load_bytes(path, data, digest))


def count_documents(path: Path) -> int:
    """How many documents `iter_sources(path)` will yield, cheaply (for a progress bar)."""
    if path.suffix.lower() not in JSONL_SUFFIXES:
        return 1
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 1


# -- one file ------------------------------------------------------------------------------
def load_file(path: Path) -> Document:
    """Extract one .txt/.md/.html/.htm/.pdf file. Raises DocumentSkipped."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentSkipped(f"unreadable ({exc.strerror or exc})") from None
    return load_bytes(path, data, sha256(data))


def load_bytes(path: Path, data: bytes, digest: str) -> Document:
    suffix = path.suffix.lower()
    abspath = os.path.abspath(path)
    if not data.strip():
        raise DocumentSkipped("empty file")
    if suffix in PDF_SUFFIXES:
        title, text, sections = extract_pdf(data)
    else:
        raw = decode_text(data, html=suffix in HTML_SUFFIXES)
        if suffix in HTML_SUFFIXES:
            title, text, sections = extract_html(raw)
        elif suffix in MARKDOWN_SUFFIXES:
            title, text, sections = extract_markdown(raw)
        else:
            text = normalise_newlines(raw)
            title, sections = "", [Section(0, len(text))]
    if not text.strip() or not sections:
        raise DocumentSkipped("no text in it" if suffix not in PDF_SUFFIXES else _NO_TEXT_LAYER)
    return Document(abspath, title or path.stem, text, sections, digest, abspath)


_NO_TEXT_LAYER = "no text layer (a scanned PDF? run OCR on it first)"
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)


def decode_text(data: bytes, html: bool = False) -> str:
    """UTF-8 (or UTF-16 with a BOM, or an HTML page's declared charset). Raises DocumentSkipped
    for binary data (NUL bytes) or bytes that are not valid in the encoding."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise DocumentSkipped("not valid UTF-16 text") from None
    if b"\x00" in data:
        raise DocumentSkipped("binary data (NUL bytes), not text")
    encoding = "utf-8-sig"
    if html:
        m = _CHARSET.search(data[:4096])
        if m:
            declared = m.group(1).decode("ascii").lower()
            try:
                encoding = "utf-8-sig" if declared in ("utf-8", "utf8") else _codec(declared)
            except LookupError:
                raise DocumentSkipped(f"unknown charset {declared!r}") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DocumentSkipped(
            f"not {'UTF-8' if encoding == 'utf-8-sig' else encoding} text "
            f"(undecodable byte at offset {exc.start})"
        ) from None


def _codec(name: str) -> str:
    import codecs

    return codecs.lookup(name).name


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# -- markdown ------------------------------------------------------------------------------
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


_FRONT_MATTER = re.compile(r"\A---\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)


def extract_markdown(raw: str) -> tuple[str, str, list[Section]]:
    """(title, text, sections): the text is the file's own (newlines normalised), split at
    ATX (`# Heading`) and setext (underlined) headings outside code fences. YAML front
    matter is left out of the sections; its `title:` is the title."""
    text = normalise_newlines(raw)
    front = _FRONT_MATTER.match(text)
    body_start = front.end() if front else 0
    front_title = _FRONT_TITLE.search(front.group(1)) if front else None
    marks: list[tuple[int, int, str, int]] = []  # (start, end of heading, heading, level)
    offset, fence, prev = body_start, None, None  # prev: (start, line) of a paragraph line
    for line in text[body_start:].splitlines(keepends=True):
        body = line.rstrip("\n")
        f = _FENCE.match(body)
        if fence is not None:
            if f and f.group(1) == fence:
                fence = None
        elif f:
            fence, prev = f.group(1), None
        elif (m := _ATX.match(body)) is not None:
            marks.append((offset, offset + len(body), (m.group(2) or "").strip(), len(m.group(1))))
            prev = None
        elif (m := _SETEXT.match(body)) is not None and prev is not None:
            level = 1 if m.group(1).startswith("=") else 2
            marks.append((prev[0], offset + len(body), prev[1].strip(), level))
            prev = None
        else:
            prev = (offset, body) if body.strip() else None
        offset += len(line)
    marks = [m for m in marks if m[2]]
    h1 = [m[2] for m in marks if m[3] == 1]
    title = h1[0] if h1 else (marks[0][2] if marks else "")
    if front_title:
        title = front_title.group(1).strip("\"'")
    sections = sections_from_headings(text, [(s, e, h) for s, e, h, _ in marks], body_start)
    return title, text, sections


def sections_from_headings(
    text: str, marks: list[tuple[int, int, str]], start: int = 0
) -> list[Section]:
    """Sections of text[start:] from (start, end, heading) marks; a heading with no text
    under it joins the next section (which keeps its own, nearer heading)."""
    sections: list[Section] = []
    first = marks[0][0] if marks else len(text)
    if text[start:first].strip():
        sections.append(Section(start, first))
    carry = None  # start of headings waiting for text
    for i, (h_start, h_end, heading) in enumerate(marks):
        stop = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        if not text[h_end:stop].strip():
            carry = h_start if carry is None else carry
            continue
        sections.append(Section(h_start if carry is None else carry, stop, heading))
        carry = None
    return [s for s in sections if text[s.start : s.end].strip()]


# -- html ----------------------------------------------------------------------------------
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_BLOCK = _words(
    "address article aside blockquote body caption center dd details dialog div dl dt "
    "fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr html li main nav ol "
    "p pre section summary table tbody thead tfoot tr ul"
)
_HIDDEN = _words("script style noscript template svg math canvas iframe object")
_HEADINGS = _words("h1 h2 h3 h4 h5 h6")
_SPACE = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    """The visible text of a page, paragraphs apart, with where each heading starts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.pending = ""  # the separator owed before the next text: "", " ", "\n", "\n\n"
        self.hidden = 0
        self.pre = 0
        self.in_title = False
        self.title_parts: list[str] = []
        self.heading: list[str] | None = None
        self.heading_start: int | None = None
        self.marks: list[tuple[int, int, str]] = []
        self.first_h1 = ""

    def _owe(self, sep: str) -> None:
        if len(sep) > len(self.pending) or (sep == "\n" and self.pending == " "):
            self.pending = sep

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "title":
            self.in_title = True
        elif tag == "br":
            self._owe("\n")
        elif tag in ("td", "th"):
            self._owe(" ")
        elif tag in _BLOCK:
            self._owe("\n\n")
            if tag == "pre":
                self.pre += 1
            if tag in _HEADINGS:
                self.heading, self.heading_start = [], None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HIDDEN:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif tag == "title":
            self.in_title = False
        elif tag in _BLOCK:
            self._owe("\n\n")
            if tag == "pre":
                self.pre = max(self.pre - 1, 0)
            if tag in _HEADINGS and self.heading is not None:
                heading = _SPACE.sub(" ", "".join(self.heading)).strip()
                if heading and self.heading_start is not None:
                    self.marks.append((self.heading_start, self.length, heading))
                    if tag == "h1" and not self.first_h1:
                        self.first_h1 = heading
                self.heading = None

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.in_title:
            self.title_parts.append(data)
            return
        if self.pre:
            body = data
        else:
            body = _SPACE.sub(" ", data)
            if body.startswith(" "):
                self._owe(" ")
            trailing = body.endswith(" ")
            body = body.strip(" ")
        if not body:
            return
        if self.parts and self.pending:
            self._add(self.pending)
        self.pending = ""
        if self.heading is not None:
            if self.heading_start is None:
                self.heading_start = self.length
            self.heading.append(data)
        self._add(body)
        if not self.pre and trailing:
            self._owe(" ")

    def _add(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)


def extract_html(raw: str) -> tuple[str, str, list[Section]]:
    """(title, text, sections): visible text (no script/style), block elements a paragraph
    apart, split at h1-h6. Title: <title>, else the first h1."""
    parser = _TextExtractor()
    parser.feed(raw)
    parser.close()
    text = "".join(parser.parts)
    title = _SPACE.sub(" ", "".join(parser.title_parts)).strip() or parser.first_h1
    return title, text, sections_from_headings(text, parser.marks)


# -- pdf -----------------------------------------------------------------------------------
def extract_pdf(data: bytes) -> tuple[str, str, list[Section]]:
    """(title, text, sections): the text layer of each page, pages a paragraph apart, one
    section per page. Raises DocumentSkipped for encrypted or unreadable files."""
    import logging

    from pypdf import PdfReader

    # pypdf logs every oddity of a malformed file; the file is reported once if it fails.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # An empty user password (only editing restricted) opens for any reader.
            try:
                opened = reader.decrypt("")
            except Exception:  # AES without the cryptography package, or a bad header
                opened = 0
            if not opened:
                raise DocumentSkipped("encrypted PDF (needs a password)")
        pages = [
            normalise_newlines(p.extract_text() or "").replace("\x00", "") for p in reader.pages
        ]
        meta_title = ""
        try:
            meta_title = str((reader.metadata or {}).get("/Title") or "").strip()
        except Exception:  # a broken Info dictionary is not worth losing the text for
            meta_title = ""
    except DocumentSkipped:
        raise
    except Exception as exc:  # pypdf raises many kinds for malformed files
        raise DocumentSkipped(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    parts, sections, offset = [], [], 0
    for number, page in enumerate(pages, 1):
        page = page.strip()
        if not page:
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        sections.append(Section(offset, offset + len(page), None, number))
        parts.append(page)
        offset += len(page)
    return meta_title, "".join(parts), sections


# -- JSONL corpora -------------------------------------------------------------------------
def iter_jsonl(path: Path) -> Iterator[Source | Unreadable]:
    """One Source per line of a `{"_id", "title", "text"}` corpus; bad lines as Unreadable."""
    abspath = os.path.abspath(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; the generator may stop early)
    except OSError as exc:
        yield Unreadable(str(path), f"unreadable ({exc.strerror or exc})", abspath)
        return
    with f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            name = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield Unreadable(name, f"not valid JSON ({exc})", abspath)
                continue
            if not isinstance(obj, dict) or "_id" not in obj:
                yield Unreadable(name, 'not a corpus line (needs "_id", "title", "text")', abspath)
                continue
            doc_id = str(obj["_id"])
            text, title = obj.get("text"), obj.get("title") or ""
            if not isinstance(text, str) or not isinstance(title, str):
                yield Unreadable(name, '"text" and "title" must be strings', abspath, doc_id)
                continue
            digest = sha256(line)
            yield Source(
                doc_id,
                f"{name} (_id {doc_id})",
                digest,
                abspath,
                lambda d=doc_id, t=title, x=text, h=digest: corpus_document(d, t, x, h, abspath),
            )


def corpus_document(doc_id: str, title: str, text: str, digest: str, source: str) -> Document:
    text = normalise_newlines(text)
    if not text.strip():
        raise DocumentSkipped("empty text")
    return Document(doc_id, title.strip(), text, [Section(0, len(text))], digest, source)
