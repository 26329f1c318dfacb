"""Answers from documents on the chat page, in a real headless Chromium against a real
`charter serve` (scripted backend, real MiniLM search over a small ingested collection):
the toggle and collection picker, [n] marks as links to the cited passage, an invalid mark
taken out when the answer ends, and the choice remembered per conversation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import fake_env
from tests.retrieval.test_stage import DOCS, QUESTION, make_collection
from tests.server.test_browser import (  # noqa: F401  (fixtures)
    StartServer,
    browser,
    last_assistant,
    open_page,
    page,
    send,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Streamed word by word, slowly enough that the invalid [9] is on screen before the end.
SCRIPT = "The Marrow Bridge opened in 1887 [1]. It is long [9]. Sandstone, `x[1]` aside [1]."
CLEAN = "The Marrow Bridge opened in 1887 [1]. It is long. Sandstone, x[1] aside [1]."


@pytest.fixture(scope="module")
def minilm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from charter.retrieval.embed import get_embedder

    home = tmp_path_factory.mktemp("browser-kb") / "charter-home"
    make_collection(home, DOCS, embedder=get_embedder())
    make_collection(home, {"tea.md": "# Tea\n\nGreen tea is steamed.\n"}, "tea", get_embedder())
    return home


def test_cited_answer_links_to_its_source(
    page: Page,  # noqa: F811
    start_server: StartServer,
    minilm_home: Path,
) -> None:
    srv = start_server(env=fake_env(script=SCRIPT, delay=0.1), home=minilm_home)
    open_page(page, srv.url + "/")
    toggle = page.get_by_test_id("use-docs")
    picker = page.get_by_test_id("collection-picker")
    expect(toggle).to_be_enabled()
    expect(picker.locator("option")).to_have_text(["kb (2 documents)", "tea (1 document)"])
    expect(toggle).not_to_be_checked()  # off until asked for (no default collection)
    toggle.check()
    picker.select_option("kb")

    send(page, QUESTION)
    answer = last_assistant(page)
    content = answer.get_by_test_id("message-content")
    # Streamed as the model wrote it (watched every frame; the server loads the embedding
    # model on its first search, so allow for that) ...
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-role="assistant"] .message-content')]
                   .some((el) => el.textContent.includes("It is long [9]"))""",
        polling="raf",
        timeout=120_000,
    )
    expect(answer).to_have_attribute("data-status", "complete")
    expect(content).to_have_text(CLEAN)  # ... and replaced by the checked text at the end

    def check_sources() -> None:
        content = last_assistant(page).get_by_test_id("message-content")
        links = content.get_by_test_id("citation-link")
        expect(links).to_have_count(2)  # the one inside code is not a citation
        expect(links.first).to_have_text("1")
        expect(content.locator("code")).to_have_text("x[1]")
        assert "[9]" not in content.inner_text()
        sources = last_assistant(page).get_by_test_id("citation")
        expect(sources).to_have_count(1)
        source = sources.first
        expect(source).to_have_attribute("data-n", "1")
        quote = source.get_by_test_id("citation-quote")
        expect(quote).to_be_hidden()  # collapsed until asked for
        links.first.click()
        expect(quote).to_be_visible()
        expect(quote).to_contain_text("The Marrow Bridge opened in 1887 over the river Kelm.")
        expect(source.locator("summary")).to_contain_text("[1] Marrow Bridge")
        expect(source).to_contain_text("bridge.md")
        expect(source).to_contain_text("characters")
        assert page.evaluate("location.hash").startswith("#c/")  # the click did not navigate

    check_sources()
    # Stored with the message: the same after a reload, and the toggle is remembered.
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-ready", "true")
    expect(last_assistant(page)).to_have_attribute("data-status", "complete")
    check_sources()
    expect(toggle).to_be_checked()
    expect(picker).to_have_value("kb")
    conversation_hash = page.evaluate("location.hash")

    # A new chat starts from the last choice; switching it off there answers without sources
    # and is remembered for that conversation only.
    page.get_by_test_id("new-chat").click()
    expect(toggle).to_be_checked()
    toggle.uncheck()
    send(page, "Just say something.")
    plain = last_assistant(page)
    expect(plain).to_have_attribute("data-status", "complete")
    expect(plain.get_by_test_id("message-content")).to_contain_text("It is long [9].")
    expect(plain.get_by_test_id("citation-link")).to_have_count(0)
    expect(plain.get_by_test_id("citations")).to_have_count(0)

    page.evaluate(f"location.hash = {conversation_hash!r}")
    expect(page.get_by_test_id("message")).to_have_count(2)
    expect(toggle).to_be_checked()


def test_without_collections_the_toggle_is_off_and_says_why(
    page: Page,  # noqa: F811
    start_server: StartServer,
    tmp_path: Path,
) -> None:
    srv = start_server(env=fake_env(script="Hello."), home=tmp_path / "empty-home")
    open_page(page, srv.url + "/")
    expect(page.get_by_test_id("use-docs")).to_be_disabled()
    expect(page.get_by_test_id("collections-note")).to_contain_text("charter ingest")
    send(page, "Hi")
    expect(last_assistant(page)).to_have_attribute("data-status", "complete")
    expect(last_assistant(page).get_by_test_id("message-content")).to_have_text("Hello.")
