"""Ingest: reports and summary, idempotent re-runs, prune, JSONL corpora, shared embedding
batches, and only whole documents after a crash (kill -9) or a failure."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from charter.errors import NotFoundError
from charter.retrieval.documents import load_file
from charter.retrieval.embed import HashEmbedder
from charter.retrieval.ingest import EMBED_BATCH, ingest, passage_text
from charter.retrieval.search import Retriever
from charter.retrieval.sqlite_store import SQLiteStore
from charter.retrieval.store import Store, chunk_id
from tests.retrieval.test_documents import make_pdf, write


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "r.sqlite")
    yield s
    s.close()


def run(paths: list[Path], store: Store, **kw) -> tuple[object, list[tuple[str, str]]]:
    skipped: list[tuple[str, str]] = []
    report = ingest(
        paths, store, embedder=HashEmbedder(), on_skip=lambda n, r: skipped.append((n, r)), **kw
    )
    return report, skipped


def sentences(n: int, tag: str) -> str:
    return " ".join(f"The {tag} sentence number {i} is here." for i in range(n))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write(root / "guide.md", "# Guide\n\nInstall with pip.\n\n## Usage\n\nAsk questions.\n")
    write(root / "page.html", "<title>Page</title><h1>Zebra</h1><p>Stripes are black.</p>")
    write(root / "notes.txt", sentences(80, "notes"))
    write(root / "sub/report.pdf", make_pdf(["Page one about walruses.", "Page two, penguins."]))
    write(root / "sub/locked.pdf", make_pdf(["secret"], user_password="pw"))
    write(root / "binary.txt", b"\x00\x01\x02")
    write(root / "latin.md", "caf\xe9".encode("latin-1"))
    write(root / "empty.txt", b"")
    write(root / "ignored.png", b"\x89PNG")
    return root


def test_ingest_reports_skips_and_summarises(folder: Path, store: SQLiteStore) -> None:
    report, skipped = run([folder], store)
    assert report.summary() == "ingested 4, unchanged 0, skipped 4 (see above)"
    assert sorted((Path(n).name, r) for n, r in skipped) == [
        ("binary.txt", "binary data (NUL bytes), not text"),
        ("empty.txt", "empty file"),
        ("latin.md", "not UTF-8 text (undecodable byte at offset 3)"),
        ("locked.pdf", "encrypted PDF (needs a password)"),
    ]
    docs = {Path(d.doc_id).name: d for d in store.documents("default")}
    assert sorted(docs) == ["guide.md", "notes.txt", "page.html", "report.pdf"]
    assert [docs[n].chunks for n in ("guide.md", "page.html", "report.pdf")] == [2, 1, 2]
    assert docs["notes.txt"].chunks > 1  # 640 words: split
    assert report.chunks == sum(d.chunks for d in docs.values())
    assert all(Path(d.doc_id).is_absolute() and d.source == d.doc_id for d in docs.values())


def test_chunks_point_back_into_the_extracted_text(folder: Path, store: SQLiteStore) -> None:
    run([folder], store)
    for doc in store.documents("default"):
        text = load_file(Path(doc.doc_id)).text
        ids = [chunk_id("default", doc.doc_id, doc.sha256, i) for i in range(doc.chunks)]
        chunks = store.chunks(ids)
        assert len(chunks) == doc.chunks
        assert all(text[c.start : c.end] == c.text for c in chunks)
    pdf = str(folder / "sub" / "report.pdf")
    found = Retriever(store, HashEmbedder()).search("walruses", k=10)
    pages = [(h.chunk.page, h.chunk.text) for h in found]
    assert (1, "Page one about walruses.") in pages
    (heading,) = {
        h.chunk.heading for h in Retriever(store, HashEmbedder()).search("questions", k=1)
    }
    assert heading == "Usage"
    assert store.document_hash("default", pdf) is not None


def test_reingest_is_idempotent_and_replaces_changed_files(
    folder: Path, store: SQLiteStore
) -> None:
    run([folder], store)
    before = {d.doc_id: d for d in store.documents("default")}
    report, _ = run([folder], store)
    assert (report.ingested, report.unchanged) == (0, 4)
    assert {d.doc_id: d for d in store.documents("default")} == before

    guide = folder / "guide.md"
    guide.write_text("# Guide\n\nNow with conda.\n")
    report, _ = run([folder], store)
    assert (report.ingested, report.unchanged) == (1, 3)
    new = {d.doc_id: d for d in store.documents("default")}
    old_doc = before[str(guide.absolute())]
    assert new[old_doc.doc_id].sha256 != old_doc.sha256
    old_ids = [
        chunk_id("default", old_doc.doc_id, old_doc.sha256, i) for i in range(old_doc.chunks)
    ]
    assert store.chunks(old_ids) == []
    assert store.keyword_search("default", "pip", 5) == []
    assert len(store.keyword_search("default", "conda", 5)) == 1


def test_vanished_files_stay_until_pruned_and_prune_stays_inside_its_paths(
    folder: Path, tmp_path: Path, store: SQLiteStore
) -> None:
    elsewhere = write(tmp_path / "other" / "keep.txt", "Kept elsewhere.")
    run([folder, elsewhere], store)
    (folder / "page.html").unlink()
    report, _ = run([folder], store)
    assert (report.ingested, report.unchanged, report.removed) == (0, 3, [])
    assert len(store.documents("default")) == 5
    report, _ = run([folder], store, prune=True)
    assert report.removed == [str((folder / "page.html").absolute())]
    assert report.summary() == (
        "ingested 0, unchanged 3, skipped 4 (see above), removed 1 no longer present"
    )
    names = sorted(Path(d.doc_id).name for d in store.documents("default"))
    assert names == ["guide.md", "keep.txt", "notes.txt", "report.pdf"]


def test_jsonl_corpus_idempotent_by_line(tmp_path: Path, store: SQLiteStore) -> None:
    rows = [
        {"_id": str(i), "title": f"Doc {i}", "text": f"Text of document {i}."} for i in range(5)
    ]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report, _ = run([path], store, collection="corp")
    assert (report.ingested, report.chunks) == (5, 5)
    docs = store.documents("corp")
    assert [d.doc_id for d in docs] == ["0", "1", "2", "3", "4"]
    assert {d.source for d in docs} == {str(path.absolute())}
    rows[2]["text"] = "Changed text."
    rows.append({"_id": "1", "title": "again", "text": "duplicate id"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report, skipped = run([path], store, collection="corp")
    assert (report.ingested, report.unchanged) == (1, 4)
    assert skipped == [
        (f"{path}:6 (_id 1)", "duplicate of a document already read in this run (1)")
    ]


def test_prune_leaves_a_corpus_with_unreadable_lines_alone(
    tmp_path: Path, store: SQLiteStore
) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "alpha"}\n{"_id": "b", "text": "beta"}\n')
    run([path], store)
    path.write_text('{"_id": "a", "text": "alpha"}\n{"_id": "b", "text": \n')  # b's line broke
    report, skipped = run([path], store, prune=True)
    assert [r for _, r in skipped][0].startswith("not valid JSON")
    assert report.removed == []
    path.write_text('{"_id": "a", "text": "alpha"}\n')  # b really gone
    report, _ = run([path], store, prune=True)
    assert report.removed == ["b"]


class CountingEmbedder(HashEmbedder):
    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.fail_after = fail_after

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise RuntimeError("embedding failed")
        self.batches.append(len(texts))
        return super().encode(texts)


def corpus(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "many.jsonl"
    path.write_text(
        "".join(json.dumps({"_id": str(i), "text": f"doc {i}."}) + "\n" for i in range(n))
    )
    return path


def test_small_documents_share_embedding_batches(tmp_path: Path, store: SQLiteStore) -> None:
    embedder = CountingEmbedder()
    ingest([corpus(tmp_path, 150)], store, embedder=embedder)
    assert embedder.batches == [EMBED_BATCH, EMBED_BATCH, 150 - 2 * EMBED_BATCH]


def test_a_failure_leaves_whole_documents_and_a_rerun_finishes(
    tmp_path: Path, store: SQLiteStore
) -> None:
    path = corpus(tmp_path, 150)
    with pytest.raises(RuntimeError, match="embedding failed"):
        ingest([path], store, embedder=CountingEmbedder(fail_after=1))
    assert len(store.documents("default")) == EMBED_BATCH
    report = ingest([path], store, embedder=HashEmbedder())
    assert (report.ingested, report.unchanged) == (150 - EMBED_BATCH, EMBED_BATCH)


CRASHING_INGEST = """
import sys, time
from pathlib import Path
from charter.retrieval.embed import HashEmbedder
from charter.retrieval.ingest import ingest
from charter.retrieval.store import open_store

