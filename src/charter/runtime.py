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
from charter.constitution.stage import MODES, GovernStage, Judge, Mode
from charter.errors import ConfigError, RequestError
from charter.pipeline import GenerateStage, Pipeline, Scheduler, StoreStage
from charter.retrieval.stage import Budget, RetrievalStage
from charter.self_knowledge import SelfKnowledgeStage, model_facts
from charter.store import Store
from charter.types import Message, Params, RetrievalRequest, Source, Turn

if TYPE_CHECKING:
    from charter.constitution.schema import Constitution
    from charter.constitution.screen import Screen
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
        constitution: Constitution | None = None,
        screen: Screen | None = None,
    ):
        """`embedder` replaces all-MiniLM-L6-v2 for retrieval (tests, benchmarks); it must be
        the one the collections were ingested with. `constitution` and `screen` replace the
        ones the settings name (tests, benchmarks)."""
        self.settings = settings
        self._embedder = embedder
        self.backend = backend or backend_class(settings.backend).from_settings(settings)
        self.store = Store(settings.db_path)
        self.scheduler = Scheduler(self.backend.capacity, settings.queue_limit)
        # The constitution is read and validated now, so a bad file stops the start-up (not
        # the first request); its screen is trained (or read from the cache) in load().
        self.constitution: Constitution | None = constitution
        self.screen: Screen | None = screen
        governance: list[Any] = []
        if settings.governed and settings.governance == "off":
            raise ConfigError(
                "--governance off would serve ungoverned answers: say --constitution off "
                "to run without a constitution"
            )
        if settings.governed:
            governance = [self._govern_stage()]
        elif constitution is not None or screen is not None:
            raise ValueError("a constitution was given to an ungoverned runtime")
        self.pipeline = Pipeline(
            [
                StoreStage(self.store),
                *governance,
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
        """Load the model and the constitution's screen; mark answers a crash left
        'generating' as incomplete."""
        self.backend.load()
        if self.screen is not None:
            self.screen.load()
        self.store.recover()

    # -- the constitution --------------------------------------------------------------------
    def _govern_stage(self) -> GovernStage:
        if self.constitution is None:
            from charter.constitution.loader import load_constitution, load_default

            name = self.settings.constitution.strip()
            self.constitution = load_default() if name == "default" else load_constitution(name)
        if self.screen is None:
            from charter.constitution.screen import Screen

            self.screen = Screen(
                self.constitution,
                embedder=self._embedder,
                cache_dir=self.settings.screen_cache_dir,
            )
        judge = None
        if self.settings.constitution_judge == "self":
            judge = Judge(self.backend, self.scheduler)
        return GovernStage(
            self.constitution,
            self.screen,
            self.backend,
            self.scheduler,
            mode=self.governance_mode,
            judge=judge,
            output_floor=self.settings.constitution_output_floor,
        )

    def governance_mode(self, turn: Turn) -> Mode:
        """The turn's mode: what its request asked for, else the server's setting."""
        return turn.governance or self.settings.governance  # type: ignore[return-value]

    def governance_request(self, mode: str | None) -> str | None:
        """Validate a request's `charter.governance`. Raises RequestError for "off" unless
        the server allows ungoverned requests (or is itself ungoverned)."""
        if mode is None:
            return None
        if mode not in MODES:
            raise RequestError(
                f"charter.governance must be one of {', '.join(MODES)}, got {mode!r}",
                param="charter.governance",
                code="invalid_governance",
            )
        if not self.settings.governed:
            if mode != "off":
                raise RequestError(
                    f"charter.governance {mode!r}: this server runs without a constitution "
                    "(--constitution off)",
                    param="charter.governance",
                    code="ungoverned_server",
                )
            return None
        if mode == "off" and not self.settings.allow_ungoverned_requests:
            raise RequestError(
                "charter.governance 'off' is not allowed on this server (its operator can "
                "allow it with CHARTER_ALLOW_UNGOVERNED_REQUESTS=1)",
                param="charter.governance",
                code="governance_off_not_allowed",
            )
        return mode

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
        governance: str | None = None,
    ) -> Turn:
        """A turn ready for `pipeline.stream`. `retrieval` comes from `retrieval_request`,
        `governance` from `governance_request`."""
        turn = Turn(
            messages=messages,
            params=params or Params(),
            conversation_id=conversation_id,
            source=source,
            retrieval=retrieval,
            governance=governance,
        )
        turn.model = self.info["id"]
        turn.parameter_count = self.info.get("parameter_count")
        return turn
