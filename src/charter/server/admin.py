"""The operator-only admin API: what end users are not shown.

`GET /v1/admin/messages/{id}` returns a stored answer with its full trace and, when the
constitution replaced it, the model's original draft. It needs the operator's key
(`CHARTER_ADMIN_KEY`, sent as `Authorization: Bearer`); without that setting the admin API
is off (403), whatever the address, because the web page's users must never see drafts.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from charter.errors import AuthenticationError, PermissionDeniedError


async def operator(request: Request) -> None:
    """FastAPI dependency: the caller holds the admin key."""
    admin_key = request.app.state.runtime.settings.admin_key
    if not admin_key:
        raise PermissionDeniedError(
            "the admin API is off: start the server with CHARTER_ADMIN_KEY set (operators "
            "can also read drafts locally with `charter trace MESSAGE_ID`)"
        )
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        secret.strip().encode(), admin_key.encode()
    ):
        raise AuthenticationError("the admin API needs 'Authorization: Bearer <admin key>'")


router = APIRouter(prefix="/v1/admin", dependencies=[Depends(operator)])


def message_detail(row: dict[str, Any]) -> dict[str, Any]:
    """A stored message as operators see it: with the trace and the replaced draft."""
    return {
        "id": row["id"],
        "object": "admin.message",
        "conversation_id": row["conversation_id"],
        "role": row["role"],
        "content": row["content"],
        "status": row["status"],
        "finish_reason": row["finish_reason"],
        "error": row["error"],
        "created_at": int(row["created_at"]),
        "charter": json.loads(row["charter"]) if row["charter"] else None,
        "draft": row.get("draft"),
    }


@router.get("/messages/{message_id}")
async def get_message(request: Request, message_id: str) -> dict[str, Any]:
    row = await run_in_threadpool(request.app.state.runtime.store.get_message, message_id)
    return message_detail(row)
