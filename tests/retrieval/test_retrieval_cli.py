"""`charter ingest`, `charter docs`, `charter search` through click, on the real embedder.

Success paths use CliRunner on the commands themselves; error paths also go through
`charter.cli.main` (the commands registered as the lead will) to see the one-line error a
user gets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from charter import cli as main_cli
from charter.errors import CharterError
from charter.retrieval.cli import docs_group, ingest_cmd, search_cmd
from charter.retrieval.embed import get_embedder
from tests.retrieval.test_documents import make_pdf, write


@pytest.fixture(scope="module", autouse=True)
def _torch_threads_restored() -> Iterator[None]:
    """get_embedder() sets torch to one thread for the process; other tests get theirs back."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", autouse=True)
def _model_loaded_once(_torch_threads_restored: None) -> None:
    get_embedder().load()  # once per process: get_embedder is a singleton


@pytest.fixture(autouse=True)
def _no_store_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own CHARTER_RETRIEVAL_STORE must not leak into these tests."""
    monkeypatch.delenv("CHARTER_RETRIEVAL_STORE", raising=False)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store.sqlite")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write(root / "install.md", "# Installing\n\nRun pip install charter, then charter serve.\n")
    write(root / "cooking.txt", "Whisk two eggs with sugar, then fold in the flour gently.")
    write(root / "manual.pdf", make_pdf(["Safety first.", "The red button stops the machine."]))
    write(root / "junk.txt", b"\x00\x00binary")
    return root


def invoke(cmd, *args: str) -> Result:
    return CliRunner().invoke(cmd, list(args), catch_exceptions=True)


def one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str]:
    """Run `charter ARGV` through the real entry point; return (exit code, stderr)."""
    for cmd in (ingest_cmd, docs_group, search_cmd):
        monkeypatch.setitem(main_cli.cli.commands, cmd.name, cmd)
    rc = main_cli.main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("charter: error: "), err
    return rc, err.strip()


def test_ingest_prints_skips_then_the_summary(folder: Path, store: str) -> None:
    result = invoke(ingest_cmd, str(folder), "--store", store)
    assert result.exit_code == 0, result.output
    assert result.stdout == "ingested 3, unchanged 0, skipped 1 (see above)\n"
    assert result.stderr == f"skipped {folder / 'junk.txt'}: binary data (NUL bytes), not text\n"
    again = invoke(ingest_cmd, str(folder), "--store", store)
    assert again.stdout == "ingested 0, unchanged 3, skipped 1 (see above)\n"


def test_default_store_lives_in_charter_home(folder: Path, _isolated_home: Path) -> None:
    assert invoke(ingest_cmd, str(folder / "install.md")).exit_code == 0
    assert (_isolated_home / "retrieval.sqlite").exists()
    listed = invoke(docs_group, "list")
    assert listed.stdout.split() == ["COLLECTION", "DOCUMENTS", "CHUNKS", "default", "1", "1"]


def test_the_store_setting_is_the_default_and_the_flag_wins(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured, flagged = tmp_path / "configured.sqlite", tmp_path / "flagged.sqlite"
    monkeypatch.setenv("CHARTER_RETRIEVAL_STORE", str(configured))
    assert invoke(ingest_cmd, str(folder / "install.md")).exit_code == 0
    assert invoke(ingest_cmd, str(folder / "cooking.txt"), "--store", str(flagged)).exit_code == 0
    assert json.loads(invoke(docs_group, "list", "--json").stdout)[0]["documents"] == 1
    docs = json.loads(invoke(docs_group, "list", "--json", "--collection", "default").stdout)
    assert [Path(d["doc_id"]).name for d in docs] == ["install.md"]
    docs = json.loads(
        invoke(
            docs_group, "list", "--json", "--collection", "default", "--store", str(flagged)
        ).stdout
    )
    assert [Path(d["doc_id"]).name for d in docs] == ["cooking.txt"]


def test_docs_list_collections_and_documents(folder: Path, store: str) -> None:
    invoke(ingest_cmd, str(folder), "--store", store, "--collection", "kb")
    data = json.loads(invoke(docs_group, "list", "--json", "--store", store).stdout)
    assert data == [{"collection": "kb", "documents": 3, "chunks": 4}]
    docs = json.loads(
        invoke(docs_group, "list", "--collection", "kb", "--json", "--store", store).stdout
    )
    assert sorted((Path(d["doc_id"]).name, d["chunks"], d["title"]) for d in docs) == [
        ("cooking.txt", 1, "cooking"),
        ("install.md", 1, "Installing"),
        ("manual.pdf", 2, "manual"),
    ]
    table = invoke(docs_group, "list", "--collection", "kb", "--store", store).stdout
    assert table.splitlines()[0].split() == ["CHUNKS", "INGESTED", "DOCUMENT", "TITLE"]
    assert str(folder / "manual.pdf") in table
    empty = str(Path(store).with_name("empty.sqlite"))
    assert invoke(docs_group, "list", "--json", "--store", empty).stdout.strip() == "[]"
    assert "charter ingest" in invoke(docs_group, "list", "--store", empty).stderr


def test_search_finds_by_meaning_and_cites_page(folder: Path, store: str) -> None:
    invoke(ingest_cmd, str(folder), "--store", store)
    result = invoke(search_cmd, "how do I halt the device", "--store", store, "-k", "1", "--json")
    assert result.exit_code == 0, result.output
    (hit,) = json.loads(result.stdout)
    assert hit["chunk"]["text"] == "The red button stops the machine."
    assert hit["chunk"]["page"] == 2 and hit["chunk"]["doc_id"] == str(folder / "manual.pdf")
    assert hit["rank"] == 1 and hit["dense_rank"] == 1
    text = invoke(search_cmd, "pip install", "--store", store, "--mode", "bm25").stdout
    lines = text.splitlines()
    assert lines[0] == f"1. Installing  ({folder / 'install.md'}, § Installing)"
    assert lines[1].startswith("   score ") and "bm25 #1" in lines[1] and "dense" not in lines[1]
    assert lines[2] == "   # Installing Run pip install charter, then charter serve."


def test_batch_search_writes_a_trec_run_of_documents(tmp_path: Path, store: str) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        ("a1", "Boundary layers", "Laminar boundary layer transition on flat plates."),
        ("b2", "Shock waves", "Normal shock waves in supersonic nozzle flow."),
        ("c3", "Heat transfer", "Heat conduction in composite slabs."),
    ]
    corpus.write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in rows)
    )
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": "q1", "text": "supersonic shock"}\n{"_id": "q2", "text": "heat"}\n')
    assert invoke(ingest_cmd, str(corpus), "--store", store, "--collection", "cran").exit_code == 0
    run = tmp_path / "run.tsv"
    result = invoke(
        search_cmd, "--batch", str(queries), "--collection", "cran", "-k", "2",
        "--run", str(run), "--tag", "hyb", "--store", store,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote {run}: 2 queries, 4 lines\n"
    lines = [line.split() for line in run.read_text().splitlines()]
    assert [(q, z, d, r, t) for q, z, d, r, _s, t in lines][::2] == [
        ("q1", "Q0", "b2", "1", "hyb"),
        ("q2", "Q0", "c3", "1", "hyb"),
    ]
    assert [line[3] for line in lines] == ["1", "2", "1", "2"]
    assert float(lines[0][4]) > float(lines[1][4])


def test_docs_remove_by_path_id_folder_and_all(folder: Path, tmp_path: Path, store: str) -> None:
    invoke(ingest_cmd, str(folder), "--store", store)
    corpus = write(
        tmp_path / "c.jsonl", '{"_id": "x1", "text": "one"}\n{"_id": "x2", "text": "two"}\n'
    )
    invoke(ingest_cmd, str(corpus), "--store", store)
    removed = invoke(docs_group, "remove", str(folder / "cooking.txt"), "x1", "--store", store)
    assert removed.stdout == "removed 2 documents from 'default'\n"
    assert invoke(docs_group, "remove", str(corpus), "--store", store).stdout == (
        "removed 1 document from 'default'\n"
    )
    assert invoke(docs_group, "remove", str(folder), "--store", store).stdout == (
        "removed 2 documents from 'default'\n"
    )
    invoke(ingest_cmd, str(folder), "--store", store, "--collection", "kb")
    assert invoke(docs_group, "remove", "--collection", "kb", "--all", "--store", store).stdout == (
        "removed 3 documents and collection 'kb'\n"
    )
    assert json.loads(invoke(docs_group, "list", "--json", "--store", store).stdout) == []


def test_remove_nothing_unless_every_target_matches(folder: Path, store: str) -> None:
    invoke(ingest_cmd, str(folder), "--store", store)
    result = invoke(docs_group, "remove", str(folder / "install.md"), "nope", "--store", store)
    assert isinstance(result.exception, CharterError)
    assert str(result.exception) == "no document 'nope' in collection 'default'"
    data = json.loads(invoke(docs_group, "list", "--json", "--store", store).stdout)
    assert data[0]["documents"] == 3


@pytest.mark.parametrize(
    ("argv", "message", "code"),
    [
        (
            ["search", "q", "--collection", "nope"],
            "no collection 'nope'; known collections: default",
            2,
        ),
        (["ingest", "{folder}/missing.txt"], "no such file or directory: {folder}/missing.txt", 2),
        (["docs", "remove", "--all"], "--all needs --collection NAME: the collection to empty", 2),
        (["docs", "list", "--collection", "nope"], "no collection 'nope'", 2),
        (["search"], "give a QUERY or --batch FILE (one of the two)", 2),
        (["search", "--batch", "{queries}"], "{queries}:2: not valid JSON", 2),
        (
            ["ingest", "{folder}", "--store", "{folder}/install.md"],
            "is not a usable retrieval store",
            2,
        ),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
    code: int,
) -> None:
    queries = write(
        tmp_path / "q.jsonl", '{"_id": "1", "text": "ok"}\n{"_id": "2", "text": oops}\n'
    )
    assert CliRunner().invoke(ingest_cmd, [str(folder / "install.md")]).exit_code == 0
    fill = {"folder": str(folder), "queries": str(queries)}
    rc, err = one_line_error(monkeypatch, capsys, *[a.format(**fill) for a in argv])
    assert rc == code
    assert message.format(**fill) in err
