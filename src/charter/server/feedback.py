"""The feedback API: reviewers label answers up or down, optionally with a better answer.

`POST /v1/messages/{id}/feedback` records the caller's label (labelling again replaces only
the caller's own); `GET` lists every reviewer's label with a summary. Who the reviewer is
follows the API key: with keys on, a label is filed under the key's name (or `name/reviewer`
when the body names one), so no key can overwrite another key's labels; with keys off it is
the body's `reviewer`, else "anonymous".
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from charter.server.auth import authorize
from charter.server.protocol import FeedbackIn, feedback_out, read_json
from charter.store import Store
from charter.store.feedback import ANONYMOUS, summarize

router = APIRouter(prefix="/v1/messages", dependencies=[Depends(authorize)])


def reviewer_for(store: Store, key_id: str | None, given: str | None) -> str:
    """The name a label is filed under, for a caller holding `key_id` (None: keys are off)."""
    if key_id is None:
        return given or ANONYMOUS
    name = store.key_name(key_id) or key_id
    return f"{name}/{given}" if given else name


@router.post("/{message_id}/feedback")
async def add_feedback(
    request: Request,
    response: Response,
    message_id: str,
    key_id: str | None = Depends(authorize),
) -> dict[str, Any]:
    store: Store = request.app.state.runtime.store
    # A value that breaks a rule is a 400 like everywhere else in the API (and OpenAI's).
    body: FeedbackIn = await read_json(
        request, FeedbackIn, request.app.state.runtime.settings.max_body_bytes
    )
    reviewer = await run_in_threadpool(reviewer_for, store, key_id, body.reviewer)
    row, created = await run_in_threadpool(
        partial(
            store.add_feedback,
            message_id,
            reviewer=reviewer,
            rating=body.rating,
            better=body.better,
            note=body.note,
            api_key_id=key_id,
        )
    )
    labels = await run_in_threadpool(store.list_feedback, message_id)
    response.status_code = 201 if created else 200
    return {**feedback_out(row), "summary": summarize(labels, reviewer)}


@router.get("/{message_id}/feedback")
async def list_feedback(
    request: Request, message_id: str, key_id: str | None = Depends(authorize)
) -> dict[str, Any]:
    store: Store = request.app.state.runtime.store
    labels = await run_in_threadpool(store.list_feedback, message_id)
    reviewer = await run_in_threadpool(reviewer_for, store, key_id, None)
    return {
        "object": "list",
        "message_id": message_id,
        "reviewer": reviewer,
        "data": [feedback_out(lb) for lb in labels],
        "summary": summarize(labels, reviewer),
    }
