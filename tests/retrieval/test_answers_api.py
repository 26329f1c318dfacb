"""Answers from documents over the HTTP API: the `charter.retrieval` request option, its
errors, GET /v1/collections, citations in plain and streamed responses and in the stored
conversation; and (slow) the same through a real server, the openai client and the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from charter.config import Settings
from charter.retrieval.embed import HashEmbedder
from charter.runtime import Runtime
from charter.server import create_app
from tests.conftest import fake_env
from tests.retrieval.test_stage import DOCS, QUESTION, make_collection
from tests.server.test_api import assert_error, sse_events

SCRIPT = "It opened in 1887 [1]. It is long [9]."


def make_client(home: Path, script: str = SCRIPT, **settings: object) -> TestClient:
    settings.setdefault("retrieval_min_score", 0.35)
    rt = Runtime(
        Settings(home=home, backend="fake", backend_options={"script": script}, **settings),
        embedder=HashEmbedder(),
    )
    return TestClient(create_app(rt))


@pytest.fixture
def client(_isolated_home: Path) -> Iterator[TestClient]:
    make_collection(_isolated_home, DOCS)
    with make_client(_isolated_home) as c:
        yield c


def chat(retrieval: object = None, question: str = QUESTION, **kw: object) -> dict:
    body: dict = {"model": "charter", "messages": [{"role": "user", "content": question}], **kw}
    if retrieval is not None:
        body["charter"] = {"retrieval": retrieval}
    return body


def retrieval_stage(charter: dict) -> dict | None:
    return next((s for s in charter["stages"] if s["stage"] == "retrieval"), None)


def test_collections_are_listed(client: TestClient) -> None:
    r = client.get("/v1/collections")
    assert r.status_code == 200
    assert r.json() == {
        "object": "list",
        "data": [{"id": "kb", "object": "collection", "documents": 2, "chunks": 2}],
        "default": None,
    }


def test_collections_before_any_ingest(_isolated_home: Path) -> None:
    with make_client(_isolated_home, retrieval_collection="handbook") as c:
        assert c.get("/v1/collections").json() == {
            "object": "list",
            "data": [],
            "default": "handbook",
        }


def test_answer_with_citations(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=chat({"collection": "kb", "k": 2}))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "It opened in 1887 [1]. It is long."
    ch = body["charter"]
    assert ch["final_text"] == "It opened in 1887 [1]. It is long."
    [cite] = ch["citations"]
    assert set(cite) == {
        "n",
        "doc_id",
        "title",
        "page",
        "start",
        "end",
        "quote",
        "score",
        "origin",
        "by",
    }
    assert (
        cite["n"] == 1 and cite["title"] == "Marrow Bridge" and cite["doc_id"].endswith("bridge.md")
    )
    assert "opened in 1887" in cite["quote"]
    stage = retrieval_stage(ch)
    assert stage["k"] == 2 and stage["marks"]["dropped"] == [{"mark": "[9]", "n": 9}]

    conv = client.get(f"/v1/conversations/{ch['conversation_id']}").json()
    stored = conv["messages"][-1]
    assert stored["content"] == "It opened in 1887 [1]. It is long."
    assert stored["charter"]["citations"] == ch["citations"]


def test_streamed_answer_ends_with_the_cleaned_text(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=chat({"collection": "kb"}, stream=True))
    assert r.status_code == 200
    events = sse_events(r.text)
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert streamed == SCRIPT  # tokens already sent keep the invalid mark ...
    last = events[-1]["charter"]
    assert last["final_text"] == "It opened in 1887 [1]. It is long."  # ... the end fixes it
    assert [c["n"] for c in last["citations"]] == [1]


def test_no_source_answer_over_the_api(client: TestClient) -> None:
    question = "Which gluons carry colour charge in chromodynamics?"
    r = client.post("/v1/chat/completions", json=chat({"collection": "kb"}, question=question))
    body = r.json()
    assert body["choices"][0]["message"]["content"].startswith("No source in the collection 'kb'")
    assert body["charter"]["citations"] == []
    stage = retrieval_stage(body["charter"])
    assert stage["answered"] is False and stage["threshold"] == 0.35
    assert body["usage"]["completion_tokens"] == 0


def test_default_collection_from_settings_and_switching_it_off(_isolated_home: Path) -> None:
    make_collection(_isolated_home, DOCS)
    with make_client(_isolated_home, retrieval_collection="kb") as c:
        on = c.post("/v1/chat/completions", json=chat()).json()
        assert retrieval_stage(on["charter"])["collection"] == "kb"
        for off in (False, {"enabled": False}, {"enabled": False, "collection": "kb"}):
            body = c.post("/v1/chat/completions", json=chat(off)).json()
            assert retrieval_stage(body["charter"]) is None and "citations" not in body["charter"]
            assert body["choices"][0]["message"]["content"] == SCRIPT
        assert c.post("/v1/chat/completions", json=chat(True)).json()["charter"]["citations"]


def test_retrieval_true_without_a_collection_is_a_400(client: TestClient) -> None:
    for value in (True, {}, {"k": 3}):
        r = client.post("/v1/chat/completions", json=chat(value))
        assert_error(
            r,
            400,
            param="charter.retrieval.collection",
            code="collection_required",
            contains="name a collection",
        )


def test_unknown_collection_is_a_404_naming_the_known_ones(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=chat({"collection": "handbook"}))
    err = assert_error(r, 404, param="charter.retrieval.collection", code="collection_not_found")
    assert "'handbook'" in err["message"] and "known collections: kb" in err["message"]
    assert client.get("/v1/conversations").json()["data"] == []


@pytest.mark.parametrize(
    ("charter", "param", "contains"),
    [
        ({"retrieval": {"collection": "kb", "k": 0}}, "charter.retrieval.k", "greater than"),
        ({"retrieval": {"collection": "kb", "k": 21}}, "charter.retrieval.k", "less than"),
        ({"retrieval": {"collection": "kb", "k": "many"}}, "charter.retrieval.k", "integer"),
        ({"retrieval": {"collection": ""}}, "charter.retrieval.collection", "at least 1"),
        ({"retrieval": {"collection": "kb", "top": 3}}, "charter.retrieval.top", "unrecognized"),
        ({"retrieval": "kb"}, "charter.retrieval", "valid dictionary"),
        ({"screens": True}, "charter.screens", "unrecognized"),
        ("retrieval", "charter", "valid dictionary"),
    ],
)
def test_bad_options_are_400s(
    client: TestClient, charter: object, param: str, contains: str
) -> None:
    body = chat()
    body["charter"] = charter
    assert_error(
        client.post("/v1/chat/completions", json=body), 400, param=param, contains=contains
    )


# -- slow: a real server on the real embedder, the openai client, the CLI -----------------------


@pytest.fixture(scope="module")
def minilm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CHARTER_HOME whose collection 'kb' is embedded with the real all-MiniLM-L6-v2."""
    from charter.retrieval.embed import get_embedder

    home = tmp_path_factory.mktemp("minilm") / "charter-home"
    make_collection(home, DOCS, embedder=get_embedder())
    return home


