"""`charter ingest`, `charter docs list|remove` and `charter search`: flags in, library calls,
text out. The main CLI registers these; CharterErrors raised here become one-line errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from charter.config import load_settings
from charter.errors import ConfigError, NotFoundError
from charter.retrieval.search import MODES
from charter.retrieval.store import DocumentRecord, Store, open_store

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
DEFAULT_COLLECTION = "default"

store_option = click.option(
    "--store",
    "store_location",
    metavar="PATH|URL",
    default=None,
    help="The retrieval store: a SQLite file or a postgresql:// URL (default: "
    "CHARTER_RETRIEVAL_STORE, else CHARTER_HOME/retrieval.sqlite).",
)


@contextlib.contextmanager
def opened_store(location: str | None) -> Iterator[Store]:
    """The store at --store, else the configured one; closed on leaving."""
    store = open_store(load_settings(retrieval_store=location).retrieval_location)
    try:
        yield store
    finally:
        store.close()


def _say(message: str) -> None:
    """A line on stderr that does not break a progress bar drawn there."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


# -- charter ingest ------------------------------------------------------------------------
@click.command("ingest", context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...", type=click.Path())
@click.option(
    "--collection",
    default=DEFAULT_COLLECTION,
    show_default=True,
    help="The collection to add the documents to.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Also remove documents that were ingested from these paths but are gone now.",
)
@store_option
def ingest_cmd(paths: tuple[str, ...], collection: str, prune: bool, store_location: str | None):
    """Add documents for grounded answers: files, folders, or JSONL corpora.

    Reads .txt, .md, .html/.htm, .pdf (its text layer) and .jsonl corpora (one
    {"_id", "title", "text"} document a line); folders are walked recursively. Unchanged
    documents are skipped and changed ones replaced, so running it again is cheap. Files
    that cannot be read are reported and skipped.
    """
    from charter.retrieval.embed import MiniLMEmbedder
    from charter.retrieval.ingest import ingest

    with opened_store(store_location) as store:
        report = ingest(
            [Path(p) for p in paths],
            store,
            collection,
            # Bulk work in a process of its own: all the cores torch wants.
            embedder=MiniLMEmbedder(),
            prune=prune,
            on_skip=lambda name, reason: _say(f"skipped {name}: {reason}"),
        )
    for doc_id in report.removed:
        _say(f"removed {doc_id} (no longer present)")
    click.echo(report.summary())


# -- charter docs --------------------------------------------------------------------------
@click.group("docs", context_settings=CONTEXT)
def docs_group() -> None:
    """List and remove ingested documents."""


@docs_group.command("list", context_settings=CONTEXT)
@click.option("--collection", default=None, help="List this collection's documents.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@store_option
def docs_list(collection: str | None, as_json: bool, store_location: str | None) -> None:
    """Collections with their document and chunk counts, or one collection's documents."""
    with opened_store(store_location) as store:
        if collection is None:
            rows = store.collections()
            if as_json:
                data = [{"collection": n, "documents": d, "chunks": c} for n, d, c in rows]
                click.echo(json.dumps(data, indent=2))
            elif not rows:
                click.echo("no documents yet: add some with `charter ingest PATH`", err=True)
            else:
                _table(
                    [("COLLECTION", "DOCUMENTS", "CHUNKS")]
                    + [(n, str(d), str(c)) for n, d, c in rows]
                )
            return
        _check_collection(store, collection)
        docs = store.documents(collection)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(d) for d in docs], indent=2, ensure_ascii=False))
        return
    _table([("CHUNKS", "INGESTED", "DOCUMENT", "TITLE")] + [_doc_row(d) for d in docs])


def _doc_row(d: DocumentRecord) -> tuple[str, ...]:
    import datetime as dt

    when = dt.datetime.fromtimestamp(d.ingested_at).strftime("%Y-%m-%d %H:%M")
    return (str(d.chunks), when, d.doc_id, d.title)


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1])


def _check_collection(store: Store, collection: str) -> None:
    from charter.retrieval.search import Retriever

    Retriever(store).check_collection(collection)


@docs_group.command("remove", context_settings=CONTEXT)
@click.argument("targets", nargs=-1, metavar="[PATH_OR_ID]...")
@click.option(
    "--collection",
    default=None,
    help=f"The collection to remove from (default: {DEFAULT_COLLECTION}).",
)
@click.option("--all", "remove_all", is_flag=True, help="Remove every document of --collection.")
@store_option
def docs_remove(
    targets: tuple[str, ...], collection: str | None, remove_all: bool, store_location: str | None
) -> None:
    """Remove documents by id or path; a folder or a JSONL corpus removes all that came from
    it. Nothing is removed unless every PATH_OR_ID matches."""
    if remove_all:
        if targets:
            raise ConfigError("give either documents to remove or --all, not both")
        if collection is None:
            raise ConfigError("--all needs --collection NAME: the collection to empty")
    elif not targets:
        raise ConfigError("name documents to remove (ids or paths), or --collection C --all")
    collection = collection or DEFAULT_COLLECTION
    with opened_store(store_location) as store:
        _check_collection(store, collection)
        if remove_all:
            n = store.remove_collection(collection)
            click.echo(f"removed {n} document{'s' * (n != 1)} and collection {collection!r}")
            return
        doc_ids = matching_documents(store.documents(collection), targets, collection)
        for doc_id in doc_ids:
            store.remove_document(collection, doc_id)
    n = len(doc_ids)
    click.echo(f"removed {n} document{'s' * (n != 1)} from {collection!r}")


