"""What a running Charter is: settings, one backend, the store, the scheduler and the pipeline.

The CLI and the server both open a `Runtime` and drive turns through it, so neither
re-implements a stage.
"""

from __future__ import annotations

from typing import Any

from charter.backends import backend_class
from charter.backends.base import Backend
from charter.config import Settings
from charter.pipeline import GenerateStage, Pipeline, Scheduler, StoreStage
from charter.self_knowledge import SelfKnowledgeStage, model_facts
from charter.store import Store
from charter.types import Message, Params, Source, Turn


class Runtime:
    def __init__(self, settings: Settings, backend: Backend | None = None):
        self.settings = settings
        self.backend = backend or backend_class(settings.backend).from_settings(settings)
        self.store = Store(settings.db_path)
        self.scheduler = Scheduler(self.backend.capacity, settings.queue_limit)
        self.pipeline = Pipeline(
            [
                StoreStage(self.store),
                SelfKnowledgeStage(self.self_facts),
                GenerateStage(self.backend, self.scheduler, settings.default_max_tokens),
            ]
        )
        self._facts: Source | None = None
        self._info: dict[str, Any] | None = None

    def load(self) -> None:
        """Load the model and mark answers a crash left 'generating' as incomplete."""
        self.backend.load()
        self.store.recover()

    def close(self) -> None:
        self.backend.close()
        self.store.close()

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = self.backend.info()
        return self._info

    def self_facts(self) -> Source:
        """The facts about the running model (read once, on first use)."""
        if self._facts is None:
            self._facts = model_facts(self.info)
        return self._facts

    def model_ids(self) -> list[str]:
        """Names a client may put in `model`: the model's id and the alias 'charter'."""
        return [self.info["id"], "charter"]

    def new_turn(
        self,
        messages: list[Message],
        params: Params | None = None,
        *,
        conversation_id: str | None = None,
        source: str = "api",
    ) -> Turn:
        turn = Turn(
            messages=messages,
            params=params or Params(),
            conversation_id=conversation_id,
            source=source,
        )
        turn.model = self.info["id"]
        turn.parameter_count = self.info.get("parameter_count")
        return turn
