"""The chat page at `/`, driven in a real headless Chromium against a real `charter serve`.

These tests are what a user meets: streamed answers, the details panel, the conversation
list, Stop, the API-key prompt, and markdown that model output cannot turn into script.
They need Debian's Chromium (scripts/install-browser); Playwright's own download is not used.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ServerProcess, fake_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/charter-page.png")


# --- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run scripts/install-browser")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 820})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda err: errors.append(str(err)))
    yield pg
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("html")).to_have_attribute("data-ready", "true")


def send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")


def last_assistant(page: Page):
    return page.locator('[data-testid="message"][data-role="assistant"]').last


def conversation_items(page: Page):
    return page.get_by_test_id("conversation-item")


def get_conversation(base: str, conversation_id: str) -> dict:
    response = httpx.get(f"{base}/v1/conversations/{conversation_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


StartServer = Callable[..., ServerProcess]


def conversation_item(page: Page, conversation_id: str):
    return page.locator(f'[data-testid="conversation-item"][data-id="{conversation_id}"]')


# --- tests -----------------------------------------------------------------------------------


def test_real_model_streams_shows_details_and_keeps_history(page: Page, real_server: ServerProcess):
    base = real_server.url
    question = "Write three short sentences about the sea."
    health = httpx.get(f"{base}/health", timeout=5).json()
    open_page(page, base + "/")
    # Record every length the answer had while it was still generating: more than one means
    # it was painted as it streamed, not all at the end.
    page.evaluate("""() => {
        window.__lengths = [];
        new MutationObserver(() => {
            const m = document.querySelector(
                '[data-role="assistant"][data-status="generating"] .message-content');
            const n = m ? m.textContent.length : 0;
            if (n && window.__lengths.at(-1) !== n) window.__lengths.push(n);
        }).observe(document.getElementById('messages'),
                   {subtree: true, childList: true, characterData: true});
    }""")
    send(page, question)
    expect(page.get_by_test_id("send")).to_be_disabled()
    answer = last_assistant(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=120_000)
    lengths = page.evaluate("window.__lengths")
    assert len(lengths) >= 2, f"the answer did not stream (lengths seen: {lengths})"
    text = answer.get_by_test_id("message-content").inner_text().strip()
    assert text, "the answer is empty"
    expect(page.get_by_test_id("send")).to_be_enabled()
    expect(page.get_by_test_id("stop")).to_be_hidden()

    answer.get_by_test_id("details-toggle").click()
    panel = answer.get_by_test_id("details-panel")
    expect(panel).to_be_visible()
    ttft = panel.locator('[data-key="timings.ttft_ms"]').inner_text()
    assert float(ttft.replace(",", "")) > 0
    expect(panel.locator('[data-key="model"]')).to_have_text(health["model"])
    params = panel.locator('[data-key="parameter_count"]').inner_text()
    assert int(params.replace(",", "")) > 1_000_000

    # The conversation is in the sidebar, highlighted, titled by the question.
    current = page.locator('[data-testid="conversation-open"][aria-current="page"]')
    expect(current).to_have_text(question)
    conversation_id = page.locator('[data-testid="conversation-item"].current').get_attribute(
        "data-id"
    )
    stored = get_conversation(base, conversation_id)
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][0]["content"] == question
    assert stored["messages"][1]["status"] == "complete"
    # What the page painted is what the server stored (less markdown punctuation).
    for word in re.findall(r"[A-Za-z]{4,}", text):
        assert word in stored["messages"][1]["content"]

    page.screenshot(path=str(SCREENSHOT))

    # Reload: the open conversation is in the URL and comes back from the API.
    page.reload()
    expect(page.get_by_test_id("message")).to_have_count(2)
    # A fresh page, then switching to it from the list.
    open_page(page, base + "/")
    expect(page.get_by_test_id("chat-title")).to_have_text("New chat")
    expect(page.get_by_test_id("message")).to_have_count(0)
    conversation_item(page, conversation_id).get_by_test_id("conversation-open").click()
    messages = page.get_by_test_id("message")
    expect(messages).to_have_count(2)
    expect(messages.first.get_by_test_id("message-content")).to_have_text(question)
    assert last_assistant(page).get_by_test_id("message-content").inner_text().strip() == text
    expect(page.get_by_test_id("chat-title")).to_have_text(question)
    expect(current).to_have_text(question)
    # History keeps the details.
    loaded = last_assistant(page)
    loaded.get_by_test_id("details-toggle").click()
    ttft = loaded.locator('[data-key="timings.ttft_ms"]').inner_text()
    assert float(ttft.replace(",", "")) > 0


XSS_SCRIPT = """Here is a test.

