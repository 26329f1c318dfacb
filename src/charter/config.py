"""Settings: defaults, overridden by environment variables (CHARTER_*), overridden by flags.

All user data (database, models folder) lives under one directory, `CHARTER_HOME`, by
default the platform's user data directory.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from charter.errors import ConfigError


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("charter", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHARTER_", extra="forbid")

    home: Path = Field(default_factory=_default_home)
    #: Backend name (an entry point in `charter.backends`): llamacpp, openai, ...
    backend: str = "llamacpp"
    #: Backend-specific options (JSON in CHARTER_BACKEND_OPTIONS), validated by the backend.
    backend_options: dict[str, Any] = Field(default_factory=dict)
    #: A local GGUF file to serve instead of the embedded SmolLM2-135M-Instruct.
    model: Path | None = None
    n_ctx: int = Field(default=4096, ge=64)
    n_threads: int | None = Field(default=None, ge=1)
    n_gpu_layers: int = Field(default=0, ge=-1)
    #: max_tokens when a request does not say (bounded by the context left).
    default_max_tokens: int = Field(default=512, ge=1)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: Serve without API keys on a non-loopback address (explicit opt-out).
    insecure: bool = False
    #: Require API keys even on loopback.
    require_keys: bool = False
    #: Requests waiting for the model beyond this get 429 with Retry-After.
    queue_limit: int = Field(default=32, ge=0)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    #: Requests per minute per API key (0: no limit).
    rate_limit_per_minute: int = Field(default=120, ge=0)

    # Answering from documents (docs/retrieval.md).
    #: The retrieval store: a SQLite file or a postgresql:// URL (default
    #: CHARTER_HOME/retrieval.sqlite).
    retrieval_store: str | None = None
    #: The collection every answer searches unless a request says otherwise (None: off).
    retrieval_collection: str | None = Field(default=None, min_length=1)
    #: Passages put in front of the model per answer (a request may ask for 1..20).
    retrieval_k: int = Field(default=4, ge=1, le=20)
    #: No answer from the model when the best passage's cosine similarity to the question is
    #: below this: the reply says no source covers the question (docs/retrieval.md).
    retrieval_min_score: float = Field(default=0.35, ge=-1.0, le=1.0)
    #: Mark sentences the model left uncited that closely repeat one passage with that
    #: passage's number (trace: `attributed`).
    retrieval_attribution: bool = False
    #: Remove instruction-like sentences ("ignore previous instructions...") from passages
    #: before the model sees them (trace: `filtered`).
    retrieval_filter_instructions: bool = True

    # The constitution (docs/constitution.md).
    #: What governs every answer: "default" (the constitution shipped with Charter), the path
    #: of a TOML constitution file, or "off" (explicitly ungoverned).
    constitution: str = Field(default="default", min_length=1)
    #: How it governs: "screen" (refuse what fires), "critique" (a fired draft is critiqued and
    #: revised, and refused when the revision still fires), or "off". "screen" is the default:
    #: the 135M default model's revisions let more harmful requests through (docs/safety.md).
    governance: Literal["off", "screen", "critique"] = "screen"
    #: Let a request ask for `charter.governance: "off"` (refused unless set).
    allow_ungoverned_requests: bool = False
    #: Escalate scores just under a threshold to an LLM judgement of the principle: "off" or
    #: "self" (the serving model; a stronger upstream through CHARTER_BACKEND=openai).
    constitution_judge: Literal["off", "self"] = "off"
    #: The output screen's bar: a principle fires on an answer at max(its threshold, this).
    #: 0.9 kept benign answers from being stopped (docs/safety.md); lower is stricter.
    constitution_output_floor: float = Field(default=0.9, ge=0.0, le=1.0)
    #: The operator's key for the admin API (`/v1/admin/...`: replaced drafts); unset, the
    #: admin API is off. Never an end user's key.
    admin_key: str | None = Field(default=None, min_length=16)
    #: Where trained screens are cached (default: the platform's user cache directory).
    cache_dir: Path | None = None

    @field_validator("home", "model", "cache_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    @property
    def governed(self) -> bool:
        """False only when told so: `--constitution off`."""
        return self.constitution.strip().lower() != "off"

    @property
    def screen_cache_dir(self) -> Path | None:
        return self.cache_dir / "screens" if self.cache_dir is not None else None

    @property
    def db_path(self) -> Path:
        return self.home / "charter.db"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def retrieval_location(self) -> str:
        """Where the retrieval store is: the setting, or CHARTER_HOME/retrieval.sqlite."""
        return self.retrieval_store or str(self.home / "retrieval.sqlite")

    @property
    def keys_required(self) -> bool:
        """Keys are needed on any non-loopback address unless --insecure, or when asked."""
        return self.require_keys or (not is_loopback(self.host) and not self.insecure)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with `overrides` (flags) on top; None values ignored.

    Raises ConfigError naming the setting when a value is invalid.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except SettingsError as exc:
        # A complex value (CHARTER_BACKEND_OPTIONS) that is not valid JSON.
        raise ConfigError(
            f"{exc}; complex settings take JSON, e.g. "
            'CHARTER_BACKEND_OPTIONS=\'{"base_url": "http://host:8000/v1"}\''
        ) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        raise ConfigError(
            f"invalid setting {field} (CHARTER_{field.upper()}): {err['msg']}"
        ) from None
