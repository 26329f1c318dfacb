"""Every error Charter raises on purpose, in one tree.

Each error knows how it reaches a user: the CLI prints `str(err)` as one line and exits with
`exit_code`; the HTTP API answers `{"error": {"message", "type", "param", "code"}}` with
`status`. Anything outside this tree that escapes is a bug.

    CharterError                      500  internal_error
    ├── ConfigError                   (CLI only) bad setting or flag
    ├── ExportError                   (CLI only) a tuned model cannot be exported as asked
    ├── ModelFileError                400  model file missing, unreadable or corrupt
    ├── BackendError                  502  the model engine or upstream failed
    │   └── UpstreamError             upstream answered with an error (keeps its status if 4xx)
    └── RequestError                  400  invalid_request_error: the caller sent something wrong
        ├── ContextOverflowError      400  context_length_exceeded
        ├── NotFoundError             404  not_found_error (conversation, message, key, model)
        ├── AuthenticationError       401  authentication_error
        ├── PermissionDeniedError     403  permission_error (operator-only endpoints)
        ├── ConflictError             409  conflict: the target cannot take this yet
        ├── PayloadTooLargeError      413  request body over the limit
        └── RateLimitError            429  rate_limit_exceeded / queue_full (carries retry_after)
"""

from __future__ import annotations


class CharterError(Exception):
    """Base of every deliberate Charter error."""

    status: int = 500
    type: str = "internal_error"
    code: str | None = None
    exit_code: int = 1

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        """The OpenAI-style error body."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(CharterError):
    """A setting, flag or environment variable has a value Charter cannot use."""

    type = "config_error"
    exit_code = 2


class ExportError(CharterError):
    """`charter train export` refuses or fails: the target exists (no --force), an unknown
    quantisation type, a model that does not fit its base GGUF, llama.cpp's quantiser failed."""

    type = "export_error"
    exit_code = 2


class ModelFileError(CharterError):
    """A model file is missing, unreadable, or not a valid GGUF file. The message names it."""

    status = 400
    type = "invalid_request_error"
    code = "model_file_error"
    exit_code = 2


class BackendError(CharterError):
    """The engine that runs the model failed (llama.cpp error, upstream unreachable)."""

    status = 502
    type = "backend_error"


class UpstreamError(BackendError):
    """An OpenAI-compatible upstream answered with an error of its own."""

    def __init__(
        self, message: str, *, status: int = 502, param: str | None = None, code: str | None = None
    ):
        super().__init__(message, param=param, code=code)
        # A 4xx from upstream is the caller's fault and stays a 4xx; anything else is ours.
        self.status = status if 400 <= status < 500 else 502
        if 400 <= status < 500:
            self.type = "invalid_request_error"


class RequestError(CharterError):
    """The caller sent something Charter will not accept."""

    status = 400
    type = "invalid_request_error"
    exit_code = 2


class ContextOverflowError(RequestError):
    """The prompt does not fit the model's context window (never silently truncated)."""

    code = "context_length_exceeded"

    def __init__(self, prompt_tokens: int, context_size: int, *, max_tokens: int | None = None):
        detail = f"The prompt is {prompt_tokens} tokens but the model's context is {context_size}"
        if max_tokens:
            detail += f" (with max_tokens={max_tokens} requested)"
        super().__init__(
            detail + ". Shorten the messages or start a new conversation.", param="messages"
        )
        self.prompt_tokens = prompt_tokens
        self.context_size = context_size


class NotFoundError(RequestError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ConflictError(RequestError):
    """The request is valid but its target is not in a state to accept it (an answer that is
    still being generated cannot be labelled yet)."""

    status = 409
    code = "conflict"


class AuthenticationError(RequestError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(RequestError):
    """The caller is known but may not do this (the operator-only admin API)."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class PayloadTooLargeError(RequestError):
    status = 413
    code = "payload_too_large"


class RateLimitError(RequestError):
    """Too many requests for this key, or the model's queue is full."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after
