"""The retrieval store seam: what any engine that keeps chunks, vectors and a keyword index
must offer, so ingest and search never know whether SQLite or PostgreSQL is underneath.

`open_store(location)` picks the engine from the location: a `postgresql://` URL or a file.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charter.errors import ConfigError

if TYPE_CHECKING:
    from charter.retrieval.sqlite_store import SQLiteStore

__all__ = [
    "ChunkRecord",
    "DocumentRecord",
    "SQLiteStore",
    "Store",
    "chunk_id",
    "open_store",
]


@dataclass(frozen=True)
class ChunkRecord:
    """One searchable piece of a document.

    `start`/`end` are character offsets of `text` in the document's full extracted text
    (`full_text[start:end] == text`); `doc_id` is the file path (absolute, as ingested) or a
    corpus line's `_id`; `page` is 1-based (PDF only); `heading` the nearest heading above.
    """

    id: str
    collection: str
    doc_id: str
    title: str
    ordinal: int
    text: str
    start: int
    end: int
    page: int | None
    heading: str | None


@dataclass(frozen=True)
class DocumentRecord:
    """A whole ingested document; `sha256` is of its source bytes (file or JSONL line)."""

    collection: str
    doc_id: str
    title: str
    source: str | None
    sha256: str
    chunks: int
    ingested_at: float


class Store(ABC):
    """Chunks with their vectors and a keyword index, grouped in named collections.

    Every write is one transaction: a reader sees a document whole or not at all.
    """

    dim: int

    @abstractmethod
    def document_hash(self, collection: str, doc_id: str) -> str | None:
        """The stored sha256 of the document, or None when it is not stored."""

    @abstractmethod
    def replace_document(
        self, doc: DocumentRecord, chunks: list[ChunkRecord], vectors: np.ndarray
    ) -> None:
        """In one transaction: remove the document's old chunks, store the new ones.

        `vectors` is float32 (len(chunks), dim), L2-normalised, in the order of `chunks`.
        """

    @abstractmethod
    def remove_document(self, collection: str, doc_id: str) -> bool:
        """Remove one document and its chunks; False when it was not there."""

    @abstractmethod
    def remove_collection(self, collection: str) -> int:
        """Remove every document of the collection; return how many were removed."""

    @abstractmethod
    def collections(self) -> list[tuple[str, int, int]]:
        """(name, documents, chunks) for every collection, by name."""

    @abstractmethod
    def documents(self, collection: str) -> list[DocumentRecord]:
        """The documents of a collection, by doc_id ([] for an unknown collection)."""

    @abstractmethod
    def keyword_search(self, collection: str, query: str, k: int) -> list[tuple[str, float]]:
        """Best `k` (chunk id, score) by BM25 over the user's words; higher is better.

        `query` is free text: quotes, operators and punctuation are taken as plain words.
        """

    @abstractmethod
    def vector_search(self, collection: str, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """Best `k` (chunk id, cosine similarity) for a normalised query vector."""

    @abstractmethod
    def chunks(self, ids: list[str]) -> list[ChunkRecord]:
        """The chunks with these ids, in the order given (ids no longer stored are left out)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and caches."""

    # -- conveniences built on the methods above (engines may override) ---------------
    def collection_names(self) -> list[str]:
        return [name for name, _docs, _chunks in self.collections()]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def chunk_id(collection: str, doc_id: str, sha256: str, ordinal: int) -> str:
    """A chunk id that is stable while the document's content is, and new when it changes.

    So a citation kept from an earlier answer never points at text that has since changed.
    """
    key = hashlib.sha256(f"{collection}\0{doc_id}\0{sha256}".encode()).hexdigest()[:20]
    return f"c{key}-{ordinal}"


def open_store(location: str | Path, dim: int = 384) -> Store:
    """Open (creating if needed) the store at `location`.

    "postgresql://..." opens charter.retrieval.pg_store.PgStore (needs `charter[pg]`);
    anything else is a SQLite file path. Raises ConfigError when it cannot be opened.
    """
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from charter.retrieval.pg_store import PgStore
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"a PostgreSQL store needs the {exc.name} package: pip install 'charter[pg]'"
            ) from None
        return PgStore(text, dim=dim)
    from charter.retrieval.sqlite_store import SQLiteStore

    return SQLiteStore(Path(text).expanduser(), dim=dim)


def __getattr__(name: str) -> Any:
    # SQLiteStore lives in its own module (which imports this one); re-export it lazily.
    if name == "SQLiteStore":
        from charter.retrieval.sqlite_store import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
