"""Conversations, messages and API keys, stored through SQLAlchemy Core.

The embedded default is one SQLite file in WAL mode; the SQL is kept portable so PostgreSQL
can follow. Schema changes only through numbered files in `migrations/`, applied in order.
"""

from charter.store.db import Store

__all__ = ["Store"]
