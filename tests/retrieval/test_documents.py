"""Loaders: the text each file type yields, its sections (headings, pages), and the reasons
given for files that cannot be used. PDFs are made here with pypdf, not committed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from charter.retrieval.documents import (
    Document,
    DocumentSkipped,
    Source,
    Unreadable,
    find_files,
    iter_sources,
    load_file,
)


def make_pdf(
    pages: list[str],
    *,
    title: str | None = None,
    user_password: str | None = None,
    owner_password: str | None = None,
) -> bytes:
    """A PDF with one text line per line of each page (Helvetica), optionally RC4-encrypted."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for text in pages:
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in text.split("\n") if text else []:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = DecodedStreamObject()
        stream.set_data("\n".join(ops).encode("latin-1"))
        page.replace_contents(stream)
    if title:
        writer.add_metadata({"/Title": title})
    if user_password is not None:
        writer.encrypt(
            user_password=user_password, owner_password=owner_password, algorithm="RC4-128"
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def section_texts(doc: Document) -> list[tuple[str | None, str]]:
    return [(s.heading, doc.text[s.start : s.end].strip()) for s in doc.sections]


def skip_reason(path: Path) -> str:
    with pytest.raises(DocumentSkipped) as err:
        load_file(path)
    return str(err.value)


# -- text and markdown ---------------------------------------------------------------------
def test_plain_text_keeps_its_text_with_unix_newlines(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.txt", b"First line.\r\nSecond line.\r\n")
    doc = load_file(path)
    assert doc.text == "First line.\nSecond line.\n"
    assert doc.title == "notes"
    assert doc.doc_id == str(path.absolute()) and doc.source == doc.doc_id
    assert [(s.start, s.end, s.heading, s.page) for s in doc.sections] == [(0, 25, None, None)]


def test_markdown_sections_follow_headings(tmp_path: Path) -> None:
    md = (
        "Preamble before any heading.\n\n"
        "# Charter Guide\n\nIntro paragraph.\n\n"
        "## Install ##\n\nRun pip.\n\n"
        "```\n# not a heading, code\n```\n\n"
        "## Empty\n"
        "### Usage\n\nAsk it things.\n\n"
        "Setext Heading\n--------------\n\nUnder setext.\n"
    )
    doc = load_file(write(tmp_path / "guide.md", md))
    assert doc.title == "Charter Guide"
    assert doc.text == md
    assert section_texts(doc) == [
        (None, "Preamble before any heading."),
        ("Charter Guide", "# Charter Guide\n\nIntro paragraph."),
        ("Install", "## Install ##\n\nRun pip.\n\n```\n# not a heading, code\n```"),
        # A heading with nothing under it joins the next section, which keeps its own.
        ("Usage", "## Empty\n### Usage\n\nAsk it things."),
        ("Setext Heading", "Setext Heading\n--------------\n\nUnder setext."),
    ]


def test_markdown_front_matter_gives_the_title_and_is_not_indexed(tmp_path: Path) -> None:
    md = '---\ntitle: "From Front Matter"\ntags: [a]\n---\nBody text.\n\n# Heading\n\nMore.\n'
    doc = load_file(write(tmp_path / "post.md", md))
    assert doc.title == "From Front Matter"
    assert section_texts(doc) == [(None, "Body text."), ("Heading", "# Heading\n\nMore.")]
    assert doc.sections[0].start == md.index("Body")


def test_markdown_title_falls_back_to_file_name(tmp_path: Path) -> None:
    assert load_file(write(tmp_path / "readme.md", "no headings at all\n")).title == "readme"


# -- html --------------------------------------------------------------------------------
def test_html_visible_text_headings_and_title(tmp_path: Path) -> None:
    page = (
        "<!doctype html><html><head><title> The  Page </title>"
        "<style>body { color: red }</style><script>var hidden = 'no';</script></head>"
        "<body><nav>Home | About</nav>"
        "<h1>Main   Topic</h1><p>First\n   paragraph &amp; more.</p>"
        "<noscript>enable js</noscript>"
        "<h2>Details</h2><p>Line one<br>line two</p><ul><li>item a</li><li>item b</li></ul>"
        "<pre>  keep   spaces\n  here</pre>"
        "<table><tr><td>cell1</td><td>cell2</td></tr></table>"
        "</body></html>"
    )
    doc = load_file(write(tmp_path / "page.html", page))
    assert doc.title == "The Page"
    assert doc.text == (
        "Home | About\n\nMain Topic\n\nFirst paragraph & more.\n\n"
        "Details\n\nLine one\nline two\n\nitem a\n\nitem b\n\n  keep   spaces\n  here\n\n"
        "cell1 cell2"
    )
    assert "hidden" not in doc.text and "color" not in doc.text and "enable js" not in doc.text
    assert [s.heading for s in doc.sections] == [None, "Main Topic", "Details"]
    assert doc.text[doc.sections[1].start :].startswith("Main Topic\n\nFirst paragraph")
    assert doc.text[doc.sections[2].start :].startswith("Details\n\nLine one")


def test_html_without_title_uses_first_h1_and_declared_charset(tmp_path: Path) -> None:
    page = '<html><head><meta charset="iso-8859-1"></head><body><h1>Caf\xe9</h1><p>cr\xe8me</p>'
    doc = load_file(write(tmp_path / "latin.htm", page.encode("latin-1")))
    assert doc.title == "Café"
    assert doc.text == "Café\n\ncrème"


# -- pdf ---------------------------------------------------------------------------------
def test_pdf_text_layer_with_page_numbers(tmp_path: Path) -> None:
    data = make_pdf(["Page one text.\nStill page one.", "", "Page three here."], title="Report")
    doc = load_file(write(tmp_path / "report.pdf", data))
    assert doc.title == "Report"
    pages = [(s.page, doc.text[s.start : s.end]) for s in doc.sections]
    assert pages == [(1, "Page one text.\nStill page one."), (3, "Page three here.")]
    assert doc.text == "Page one text.\nStill page one.\n\nPage three here."


def test_encrypted_pdf_is_skipped_but_owner_only_password_opens(tmp_path: Path) -> None:
    locked = write(tmp_path / "locked.pdf", make_pdf(["secret"], user_password="pw"))
    assert skip_reason(locked) == "encrypted PDF (needs a password)"
    # Restricted editing only (empty user password): every reader opens it, so do we.
    opened = make_pdf(["readable"], user_password="", owner_password="owner")
    assert load_file(write(tmp_path / "restricted.pdf", opened)).text == "readable"


def test_pdf_without_text_layer_or_corrupt(tmp_path: Path) -> None:
    blank = write(tmp_path / "scan.pdf", make_pdf(["", ""]))
    assert skip_reason(blank).startswith("no text layer")
    broken = write(tmp_path / "broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n")
    assert skip_reason(broken).startswith("not a readable PDF")


# -- files that cannot be used -----------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b" \n\n\t\n", "empty file"),
        ("binary.txt", b"abc\x00\x01\x02def", "binary data (NUL bytes), not text"),
        (
            "latin1.txt",
            "na\xefve".encode("latin-1"),
            "not UTF-8 text (undecodable byte at offset 2)",
        ),
        ("script.html", b"<script>only()</script>", "no text in it"),
    ],
)
def test_unusable_files_give_a_reason(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    assert skip_reason(write(tmp_path / name, data)) == reason


def test_utf16_with_bom_and_utf8_bom_are_read(tmp_path: Path) -> None:
    assert load_file(write(tmp_path / "a.txt", "héllo".encode("utf-16"))).text == "héllo"
    assert load_file(write(tmp_path / "b.txt", b"\xef\xbb\xbfbom")).text == "bom"


def test_unsupported_file_named_directly_is_reported(tmp_path: Path) -> None:
    (item,) = iter_sources(write(tmp_path / "photo.png", b"\x89PNG"))
    assert isinstance(item, Unreadable)
    assert item.reason.startswith("unsupported file type '.png'")


def test_folders_are_walked_for_known_types_without_hidden_files(tmp_path: Path) -> None:
    for rel in ["b.md", "a.txt", "sub/c.html", "sub/d.PDF", "x.png", ".hidden.txt", ".git/e.md"]:
        write(tmp_path / rel, "x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_files(tmp_path)] == [
        "a.txt",
        "b.md",
        "sub/c.html",
        "sub/d.PDF",
    ]


# -- JSONL corpora -----------------------------------------------------------------------
def test_jsonl_corpus_one_document_per_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"_id": "d1", "title": "First", "text": "Alpha text."}),
        "",
        json.dumps({"_id": 2, "title": "Second", "text": "Beta\r\ntext."}),
        "{not json",
        json.dumps({"title": "no id", "text": "x"}),
        json.dumps({"_id": "d4", "title": "", "text": ""}),
        json.dumps({"_id": "d5", "text": ["not", "a", "string"]}),
    ]
    path = write(tmp_path / "corpus.jsonl", "\n".join(lines) + "\n")
    items = list(iter_sources(path))
    sources = [i for i in items if isinstance(i, Source)]
    bad = [(i.name, i.reason) for i in items if isinstance(i, Unreadable)]
    assert [s.doc_id for s in sources] == ["d1", "2", "d4"]
    assert sources[0].source == str(path.absolute())
    first = sources[0].load()
    assert (first.doc_id, first.title, first.text) == ("d1", "First", "Alpha text.")
    assert sources[1].load().text == "Beta\ntext."
    with pytest.raises(DocumentSkipped, match="empty text"):
        sources[2].load()
    assert [name for name, _ in bad] == [f"{path}:4", f"{path}:5", f"{path}:7"]
    assert bad[0][1].startswith("not valid JSON")
    assert bad[1][1] == 'not a corpus line (needs "_id", "title", "text")'
    # The hash is of the line's bytes: another line with the same text hashes differently.
    assert sources[0].sha256 != sources[1].sha256
