"""Any OpenAI-compatible server as the model engine: Charter's path past one machine.

vLLM (with Ray), SGLang, llama-server, Ollama, Ray Serve or KServe run the model wherever it
fits; Charter stays the governed front (queueing, storage, screens, trace) and streams from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import Field

from charter.backends.base import Backend, BackendOptions
from charter.errors import BackendError, UpstreamError
from charter.types import Event, Message, Params


class OpenAIUpstreamOptions(BackendOptions):
    base_url: str = Field(description="Upstream root, e.g. http://gpu-box:8000/v1")
    api_key: str | None = None
    #: Upstream model id; None takes the first one the upstream lists.
    model: str | None = None
    timeout: float = Field(default=600.0, gt=0)
    #: Concurrent streams to send upstream (a distributed engine batches them).
    capacity: int = Field(default=8, ge=1)


class OpenAIUpstreamBackend(Backend):
    name = "openai"
    Options = OpenAIUpstreamOptions
    supports_logprobs = True

    def __init__(self, options: OpenAIUpstreamOptions):
        super().__init__(options)
        self.options: OpenAIUpstreamOptions = options
        self.capacity = options.capacity
        self._model: str | None = options.model
        headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        self._client = httpx.Client(
            base_url=options.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(options.timeout, connect=10.0),
        )

    def load(self) -> None:
        if self._model is None:
            data = self._request_json("GET", "/models")
            models = data.get("data") or []
            if not models:
                raise BackendError(f"upstream {self.options.base_url} lists no models")
            self._model = models[0]["id"]

    def close(self) -> None:
        self._client.close()

    @property
    def model_id(self) -> str:
        self.load()
        return self._model or ""

    def info(self) -> dict[str, Any]:
        # The upstream's size is not ours to guess: it is reported as unknown.
        return {
            "id": self.model_id,
            "backend": self.name,
            "base_url": self.options.base_url,
            "parameter_count": None,
            "context_size": None,
        }

    def _request_json(self, method: str, path: str) -> dict:
        try:
            r = self._client.request(method, path)
        except httpx.HTTPError as exc:
            raise BackendError(f"upstream {self.options.base_url} unreachable: {exc}") from exc
        if r.status_code >= 400:
            raise _upstream_error(r.status_code, r.text)
        return r.json()

    def stream(self, messages: list[Message], params: Params) -> Iterator[Event]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [m.model_dump() for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.presence_penalty or params.frequency_penalty:
            body["presence_penalty"] = params.presence_penalty
            body["frequency_penalty"] = params.frequency_penalty
        if params.max_tokens or params.default_max_tokens:
            body["max_tokens"] = params.max_tokens or params.default_max_tokens
        if params.stop:
            body["stop"] = params.stop
        if params.seed is not None:
            body["seed"] = params.seed
        if params.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = params.top_logprobs
        finish, usage, produced, done = "stop", None, 0, False
        try:
            with self._client.stream("POST", "/chat/completions", json=body) as r:
                if r.status_code >= 400:
                    raise _upstream_error(r.status_code, r.read().decode("utf-8", "replace"))
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    chunk = json.loads(data)
                    if isinstance(chunk.get("error"), dict | str):
                        raise _upstream_error(_inband_status(chunk["error"]), data)
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or ""
                        lp_list = ((choice.get("logprobs") or {}).get("content")) or []
                        if text:
                            produced += 1
                            yield Event(
                                "token", text=text, logprobs=lp_list[0] if lp_list else None
                            )
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        except httpx.HTTPError as exc:
            raise BackendError(f"upstream {self.options.base_url} failed: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise BackendError(f"upstream {self.options.base_url} sent malformed SSE") from exc
        if not done:
            # Some servers (llama-cpp-python's among them) fail inside a 200 stream by just
            # ending it: never pass that off as a complete, empty answer.
            raise BackendError(
                f"upstream {self.options.base_url} ended the stream without "
                f"[DONE] after {produced} tokens (it failed mid-answer; see "
                "its log)"
            )
        if usage is None:
            usage = {"prompt_tokens": 0, "completion_tokens": produced, "total_tokens": produced}
        yield Event(
            "done",
            finish_reason=finish,
            usage={
                k: int(usage.get(k) or 0)
                for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            },
        )


def _inband_status(err: object) -> int:
    code = err.get("code") if isinstance(err, dict) else None
    if isinstance(code, int) and 400 <= code < 600:
        return code
    kind = err.get("type") if isinstance(err, dict) else None
    return 400 if kind == "invalid_request_error" else 502


def _upstream_error(status: int, text: str) -> UpstreamError:
    message, param, code = text[:500], None, None
    try:
        err = json.loads(text).get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            param, code = err.get("param"), err.get("code")
        elif isinstance(err, str):
            message = err
    except (ValueError, AttributeError):
        pass
    if status in (401, 403):
        # Charter's own credentials for the upstream are wrong: not the caller's fault.
        return UpstreamError(
            f"upstream rejected Charter's API key ({status}): {message}; "
            "check backend_options.api_key",
            status=502,
        )
    return UpstreamError(
        f"upstream error ({status}): {message}",
        status=status,
        param=param,
        code=code if isinstance(code, str) else None,
    )
