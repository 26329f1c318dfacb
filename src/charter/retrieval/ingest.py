"""Ingest files and corpora into a collection: extract, chunk, embed in batches, store.

Re-ingesting is idempotent: a document whose bytes (file, or JSONL line) hash the same is
skipped without being read further; a changed one is replaced in one transaction. Each
document is written in its own transaction, so a crash leaves only whole documents and a
re-run finishes the job. Files that cannot be used are reported and skipped.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from charter.errors import NotFoundError, RequestError
from charter.retrieval.chunking import DEFAULT_MAX_WORDS, Chunk, chunk_document
from charter.retrieval.documents import (
    Document,
    DocumentSkipped,
    Source,
    Unreadable,
    count_documents,
    find_files,
    iter_sources,
)
from charter.retrieval.embed import Embedder, get_embedder
from charter.retrieval.store import ChunkRecord, DocumentRecord, Store, chunk_id

#: Chunks embedded per model call (several small documents share one batch).
EMBED_BATCH = 64


@dataclass
class IngestReport:
    ingested: int = 0
    unchanged: int = 0
    #: (name, reason) for every file or corpus line left out.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: doc_ids removed by prune (their files are gone).
    removed: list[str] = field(default_factory=list)
    chunks: int = 0

    def summary(self) -> str:
        """`ingested N, unchanged M, skipped K (see above)`, plus what prune removed."""
        line = f"ingested {self.ingested}, unchanged {self.unchanged}, skipped {len(self.skipped)}"
        if self.skipped:
            line += " (see above)"
        if self.removed:
            line += f", removed {len(self.removed)} no longer present"
        return line


def passage_text(title: str, heading: str | None, text: str) -> str:
    """What is embedded for a chunk: its text, led by the document title and the heading
    when the text does not already start with them (a chunk from the middle of a document
    says little about what the document is)."""
    head = text[:300].lower()
    lead = [s for s in (title, heading) if s and s.strip().lower() not in head]
    return "\n".join([*lead, text])


def ingest(
    paths: list[Path],
    store: Store,
    collection: str = "default",
    *,
    embedder: Embedder | None = None,
    prune: bool = False,
    max_words: int = DEFAULT_MAX_WORDS,
    progress: bool | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> IngestReport:
    """Ingest files, folders (recursively: .txt .md .html .htm .pdf .jsonl) and JSONL corpora.

    Returns the report. With `prune`, documents that came from these paths but are no
    longer there are removed. `progress` None: a bar on stderr when it is a terminal.
    Raises NotFoundError (before ingesting anything) when a path does not exist.
    """
    if not collection or not collection.strip():
        raise RequestError("the collection name is empty")
    missing = [str(p) for p in paths if not os.path.exists(p)]
    if missing:
        raise NotFoundError(f"no such file or directory: {', '.join(missing)}")
    from tqdm import tqdm

    files: dict[str, Path] = {}  # absolute path -> as given (reports use the latter)
    for p in paths:
        for f in find_files(Path(p)):
            files.setdefault(os.path.abspath(f), f)
    report = IngestReport()
    run = _Run(store, collection, embedder, max_words, report)
    show = sys.stderr.isatty() if progress is None else progress
    total = sum(count_documents(f) for f in files.values())
    with tqdm(total=total, unit="doc", disable=not show, file=sys.stderr, leave=False) as bar:

        def skip(name: str, reason: str) -> None:
            report.skipped.append((name, reason))
            if on_skip:
                on_skip(name, reason)

        run.skip = skip
        for f in files.values():
            for item in iter_sources(f):
                run.add(item)
                bar.update(1)
        run.flush()
    if prune:
        report.removed = _prune(store, collection, paths, run)
    return report


class _Run:
    """One ingest: documents waiting for a shared embedding batch, and what was seen."""

    def __init__(
        self,
        store: Store,
        collection: str,
        embedder: Embedder | None,
        max_words: int,
        report: IngestReport,
    ):
        self.store, self.collection, self.max_words, self.report = (
            store,
            collection,
            max_words,
            report,
        )
        self._embedder = embedder
        self.pending: list[tuple[Document, list[Chunk]]] = []
        self.pending_chunks = 0
        self.seen: set[str] = set()
        #: Sources (JSONL files) with lines whose _id is unknown: never pruned from.
        self.incomplete: set[str] = set()
        self.skip: Callable[[str, str], None] = lambda name, reason: None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    def add(self, item: Source | Unreadable) -> None:
        if isinstance(item, Unreadable):
            if item.doc_id is None:
                self.incomplete.add(item.source)
            else:
                self.seen.add(item.doc_id)
            self.skip(item.name, item.reason)
            return
        if item.doc_id in self.seen:
            self.skip(
                item.name, f"duplicate of a document already read in this run ({item.doc_id})"
            )
            return
        self.seen.add(item.doc_id)
        if self.store.document_hash(self.collection, item.doc_id) == item.sha256:
            self.report.unchanged += 1
            return
        try:
            doc = item.load()
        except DocumentSkipped as exc:
            self.skip(item.name, str(exc))
            return
        chunks = chunk_document(doc, self.max_words)
        if not chunks:
            self.skip(item.name, "no text in it")
            return
        self.pending.append((doc, chunks))
        self.pending_chunks += len(chunks)
        if self.pending_chunks >= EMBED_BATCH:
            self.flush()

    def flush(self) -> None:
        """Embed the waiting documents' chunks together, then store each document alone."""
        if not self.pending:
            return
        texts = [
            passage_text(doc.title, c.heading, c.text)
            for doc, chunks in self.pending
            for c in chunks
        ]
        vectors = self.embedder.encode(texts)
        row = 0
        for doc, chunks in self.pending:
            records = [
                ChunkRecord(
                    id=chunk_id(self.collection, doc.doc_id, doc.sha256, i),
                    collection=self.collection,
                    doc_id=doc.doc_id,
                    title=doc.title,
                    ordinal=i,
                    text=c.text,
                    start=c.start,
                    end=c.end,
                    page=c.page,
                    heading=c.heading,
                )
                for i, c in enumerate(chunks)
            ]
            record = DocumentRecord(
                collection=self.collection,
                doc_id=doc.doc_id,
                title=doc.title,
                source=doc.source,
                sha256=doc.sha256,
                chunks=len(records),
                ingested_at=time.time(),
            )
            self.store.replace_document(record, records, vectors[row : row + len(records)])
            row += len(records)
            self.report.ingested += 1
            self.report.chunks += len(records)
        self.pending, self.pending_chunks = [], 0


def _prune(store: Store, collection: str, paths: list[Path], run: _Run) -> list[str]:
    """Remove documents whose source lies in `paths` but that this run did not see."""
    roots = [os.path.abspath(p) for p in paths]
    removed = []
    for doc in store.documents(collection):
        src = doc.source
        if src is None or doc.doc_id in run.seen or src in run.incomplete:
            continue
        inside = any(src == r or src.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
        if inside and store.remove_document(collection, doc.doc_id):
            removed.append(doc.doc_id)
    return removed
