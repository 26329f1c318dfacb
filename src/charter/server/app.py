"""The FastAPI application: wiring of routes, errors, metrics and the static page.

Every error leaves as OpenAI-style JSON with a 4xx status where the caller is at fault; an
unexpected exception becomes a logged 500 with a JSON body, never a traceback to the client.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charter.errors import CharterError, RateLimitError
from charter.runtime import Runtime
from charter.server import admin, conversations, feedback, openai_routes
from charter.server.auth import RateLimiter, authorize
from charter.server.metrics import Metrics

log = logging.getLogger("charter.server")

STATIC = resources.files("charter.server").joinpath("static")


def create_app(runtime: Runtime) -> FastAPI:
    """An app serving `runtime`; the model is loaded at startup (lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await run_in_threadpool(runtime.load)
        app.state.ready = True
        yield
        app.state.ready = False

    app = FastAPI(
        title="Charter", version="0.1.0", lifespan=lifespan, docs_url="/docs", redoc_url=None
    )
    app.state.runtime = runtime
    app.state.ready = False
    app.state.started_at = time.time()
    app.state.rate_limiter = RateLimiter(runtime.settings.rate_limit_per_minute)
    app.state.metrics = Metrics(lambda: runtime.scheduler.waiting, lambda: runtime.scheduler.active)
    app.add_middleware(_CountRequests, metrics=app.state.metrics)

    @app.exception_handler(CharterError)
    async def _charter_error(_: Request, exc: CharterError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RateLimitError):
            headers["Retry-After"] = str(int(exc.retry_after))
        if exc.status >= 500:
            log.error("request failed: %s", exc.message)
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        return JSONResponse(
            {
                "error": {
                    "message": f"{loc}: {err['msg']}",
                    "type": "invalid_request_error",
                    "param": loc,
                    "code": "invalid_value",
                }
            },
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(
            {"error": {"message": str(exc.detail), "type": kind, "param": None, "code": None}},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(
            {
                "error": {
                    "message": "internal error; see the server log",
                    "type": "internal_error",
                    "param": None,
                    "code": None,
                }
            },
            status_code=500,
        )

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        ready = request.app.state.ready
        body = {
            "status": "ok" if ready else "loading",
            "model": runtime.info["id"] if ready else None,
            "queue": {"waiting": runtime.scheduler.waiting, "active": runtime.scheduler.active},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", dependencies=[Depends(authorize)])
    async def metrics(request: Request) -> Response:
        m = request.app.state.metrics
        return Response(m.render(), media_type=m.content_type)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(
            str(STATIC.joinpath("index.html")), headers={"Cache-Control": "no-cache"}
        )

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(openai_routes.router)
    app.include_router(conversations.router)
    app.include_router(feedback.router)
    app.include_router(admin.router)
    return app


class _CountRequests:
    """Counts every request by endpoint family, method and final status."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(
                _endpoint(scope["path"]), scope["method"], str(status["code"])
            ).inc()


def _endpoint(path: str) -> str:
    for known in (
        "/v1/chat/completions",
        "/v1/models",
        "/v1/conversations",
        "/v1/messages",
        "/health",
        "/metrics",
        "/static",
    ):
        if path.startswith(known):
            return known
    return "/" if path == "/" else "other"
