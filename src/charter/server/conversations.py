"""The conversations API: create, list, get, rename, delete. History shared by page and CLI.

A conversation's answers carry `feedback`, the summary of their reviewers' labels (see
feedback.py), so a client shows the labels without asking for each answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from charter.server.auth import authorize
from charter.server.feedback import reviewer_for
from charter.server.protocol import NewConversationIn, TitleIn, conversation_out, read_json
from charter.store.feedback import summarize

router = APIRouter(prefix="/v1/conversations", dependencies=[Depends(authorize)])


def _store(request: Request) -> Any:
    return request.app.state.runtime.store


def _limit(request: Request) -> int:
    return request.app.state.runtime.settings.max_body_bytes


@router.get("")
async def list_conversations(
    request: Request, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)
) -> dict[str, Any]:
    rows = await run_in_threadpool(_store(request).list_conversations, limit, offset)
    return {"object": "list", "data": [conversation_out(r) for r in rows]}


@router.post("", status_code=201)
async def create_conversation(request: Request) -> dict[str, Any]:
    body = await read_json(request, NewConversationIn, _limit(request))
    conv = await run_in_threadpool(_store(request).create_conversation, body.title, "api")
    return conversation_out(conv)


@router.get("/{conversation_id}")
async def get_conversation(
    request: Request, conversation_id: str, key_id: str | None = Depends(authorize)
) -> dict[str, Any]:
    store = _store(request)
    conv = await run_in_threadpool(store.get_conversation, conversation_id)
    labels = await run_in_threadpool(store.conversation_feedback, conversation_id)
    reviewer = await run_in_threadpool(reviewer_for, store, key_id, None)
    feedback = {
        m["id"]: summarize(labels.get(m["id"], []), reviewer)
        for m in conv["messages"]
        if m["role"] == "assistant"
    }
    return conversation_out(conv, feedback)


@router.patch("/{conversation_id}")
async def rename_conversation(request: Request, conversation_id: str) -> dict[str, Any]:
    body = await read_json(request, TitleIn, _limit(request))
    conv = await run_in_threadpool(_store(request).rename_conversation, conversation_id, body.title)
    return conversation_out(conv)


@router.delete("/{conversation_id}")
async def delete_conversation(request: Request, conversation_id: str) -> dict[str, Any]:
    await run_in_threadpool(_store(request).delete_conversation, conversation_id)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}