@pytest.mark.slow
def test_openai_client_with_extra_body(start_server, minilm_home: Path) -> None:  # noqa: ANN001
    from openai import OpenAI

    srv = start_server(env=fake_env(script=SCRIPT), home=minilm_home)
    client = OpenAI(base_url=f"{srv.url}/v1", api_key="unused")
    reply = client.chat.completions.create(
        model="charter",
        messages=[{"role": "user", "content": QUESTION}],
        extra_body={"charter": {"retrieval": {"collection": "kb", "k": 2}}},
    )
    assert reply.choices[0].message.content == "It opened in 1887 [1]. It is long."
    charter = reply.model_extra["charter"]
    assert charter["citations"][0]["title"] == "Marrow Bridge"
    stage = retrieval_stage(charter)
    # The real embedder's cosine for a matching passage is well above the default threshold.
    assert stage["top_score"] > 0.5 and stage["threshold"] == Settings().retrieval_min_score
    r = httpx.get(f"{srv.url}/v1/collections")
    assert [c["id"] for c in r.json()["data"]] == ["kb"]


@pytest.mark.slow
def test_cli_ask_and_chat_with_a_collection(minilm_home: Path) -> None:
    env = {**os.environ, **fake_env(script=SCRIPT), "CHARTER_HOME": str(minilm_home)}

    def charter(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "charter", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    p = charter("ask", "--collection", "kb", "--k", "2", QUESTION)
    assert p.returncode == 0, p.stderr
    answer, sources = p.stdout.split("Sources:\n")
    assert answer.strip() == SCRIPT  # streamed as written ...
    assert "removed [9]" in p.stderr  # ... and the removal is said
    assert sources.startswith("[1] Marrow Bridge (") and "bridge.md" in sources

    p = charter("ask", "--json", "--collection", "kb", QUESTION)
    body = json.loads(p.stdout)
    assert body["choices"][0]["message"]["content"] == "It opened in 1887 [1]. It is long."

    p = charter("chat", "--collection", "kb", stdin=f"{QUESTION}\n/exit\n")
    assert p.returncode == 0 and "Sources:\n[1] Marrow Bridge" in p.stdout

    p = charter("ask", "--collection", "handbook", QUESTION)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip() == ("charter: error: no collection 'handbook'; known collections: kb")
    p = charter("ask", "--k", "3", QUESTION)
    assert p.returncode != 0 and "--k needs --collection" in p.stderr
    p = charter("ask", "--collection", "kb", "--k", "50", QUESTION)
    assert p.returncode != 0 and "--k" in p.stderr and "Traceback" not in p.stderr
