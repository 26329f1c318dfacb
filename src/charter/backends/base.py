"""The one seam every model engine plugs into.

A backend turns messages and sampling params into a stream of `Event`s; everything else in
Charter (queueing, storage, screens, the HTTP API) is built on that single method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from charter.errors import ConfigError
from charter.types import Event, Message, Params

if TYPE_CHECKING:
    from charter.config import Settings


class BackendOptions(BaseModel):
    """Per-backend options; subclasses add fields. Unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Backend(ABC):
    """A model engine.

    Contract of `stream`: yields zero or more `Event(kind="token")`, then exactly one
    `Event(kind="done")` carrying `finish_reason` and `usage`. A prompt that cannot fit raises
    `ContextOverflowError` before the first token. Closing the generator early must stop the
    generation promptly and leave the backend ready for the next call.
    """

    name: ClassVar[str]
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    can_stream: ClassVar[bool] = True
    supports_logprobs: ClassVar[bool] = False
    #: How many streams the engine serves at once; the scheduler queues the rest (FIFO).
    capacity: int = 1

    def __init__(self, options: BackendOptions):
        self.options = options

    @classmethod
    def from_settings(cls, settings: Settings) -> Backend:
        """Build the backend from Charter's settings (its `backend_options` table)."""
        return cls(cls.parse_options(settings.backend_options))

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> Any:
        """Validate this backend's options; raises ConfigError naming the bad option."""
        try:
            return cls.Options.model_validate(options)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "options"
            msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
            raise ConfigError(
                f"backend {cls.name!r}: option {where}: {msg} (CHARTER_BACKEND_OPTIONS)"
            ) from None

    def load(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Load weights or connect eagerly, so the first request does not pay for it."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Free the model."""

    @abstractmethod
    def stream(self, messages: list[Message], params: Params) -> Iterator[Event]:
        """Generate an answer to `messages`, one event at a time (see the class contract)."""

    @property
    def model_id(self) -> str:
        """The id clients name this model by in `model` and `/v1/models`."""
        return self.name

    def info(self) -> dict[str, Any]:
        """What the model is: id, backend, parameter count and context size where known."""
        return {
            "id": self.model_id,
            "backend": self.name,
            "parameter_count": None,
            "context_size": None,
        }