class Slow(HashEmbedder):
    def encode(self, texts):
        time.sleep(0.05)
        return super().encode(texts)

ingest([Path(sys.argv[2])], open_store(sys.argv[1]), embedder=Slow(), max_words=6)
"""


def assert_only_whole_documents(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
        per_doc = db.execute(
            "SELECT d.doc_id, d.chunks, COUNT(c.id), MIN(c.ordinal), MAX(c.ordinal) "
            "FROM documents d LEFT JOIN chunks c USING (collection, doc_id) GROUP BY d.doc_id"
        ).fetchall()
        assert db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == sum(r[1] for r in per_doc)
    finally:
        db.close()
    for doc_id, expected, count, first, last in per_doc:
        assert (count, first, last) == (expected, 0, expected - 1), doc_id
    return len(per_doc)


def test_kill_9_mid_ingest_leaves_whole_documents(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for i in range(40):
        write(docs / f"doc{i:02}.txt", sentences(40, f"d{i}"))  # ~40 chunks of 6 words each
    db = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_INGEST, str(db), str(docs)])
    try:
        deadline = time.monotonic() + 120
        stored = 0
        while time.monotonic() < deadline and proc.poll() is None and stored < 3:
            time.sleep(0.05)
            if db.exists():
                with SQLiteStore(db) as s:
                    stored = len(s.documents("default"))
        assert proc.poll() is None, "ingest finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    survived = assert_only_whole_documents(db)
    assert 3 <= survived < 40
    with SQLiteStore(db) as s:
        report = ingest([docs], s, embedder=HashEmbedder(), max_words=6)
    assert (report.ingested, report.unchanged) == (40 - survived, survived)
    assert assert_only_whole_documents(db) == 40


def test_missing_path_fails_before_anything_is_written(tmp_path: Path, store: SQLiteStore) -> None:
    good = write(tmp_path / "a.txt", "text")
    with pytest.raises(NotFoundError, match="no such file or directory: .*nope"):
        run([good, tmp_path / "nope"], store)
    assert store.collections() == []


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    folder: Path, store: SQLiteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest([folder], store, embedder=HashEmbedder())
    assert capsys.readouterr().err == ""


def test_passage_text_adds_title_and_heading_only_when_missing() -> None:
    assert passage_text("Guide", "Usage", "Usage\n\nAsk.") == "Guide\nUsage\n\nAsk."
    assert passage_text("Wing theory", None, "wing theory . more") == "wing theory . more"
    assert passage_text("", None, "plain") == "plain"
