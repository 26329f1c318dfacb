"""Feedback in the chat page, in a real headless Chromium against a real `charter serve`:
thumbs up / down and a better answer under an answer, saved through the API, shown pressed
again after a reload, and never confused with another reviewer's label."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import fake_env
from tests.server import test_browser
from tests.server.test_browser import StartServer, last_assistant, open_page, send

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The browser and page fixtures of the main page tests (found by pytest under these names).
browser = test_browser.browser
page = test_browser.page


def test_thumbs_and_a_better_answer_are_saved_and_shown(page: Page, start_server: StartServer):
    base = start_server(env=fake_env(script="The capital of France is Lyon.")).url
    api = httpx.Client(base_url=base, timeout=10)
    csp_violations: list[str] = []
    page.on(
        "console",
        lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    open_page(page, base + "/")
    send(page, "What is the capital of France?")
    answer = last_assistant(page)
    expect(answer).to_have_attribute("data-status", "complete")
    message_id = answer.get_attribute("data-message-id")
    assert message_id and message_id.startswith("msg_")

    def stored() -> dict | None:
        labels = api.get(f"/v1/messages/{message_id}/feedback").json()["data"]
        return {lb["reviewer"]: lb for lb in labels}.get("anonymous")

    # Only answers get feedback controls.
    user = page.locator('[data-testid="message"][data-role="user"]').last
    expect(user.get_by_test_id("feedback")).to_have_count(0)
    group = answer.get_by_role("group", name="Feedback on this answer")
    up = group.get_by_role("button", name="Good answer")
    down = group.get_by_role("button", name="Bad answer")
    expect(up).to_have_attribute("aria-pressed", "false")
    expect(down).to_have_attribute("aria-pressed", "false")

    up.click()
    expect(up).to_have_attribute("aria-pressed", "true")
    expect(down).to_have_attribute("aria-pressed", "false")
    expect(group.get_by_test_id("feedback-status")).to_have_text("Saved: a good answer.")
    assert stored()["rating"] == "up"

    # The better-answer box opens on demand; Cancel saves nothing.
    toggle = group.get_by_role("button", name="Suggest a better answer")
    form = group.get_by_test_id("better-form")
    box = group.get_by_label("A better answer")
    expect(form).to_be_hidden()
    toggle.click()
    expect(form).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(box).to_be_focused()
    box.fill("Not this one")
    group.get_by_role("button", name="Cancel").click()
    expect(form).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    assert stored()["better"] is None

    # An empty better answer is not sent.
    toggle.click()
    box.fill("   ")
    group.get_by_role("button", name="Submit").click()
    expect(group.get_by_test_id("feedback-status")).to_contain_text("Write the better answer")
    expect(form).to_be_visible()
    assert stored()["better"] is None

    better = "The capital of France is Paris.\n\nLyon is its third-largest city."
    box.fill(better)
    group.get_by_role("button", name="Submit").click()
    expect(form).to_be_hidden()
    expect(group.get_by_test_id("feedback-status")).to_have_text("Saved: your better answer.")
    expect(group.get_by_test_id("better-toggle")).to_have_text("Edit your better answer")
    label = stored()
    assert (label["rating"], label["better"]) == ("up", better)  # the thumb is kept

    # Changing the thumb keeps the better answer.
    down.click()
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(up).to_have_attribute("aria-pressed", "false")
    label = stored()
    assert (label["rating"], label["better"]) == ("down", better)

    # Another reviewer's label is theirs: it does not change what this page shows as its own.
    r = api.post(f"/v1/messages/{message_id}/feedback", json={"rating": "up", "reviewer": "alice"})
    assert r.status_code == 201, r.text

    page.reload()
    answer = last_assistant(page)
    group = answer.get_by_role("group", name="Feedback on this answer")
    expect(group.get_by_role("button", name="Bad answer")).to_have_attribute("aria-pressed", "true")
    expect(group.get_by_role("button", name="Good answer")).to_have_attribute(
        "aria-pressed", "false"
    )
    group.get_by_role("button", name="Edit your better answer").click()
    expect(group.get_by_label("A better answer")).to_have_value(better)
    group.get_by_label("A better answer").press("Escape")
    expect(group.get_by_test_id("better-form")).to_be_hidden()

    reviewers = {
        lb["reviewer"]: lb["rating"]
        for lb in api.get(f"/v1/messages/{message_id}/feedback").json()["data"]
    }
    assert reviewers == {"anonymous": "down", "alice": "up"}
    assert csp_violations == []
    api.close()