def matching_documents(docs: list[DocumentRecord], targets: tuple[str, ...], collection: str):
    """The doc_ids that the targets name: an id, a file, a folder (everything under it), or a
    JSONL corpus (every document from it). NotFoundError names a target matching nothing."""
    chosen: dict[str, None] = {}
    for target in targets:
        path = os.path.abspath(os.path.expanduser(target))
        under = path.rstrip(os.sep) + os.sep
        found = [
            d.doc_id
            for d in docs
            if d.doc_id in (target, path)
            or d.source == path
            or d.doc_id.startswith(under)
            or (d.source or "").startswith(under)
        ]
        if not found:
            raise NotFoundError(f"no document {target!r} in collection {collection!r}")
        chosen.update(dict.fromkeys(found))
    return list(chosen)


# -- charter search ------------------------------------------------------------------------
@click.command("search", context_settings=CONTEXT)
@click.argument("query", required=False)
@click.option("--collection", default=DEFAULT_COLLECTION, show_default=True)
@click.option(
    "-k",
    "k",
    type=click.IntRange(min=1),
    default=None,
    help="How many results: chunks (default 5), or documents per query with --batch (10).",
)
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
@click.option(
    "--batch",
    type=click.Path(path_type=Path),
    default=None,
    help='Run every query of a JSONL file ({"_id", "text"} a line) instead of QUERY.',
)
@click.option(
    "--run",
    "run_path",
    type=click.Path(path_type=Path),
    default=None,
    help="With --batch: write the TREC run (qid Q0 docid rank score tag) here "
    "(default: standard output).",
)
@click.option("--tag", default="charter", show_default=True, help="The run's tag column.")
@store_option
def search_cmd(
    query: str | None,
    collection: str,
    k: int | None,
    mode: str,
    as_json: bool,
    batch: Path | None,
    run_path: Path | None,
    tag: str,
    store_location: str | None,
) -> None:
    """Search a collection: best chunks with their document, page and heading.

    Hybrid mode fuses BM25 and embedding similarity. With --batch, ranks documents for
    each query and writes a TREC run (docid: the document's id, e.g. a corpus _id).
    """
    from charter.retrieval.search import Retriever
    from charter.retrieval.trec import check_tag, read_queries, write_run

    if (query is None) == (batch is None):
        raise ConfigError("give a QUERY or --batch FILE (one of the two)")
    if batch is None:
        if run_path is not None:
            raise ConfigError("--run needs --batch")
        with opened_store(store_location) as store:
            hits = Retriever(store).search(query or "", collection, k=k or 5, mode=mode)
        _print_hits(hits, as_json)
        return
    check_tag(tag)
    queries = read_queries(batch)  # a bad line fails here, before any search
    with opened_store(store_location) as store:
        retriever = Retriever(store)
        retriever.check_collection(collection)
        run = _batch_run(retriever, queries, collection, k or 10, mode)
    if run_path is None:
        write_run(sys.stdout, run, tag)
        return
    with open(run_path, "w", encoding="utf-8") as out:
        lines = write_run(out, run, tag)
    _say(f"wrote {run_path}: {len(run)} queries, {lines} lines")


def _batch_run(retriever, queries, collection: str, k: int, mode: str):
    from tqdm import tqdm

    run = {}
    for qid, text in tqdm(queries, unit="query", disable=not sys.stderr.isatty(), file=sys.stderr):
        docs = retriever.search_documents(text, collection, k=k, mode=mode)
        run[qid] = [(d.doc_id, d.score) for d in docs]
    return run


def _print_hits(hits, as_json: bool) -> None:
    if as_json:
        data = [
            {
                "rank": i,
                "score": h.score,
                "bm25_rank": h.bm25_rank,
                "dense_rank": h.dense_rank,
                "bm25_score": h.bm25_score,
                "dense_score": h.dense_score,
                "chunk": dataclasses.asdict(h.chunk),
            }
            for i, h in enumerate(hits, 1)
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if not hits:
        click.echo("no matches", err=True)
        return
    for i, h in enumerate(hits, 1):
        c = h.chunk
        where = (
            [c.doc_id]
            + ([f"p. {c.page}"] if c.page else [])
            + ([f"§ {c.heading}"] if c.heading else [])
        )
        found = [f"bm25 #{h.bm25_rank}"] * (h.bm25_rank is not None) + [
            f"dense #{h.dense_rank}"
        ] * (h.dense_rank is not None)
        click.echo(f"{i}. {c.title or c.doc_id}  ({', '.join(where)})")
        click.echo(f"   score {h.score:.4f}: {', '.join(found)}")
        snippet = " ".join(c.text.split())
        click.echo(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}")