<script>window.__pwned=1</script>

<img src=x onerror="window.__pwned=1">

[click](javascript:window.__pwned=1) and [docs](https://example.com/docs)

This is **bold** and *italic* with `inline <code>`.

```python
print("<b>not bold</b>")
```
"""


def test_model_output_cannot_inject_html(page: Page, start_server: StartServer):
    base = start_server(env=fake_env(script=XSS_SCRIPT)).url
    open_page(page, base + "/")
    box = page.get_by_label("Message", exact=True)
    box.fill("Say <b>hi</b>")
    box.press("Shift+Enter")  # a new line, not a send
    box.press_sequentially("& <i>bye</i>")
    expect(page.get_by_test_id("message")).to_have_count(0)
    box.press("Enter")
    user = page.locator('[data-testid="message"][data-role="user"]').last
    expect(user).to_be_visible()
    assert user.get_by_test_id("message-content").text_content() == "Say <b>hi</b>\n& <i>bye</i>"
    assert user.locator("b, i").count() == 0

    answer = last_assistant(page)
    expect(answer).to_have_attribute("data-status", "complete")
    page.wait_for_timeout(300)  # would give an injected onerror handler time to fire

    def check(message):
        # The page's CSP would also block inline handlers, so the DOM checks below are the
        # ones that prove the renderer itself is safe.
        assert page.evaluate("typeof window.__pwned") == "undefined"
        content = message.get_by_test_id("message-content")
        assert content.locator("img, script, iframe, object, embed, svg").count() == 0
        assert content.locator("[onerror], [onclick], [onload]").count() == 0
        expect(content.locator("strong")).to_have_text("bold")
        expect(content.locator("em")).to_have_text("italic")
        expect(content.locator("p code")).to_have_text("inline <code>")
        expect(content.locator("pre")).to_have_text('print("<b>not bold</b>")')
        expect(content.get_by_text("<script>window.__pwned=1</script>")).to_be_visible()
        expect(content.get_by_text('<img src=x onerror="window.__pwned=1">')).to_be_visible()
        expect(content).to_contain_text("[click](javascript:window.__pwned=1)")
        links = content.locator("a")
        expect(links).to_have_count(1)
        expect(links).to_have_text("docs")
        expect(links).to_have_attribute("href", "https://example.com/docs")
        expect(links).to_have_attribute("rel", "noopener noreferrer")

    check(answer)
    # The same text loaded back from the store is just as inert.
    page.reload()
    expect(page.get_by_test_id("message")).to_have_count(2)
    check(last_assistant(page))


LONG_SCRIPT = " ".join(f"word{i}" for i in range(400))


def test_stop_keeps_the_partial_answer_marked_incomplete(page: Page, start_server: StartServer):
    base = start_server(env=fake_env(script=LONG_SCRIPT, delay=0.05)).url
    open_page(page, base + "/")
    send(page, "Count for me.")
    answer = last_assistant(page)
    content = answer.get_by_test_id("message-content")
    expect(content).to_contain_text("word8")
    expect(page.get_by_test_id("stop")).to_be_visible()
    page.get_by_test_id("stop").click()

    expect(answer).to_have_attribute("data-status", "incomplete")
    expect(answer.get_by_test_id("message-status")).to_contain_text("Stopped")
    shown = content.inner_text()
    page.wait_for_timeout(600)  # a dozen more tokens, had it kept going
    assert content.inner_text() == shown, "the answer kept growing after Stop"
    assert shown and LONG_SCRIPT.startswith(shown.strip())
    assert len(shown) < len(LONG_SCRIPT) / 2
    expect(page.get_by_test_id("send")).to_be_enabled()
    expect(page.get_by_test_id("stop")).to_be_hidden()

    conversation_id = conversation_items(page).first.get_attribute("data-id")
    deadline = time.monotonic() + 15
    while True:
        stored = get_conversation(base, conversation_id)["messages"][-1]
        if stored["status"] != "generating" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stored["role"] == "assistant"
    assert stored["status"] == "incomplete"
    assert LONG_SCRIPT.startswith(stored["content"]) and stored["content"]
    assert len(stored["content"]) < len(LONG_SCRIPT)

    page.reload()
    reloaded = last_assistant(page)
    expect(reloaded).to_have_attribute("data-status", "incomplete")
    expect(reloaded.get_by_test_id("message-status")).to_contain_text("Incomplete")
    expect(reloaded.get_by_test_id("message-content")).to_have_text(stored["content"])


def test_rename_and_delete_conversations(page: Page, start_server: StartServer):
    base = start_server(env=fake_env(script="Fine.")).url
    api = httpx.Client(base_url=base, timeout=10)
    first = api.post("/v1/conversations", json={"title": "First chat"}).json()
    second = api.post("/v1/conversations", json={"title": "Second chat"}).json()
    open_page(page, base + "/")
    expect(conversation_items(page)).to_have_count(2)

    item = conversation_item(page, first["id"])
    item.get_by_test_id("conversation-rename").click()
    field = page.get_by_test_id("rename-input")
    expect(field).to_be_focused()
    field.fill("Renamed <b>by</b> the test")
    field.press("Enter")
    expect(item.get_by_test_id("conversation-open")).to_have_text("Renamed <b>by</b> the test")
    assert api.get(f"/v1/conversations/{first['id']}").json()["title"] == (
        "Renamed <b>by</b> the test"
    )

    # Escape leaves the title alone.
    item.get_by_test_id("conversation-rename").click()
    page.get_by_test_id("rename-input").fill("Not this")
    page.get_by_test_id("rename-input").press("Escape")
    expect(item.get_by_test_id("conversation-open")).to_have_text("Renamed <b>by</b> the test")

    # Open the second one, then delete it: declining the confirmation keeps it.
    doomed = conversation_item(page, second["id"])
    doomed.get_by_test_id("conversation-open").click()
    expect(page.get_by_test_id("chat-title")).to_have_text("Second chat")
    page.once("dialog", lambda dialog: dialog.dismiss())
    doomed.get_by_test_id("conversation-delete").click()
    expect(doomed).to_have_count(1)
    assert api.get(f"/v1/conversations/{second['id']}").status_code == 200

    page.once("dialog", lambda dialog: dialog.accept())
    doomed.get_by_test_id("conversation-delete").click()
    expect(doomed).to_have_count(0)
    expect(page.get_by_test_id("chat-title")).to_have_text("New chat")
    assert api.get(f"/v1/conversations/{second['id']}").status_code == 404
    listed = [c["id"] for c in api.get("/v1/conversations").json()["data"]]
    assert listed == [first["id"]]
    api.close()


def test_narrow_window(page: Page, start_server: StartServer):
    base = start_server(env=fake_env(script="A short answer.")).url
    page.set_viewport_size({"width": 380, "height": 740})
    open_page(page, base + "/")
    toggle = page.get_by_role("button", name="Conversations")
    sidebar = page.get_by_role("complementary", name="Conversations")
    expect(sidebar).to_be_hidden()
    send(page, "Hello from a phone")
    expect(last_assistant(page)).to_have_attribute("data-status", "complete")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(sidebar).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    page.get_by_test_id("new-chat").click()
    expect(sidebar).to_be_hidden()  # choosing something closes the panel
    expect(page.get_by_test_id("message")).to_have_count(0)
    toggle.click()
    page.get_by_test_id("conversation-open").first.click()
    expect(sidebar).to_be_hidden()
    expect(page.get_by_test_id("message")).to_have_count(2)
    expect(page.get_by_test_id("send")).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth") <= 380


def test_asks_for_an_api_key_when_the_server_wants_one(
    page: Page, start_server: StartServer, tmp_path: Path
):
    home = tmp_path / "keys-home"
    created = subprocess.run(
        [sys.executable, "-m", "charter", "keys", "create", "browser-test"],
        env={**os.environ, "CHARTER_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip().splitlines()[0]
    env = {**fake_env(script="Authorised answer."), "CHARTER_REQUIRE_KEYS": "1"}
    base = start_server(env=env, home=home).url
    open_page(page, base + "/")
    form = page.get_by_test_id("api-key-form")
    expect(form).to_be_visible()
    expect(page.get_by_test_id("error")).to_be_hidden()

    page.get_by_label("API key", exact=True).fill("ck-wrong")
    page.get_by_test_id("api-key-save").click()
    expect(form).to_be_visible()
    expect(form).to_contain_text("not accepted")

    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_test_id("api-key-save").click()
    expect(form).to_be_hidden()
    send(page, "Hello?")
    expect(last_assistant(page).get_by_test_id("message-content")).to_have_text(
        "Authorised answer."
    )
    assert page.evaluate("localStorage.getItem('charter.apiKey')") == key
    # The key outlives a reload.
    page.reload()
    expect(conversation_items(page)).to_have_count(1)
    expect(form).to_be_hidden()


def test_errors_from_the_api_are_shown(page: Page, start_server: StartServer):
    # A prompt longer than the fake's context is refused with a 400 before any answer.
    base = start_server(env=fake_env(script="unused", context_size=16)).url
    open_page(page, base + "/")
    prompt = "far too many words " * 10
    send(page, prompt)
    error = page.get_by_test_id("error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("context")
    # The refused message goes back into the box to edit and resend.
    expect(page.get_by_label("Message", exact=True)).to_have_value(prompt)
    expect(page.get_by_test_id("message")).to_have_count(0)
    expect(page.get_by_test_id("send")).to_be_enabled()


def test_markdown_renderer_and_sse_parser(page: Page, start_server: StartServer):
    """The page's own modules, called directly: edge cases too fiddly to script a model for."""
    base = start_server(env=fake_env(script="unused")).url
    open_page(page, base + "/")
    cases = [
        "# Title\n\n1. one\n2. two\n   - nested\n\n> quoted **b**",
        "[a](JaVaScRiPt:alert(1)) [b](data:text/html,x) [c](//evil.example) "
        "<javascript:alert(1)> see https://example.org/x.",
        "```\nunclosed <fence>",
        "- tight\n- list",
    ]
    render = """async (cases) => {
        const {renderMarkdown} = await import('./static/markdown.js');
        return cases.map((c) => {
            const div = document.createElement('div');
            div.append(renderMarkdown(c));
            return div.innerHTML;
        });
    }"""
    rendered = page.evaluate(render, cases)
    assert rendered[0] == (
        '<h3 class="md-h1">Title</h3><ol><li>one</li><li>two<ul><li>nested</li></ul></li>'
        "</ol><blockquote><p>quoted <strong>b</strong></p></blockquote>"
    )
    assert "<a" not in rendered[1].split("see")[0]
    assert rendered[1].endswith(
        'see <a href="https://example.org/x" rel="noopener noreferrer" target="_blank">'
        "https://example.org/x</a>.</p>"
    )
    assert rendered[2] == "<pre><code>unclosed &lt;fence&gt;</code></pre>"
    assert rendered[3] == "<ul><li>tight</li><li>list</li></ul>"

    # Events split across reads at every possible size come out whole.
    results = page.evaluate("""async () => {
        const {SSEParser} = await import('./static/sse.js');
        const text = 'data: {"a":"é"}\\n\\ndata: {"b":1}\\r\\n\\r\\n: ping\\n\\n'
                   + 'data: one\\ndata: two\\n\\ndata: [DONE]\\n\\n';
        const out = [];
        for (let size = 1; size <= text.length; size++) {
            const parser = new SSEParser();
            const got = [];
            for (let i = 0; i < text.length; i += size) {
                got.push(...parser.push(text.slice(i, i + size)));
            }
            got.push(...parser.end());
            out.push(got);
        }
        return out;
    }""")
    expected = ['{"a":"é"}', '{"b":1}', "one\ntwo", "[DONE]"]
    assert all(got == expected for got in results), results


def test_token_confidence_is_shaded_with_alternatives(page: Page, real_server: ServerProcess):
    open_page(page, real_server.url + "/")
    page.get_by_test_id("show-confidence").check()
    send(page, "Name a famous painter.")
    answer = last_assistant(page)
    expect(answer).to_have_attribute("data-status", "complete", timeout=120_000)
    tokens = answer.get_by_test_id("confidence-view").get_by_test_id("token")
    n = tokens.count()
    assert n >= 1
    # The shaded tokens spell out exactly the answer (the rendered answer draws list numbers
    # and bullets as markers, not text, so they are left out of the comparison).
    spelled = "".join(tokens.all_text_contents())
    shown = answer.get_by_test_id("message-content").inner_text()

    def text(s: str) -> str:
        return re.sub(r"(?m)^\s*(?:\d+\.|[-*+])\s+", "", s).strip()

    assert text(spelled) == text(shown)
    probs = [float(tokens.nth(i).get_attribute("data-p")) for i in range(n)]
    assert all(0.0 < p <= 1.0 for p in probs)
    # The least likely token carries a shade and a tooltip naming its probability.
    weakest = tokens.nth(probs.index(min(probs)))
    assert weakest.get_attribute("title").startswith(f"p {min(probs):.2f}")
    if min(probs) < 0.9:
        assert "background-color" in (weakest.get_attribute("style") or "")
    # And the trace summarises it in the details panel.
    answer.get_by_test_id("details-toggle").click()
    expect(answer.get_by_test_id("details-panel")).to_contain_text("least_certain")
