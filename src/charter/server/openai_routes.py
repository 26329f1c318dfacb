"""POST /v1/chat/completions (plain and SSE) and GET /v1/models, OpenAI-compatible; and
GET /v1/collections, the document collections an answer can be grounded in."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from charter.errors import CharterError, NotFoundError
from charter.server.auth import authorize
from charter.server.bridge import ClientGone, TurnThread
from charter.server.protocol import (
    ChatCompletionRequest,
    chunk,
    completion_response,
    read_json,
    replace_chunk,
)
from charter.types import Event, Turn

router = APIRouter(dependencies=[Depends(authorize)])


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    rt = request.app.state.runtime
    info = rt.info
    created = int(request.app.state.started_at)
    return {
        "object": "list",
        "data": [
            {
                "id": mid,
                "object": "model",
                "created": created,
                "owned_by": "charter",
                "charter": info,
            }
            for mid in rt.model_ids()
        ],
    }


@router.get("/v1/collections")
async def list_collections(request: Request) -> dict[str, Any]:
    rt = request.app.state.runtime
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "collection", "documents": docs, "chunks": chunks}
            for name, docs, chunks in rt.collections()
        ],
        "default": rt.settings.retrieval_collection,
    }


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Any:
    state = request.app.state
    rt = state.runtime
    req: ChatCompletionRequest = await read_json(
        request, ChatCompletionRequest, rt.settings.max_body_bytes
    )
    if req.model not in rt.model_ids():
        raise NotFoundError(
            f"model {req.model!r} does not exist; this server serves "
            f"{', '.join(repr(m) for m in rt.model_ids())}",
            param="model",
            code="model_not_found",
        )
    source = request.headers.get("x-charter-source", "api")[:20]
    retrieval = rt.retrieval_request(**req.retrieval_options())
    governance = rt.governance_request(req.charter.governance if req.charter else None)
    turn = rt.new_turn(
        req.chat_messages(),
        req.params(),
        conversation_id=req.conversation_id,
        source=source,
        retrieval=retrieval,
        governance=governance,
    )
    worker = TurnThread(rt.pipeline.stream(turn), turn)
    try:
        # Wait for the first event before answering, so that a request rejected up front
        # (context overflow, full queue, unknown conversation) gets its 4xx status.
        first = await worker.next(request)
    except ClientGone:
        return JSONResponse({"error": {"message": "client disconnected"}}, status_code=499)
    except BaseException:
        worker.cancel()
        raise
    # Known as soon as the question is stored: lets a client that stops early find its
    # conversation without waiting for the last chunk.
    ids = {
        "X-Charter-Conversation-Id": turn.conversation_id or "",
        "X-Charter-Message-Id": turn.message_id or "",
    }
    if req.stream:
        return StreamingResponse(
            _sse(worker, first, turn, state.metrics, req.logprobs),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **ids},
        )
    body = await _collect(worker, first, turn, request, req.logprobs)
    if isinstance(body, JSONResponse):
        return body
    return JSONResponse(body, headers=ids)


def _observe_token(metrics: Any, turn: Turn, last: float | None) -> float:
    now = time.perf_counter()
    if last is None:
        metrics.ttft.observe(now - turn.t_start)
    else:
        metrics.itl.observe(now - last)
    metrics.tokens.inc()
    return now


def _observe_end(metrics: Any, turn: Turn) -> None:
    metrics.e2e.observe(time.perf_counter() - turn.t_start)
    metrics.prompt_tokens.inc(turn.usage.get("prompt_tokens", 0))


async def _collect(
    worker: TurnThread, ev: Event | None, turn: Turn, request: Request, want_logprobs: bool
) -> Any:
    metrics = request.app.state.metrics
    logprobs: list[dict] = []
    last = None
    try:
        while ev is not None:
            if ev.kind == "token":
                last = _observe_token(metrics, turn, last)
                if ev.logprobs:
                    logprobs.append(ev.logprobs)
            ev = await worker.next(request)
    except ClientGone:
        return JSONResponse({"error": {"message": "client disconnected"}}, status_code=499)
    _observe_end(metrics, turn)
    return completion_response(turn, logprobs if want_logprobs else None)


async def _sse(
    worker: TurnThread, ev: Event | None, turn: Turn, metrics: Any, want_logprobs: bool
) -> AsyncIterator[bytes]:
    def data(obj: Any) -> bytes:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()

    last = None
    try:
        yield data(chunk(turn, {"role": "assistant", "content": ""}))
        while ev is not None:
            if ev.kind == "token":
                last = _observe_token(metrics, turn, last)
                yield data(
                    chunk(
                        turn, {"content": ev.text}, logprobs=ev.logprobs if want_logprobs else None
                    )
                )
            elif ev.kind == "replace":
                # The constitution replaced the answer: an empty delta (clients that ignore the
                # event keep only text that passed the screen) and the governed text.
                yield data(replace_chunk(turn, ev.text))
            elif ev.kind == "done":
                _observe_end(metrics, turn)
                yield data(chunk(turn, {}, finish_reason=turn.finish_reason, final=True))
            ev = await worker.next()
    except CharterError as err:
        # Headers are sent: report the error in-band (as vLLM does), then end the stream.
        yield data(err.to_dict())
    finally:
        # Runs on normal end and when the client disconnects (the generator is closed).
        worker.cancel()
    yield b"data: [DONE]\n\n"
