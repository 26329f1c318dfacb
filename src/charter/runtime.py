"""What a running Charter is: settings, one backend, the store, the scheduler and the pipeline.

The CLI and the server both open a `Runtime` and drive turns through it, so neither
re-implements a stage.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charter.backends import backend_class
from charter.backends.base import Backend
from charter.config import Settings
from charter.errors import RequestError
from charter.pipeline import GenerateStage, Pipeline, Scheduler, StoreStage
from charter.retrieval.stage import Budget, RetrievalStage
from charter.self_knowledge import SelfKnowledgeStage, model_facts
from charter.store import Store
from charter.types import Message, Params, RetrievalRequest, Source, Turn

if TYPE_CHECKING:
    from charter.retrieval.embed import Embedder
    from charter.retrieval.search import Retriever
    from charter.retrieval.store import Store as RetrievalStore


class Runtime:
    def __init__(
        self,
        settings: Settings,
        backend: Backend | None = None,
        *,
        embedder: Embedder | None = None,
    ):
        """`embedder` replaces all-MiniLM-L6-v2 for retrieval (tests, benchmarks); it must be
        the one the collections were ingested with."""
        self.settings = settings
        self._embedder = embedder
        self.backend = backend or backend_class(settings.backend).from_settings(settings)
        self.store = Store(settings.db_path)
        self.scheduler = Scheduler(self.backend.capacity, settings.queue_limit)
        self.pipeline = Pipeline(
            [
                StoreStage(self.store),
                SelfKnowledgeStage(self.self_facts),
                RetrievalStage(
                    self.retriever,
                    self.token_budget,
                    min_score=settings.retrieval_min_score,
                    attribution=settings.retrieval_attribution,
                    filter_instructions=settings.retrieval_filter_instructions,
                ),
                GenerateStage(self.backend, self.scheduler, settings.default_max_tokens),
            ]
        )
        self._facts: Source | None = None
        self._info: dict[str, Any] | None = None
        # Opened on first use: a runtime that never answers from documents never opens the
        # retrieval store, and the embedding model loads on the first search.
        self._retrieval_lock = threading.Lock()
        self._retrieval_store: RetrievalStore | None = None
        self._retriever: Retriever | None = None

    def load(self) -> None:
        """Load the model and mark answers a crash left 'generating' as incomplete."""
        self.backend.load()
        self.store.recover()

    def close(self) -> None:
        self.backend.close()
        self.store.close()
        if self._retrieval_store is not None:
            self._retrieval_store.close()

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

    # -- retrieval ---------------------------------------------------------------------------
    def retrieval_store(self) -> RetrievalStore:
        """The retrieval store (opened on first use). Raises ConfigError when it cannot be."""
        with self._retrieval_lock:
            if self._retrieval_store is None:
                from charter.retrieval.store import open_store

                self._retrieval_store = open_store(self.settings.retrieval_location)
            return self._retrieval_store

    def retriever(self) -> Retriever:
        """The hybrid retriever over the store (its embedder loads on the first search)."""
        store = self.retrieval_store()
        with self._retrieval_lock:
            if self._retriever is None:
                from charter.retrieval.search import Retriever

                self._retriever = Retriever(store, self._embedder)
            return self._retriever

    def collections(self) -> list[tuple[str, int, int]]:
        """(name, documents, chunks) of every collection; [] while no store file exists."""
        location = self.settings.retrieval_location
        unopened_file = self._retrieval_store is None and "://" not in location
        if unopened_file and not Path(location).expanduser().exists():
            return []
        return self.retrieval_store().collections()

    def token_budget(self) -> Budget:
        """How the retrieval stage measures prompts against this backend's context."""
        count = None
        encode = getattr(self.backend, "encode", None)
        prompt_tokens = getattr(self.backend, "prompt_tokens", None)
        if callable(encode):

            def count(messages: list[Message]) -> int:
                return len(encode(messages)[0])

        elif callable(prompt_tokens):
            count = prompt_tokens
        return Budget(count, self.info.get("context_size"), self.settings.default_max_tokens)

    def retrieval_request(
        self, collection: str | None = None, k: int | None = None, enabled: bool | None = None
    ) -> RetrievalRequest | None:
        """The turn's retrieval options, with the settings' defaults filled in.

        `enabled` None means "as the settings say" (on when a default collection is set, or
        when `collection` is given); False turns retrieval off. Raises RequestError when it is
        on with no collection, NotFoundError for an unknown collection (naming the known ones).
        """
        if enabled is False:
            return None
        name = collection or self.settings.retrieval_collection
        if name is None:
            if enabled:
                raise RequestError(
                    "charter.retrieval: name a collection to answer from (no default "
                    "collection is set: CHARTER_RETRIEVAL_COLLECTION)",
                    param="charter.retrieval.collection",
                    code="collection_required",
                )
            return None
        request = RetrievalRequest(name, k or self.settings.retrieval_k)
        self.check_collection(name)
        return request

    def check_collection(self, name: str) -> None:
        """Raises NotFoundError naming `name` and the known collections when it has none."""
        names = [c[0] for c in self.collections()]
        if name in names:
            return
        from charter.errors import NotFoundError

        known = ", ".join(names) if names else "none yet (add documents with `charter ingest`)"
        raise NotFoundError(
            f"no collection {name!r}; known collections: {known}",
            param="charter.retrieval.collection",
            code="collection_not_found",
        )

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
        retrieval: RetrievalRequest | None = None,
    ) -> Turn:
        """A turn ready for `pipeline.stream`. `retrieval` comes from `retrieval_request`."""
        turn = Turn(
            messages=messages,
            params=params or Params(),
            conversation_id=conversation_id,
            source=source,
            retrieval=retrieval,
        )
        turn.model = self.info["id"]
        turn.parameter_count = self.info.get("parameter_count")
        return turn
