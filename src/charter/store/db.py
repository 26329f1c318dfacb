"""The store: engine set-up, numbered migrations, and the repository functions.

Writes are small and short-lived so a crash loses nothing already said: the user's message is
committed before generation, the answer is checkpointed while it streams.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine

from charter.errors import ConflictError, NotFoundError, RequestError

CONVERSATION_FIELDS = "id, title, source, created_at, updated_at"
MESSAGE_FIELDS = (
    "id, conversation_id, seq, role, content, status, finish_reason, error, "
    "charter, created_at, updated_at"
)
FEEDBACK_FIELDS = (
    "id, message_id, reviewer, rating, better, note, api_key_id, created_at, updated_at"
)
RATINGS = ("up", "down")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql) for every file in migrations/, in order."""
    out = []
    for f in resources.files("charter.store").joinpath("migrations").iterdir():
        if f.name.endswith(".sql"):
            out.append((int(f.name.split("_", 1)[0]), f.name, f.read_text("utf-8")))
    return sorted(out)


class Store:
    """One database: SQLite file by default (`url` may name PostgreSQL later)."""

    def __init__(self, path: Path | None = None, *, url: str | None = None):
        if url is None:
            if path is None:
                raise ValueError("Store needs a path or a url")
            path.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{path}"
        self.engine: Engine = create_engine(
            url, connect_args={"timeout": 30} if url.startswith("sqlite") else {}
        )
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.migrate()

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply every migration not yet applied; return the names applied now."""
        applied_now = []
        with self.engine.begin() as c:
            c.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "number INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                    "applied_at DOUBLE PRECISION NOT NULL)"
                )
            )
            done = {r[0] for r in c.execute(text("SELECT number FROM schema_migrations"))}
            for number, name, sql in _migrations():
                if number in done:
                    continue
                for statement in _statements(sql):
                    c.execute(text(statement))
                c.execute(
                    text("INSERT INTO schema_migrations VALUES (:n, :name, :t)"),
                    {"n": number, "name": name, "t": time.time()},
                )
                applied_now.append(name)
        return applied_now

    def recover(self) -> int:
        """Mark answers left 'generating' by a crash as 'incomplete'; return how many."""
        with self.engine.begin() as c:
            r = c.execute(
                text(
                    "UPDATE messages SET status='incomplete', "
                    "finish_reason=COALESCE(finish_reason, 'interrupted') "
                    "WHERE status='generating'"
                )
            )
            return r.rowcount or 0

    # -- conversations -----------------------------------------------------------------
    def create_conversation(
        self, title: str = "New chat", source: str = "api", conn: Connection | None = None
    ) -> dict[str, Any]:
        now = time.time()
        row = {
            "id": new_id("conv"),
            "title": title,
            "source": source,
            "created_at": now,
            "updated_at": now,
        }
        with _tx(self.engine, conn) as c:
            c.execute(
                text(
                    "INSERT INTO conversations VALUES "
                    "(:id, :title, :source, :created_at, :updated_at)"
                ),
                row,
            )
        return {**row, "message_count": 0}

    def list_conversations(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(
                text(
                    "SELECT c.id, c.title, c.source, c.created_at, c.updated_at, "
                    "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) "
                    "AS message_count FROM conversations c "
                    "ORDER BY c.updated_at DESC, c.id LIMIT :limit OFFSET :offset"
                ),
                {"limit": limit, "offset": offset},
            )
            return [dict(r._mapping) for r in rows]

    def get_conversation(
        self, conversation_id: str, *, with_messages: bool = True, conn: Connection | None = None
    ) -> dict[str, Any]:
        """The conversation (and its messages in order). Raises NotFoundError."""
        with _tx(self.engine, conn) as c:
            row = c.execute(
                text(f"SELECT {CONVERSATION_FIELDS} FROM conversations WHERE id = :id"),
                {"id": conversation_id},
            ).first()
            if row is None:
                raise NotFoundError(
                    f"no conversation with id {conversation_id!r}", param="conversation_id"
                )
            conv = dict(row._mapping)
            msgs = [
                dict(r._mapping)
                for r in c.execute(
                    text(
                        f"SELECT {MESSAGE_FIELDS} FROM messages WHERE conversation_id = :id "
                        "ORDER BY seq"
                    ),
                    {"id": conversation_id},
                )
            ]
        conv["message_count"] = len(msgs)
        if with_messages:
            conv["messages"] = msgs
        return conv

    def rename_conversation(self, conversation_id: str, title: str) -> dict[str, Any]:
        with self.engine.begin() as c:
            r = c.execute(
                text("UPDATE conversations SET title = :t, updated_at = :now WHERE id = :id"),
                {"t": title, "now": time.time(), "id": conversation_id},
            )
            if not r.rowcount:
                raise NotFoundError(
                    f"no conversation with id {conversation_id!r}", param="conversation_id"
                )
        return self.get_conversation(conversation_id, with_messages=False)

    def delete_conversation(self, conversation_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(
                text("DELETE FROM messages WHERE conversation_id = :id"), {"id": conversation_id}
            )
            r = c.execute(text("DELETE FROM conversations WHERE id = :id"), {"id": conversation_id})
            if not r.rowcount:
                raise NotFoundError(
                    f"no conversation with id {conversation_id!r}", param="conversation_id"
                )

    # -- messages ----------------------------------------------------------------------
    def add_messages(
        self, conversation_id: str, messages: list[dict[str, Any]], conn: Connection | None = None
    ) -> list[str]:
        """Append messages ({role, content, status?}) in order; return their ids."""
        now = time.time()
        ids = []
        with _tx(self.engine, conn) as c:
            seq = c.execute(
                text("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = :id"),
                {"id": conversation_id},
            ).scalar_one()
            for m in messages:
                seq += 1
                mid = new_id("msg")
                c.execute(
                    text(
                        f"INSERT INTO messages ({MESSAGE_FIELDS}) VALUES "
                        "(:id, :cid, :seq, :role, :content, :status, NULL, NULL, "
                        "NULL, :now, :now)"
                    ),
                    {
                        "id": mid,
                        "cid": conversation_id,
                        "seq": seq,
                        "role": m["role"],
                        "content": m["content"],
                        "status": m.get("status", "complete"),
                        "now": now,
                    },
                )
                ids.append(mid)
            c.execute(
                text("UPDATE conversations SET updated_at = :now WHERE id = :id"),
                {"now": now, "id": conversation_id},
            )
        return ids

    def update_message(self, message_id: str, **fields: Any) -> None:
        """Set content / status / finish_reason / error / charter (a JSON string) / draft."""
        allowed = {"content", "status", "finish_reason", "error", "charter", "draft"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"update_message fields must be among {sorted(allowed)}")
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        with self.engine.begin() as c:
            c.execute(
                text(f"UPDATE messages SET {sets}, updated_at = :now WHERE id = :id"),
                {**fields, "now": time.time(), "id": message_id},
            )

    def get_message(self, message_id: str) -> dict[str, Any]:
        """One message with its conversation id and the operator-only `draft`.

        Raises NotFoundError."""
        with self.engine.begin() as c:
            row = c.execute(
                text(f"SELECT {MESSAGE_FIELDS}, draft FROM messages WHERE id = :id"),
                {"id": message_id},
            ).first()
        if row is None:
            raise NotFoundError(f"no message with id {message_id!r}", param="message_id")
        return dict(row._mapping)

    def delete_messages(self, message_ids: list[str]) -> None:
        with self.engine.begin() as c:
            for mid in message_ids:
                c.execute(text("DELETE FROM messages WHERE id = :id"), {"id": mid})

    # -- feedback ----------------------------------------------------------------------
    def add_feedback(
        self,
        message_id: str,
        *,
        reviewer: str,
        rating: str,
        better: str | None = None,
        note: str | None = None,
        api_key_id: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Record `reviewer`'s label on an answer; return (the label, whether it is new).

        A reviewer holds one label per message: labelling it again replaces their rating,
        better answer and note together; no other reviewer's label is touched, so
        disagreements stay on record. Raises NotFoundError (no such message), RequestError
        (not an assistant message), ConflictError (the answer is still being generated).
        """
        if rating not in RATINGS or not reviewer:
            raise ValueError("add_feedback needs a reviewer and a rating of 'up' or 'down'")
        now = time.time()
        with self.engine.begin() as c:
            msg = c.execute(
                text("SELECT role, status FROM messages WHERE id = :id"), {"id": message_id}
            ).first()
            if msg is None:
                raise NotFoundError(f"no message with id {message_id!r}", param="message_id")
            if msg.role != "assistant":
                raise RequestError(
                    f"message {message_id!r} is a {msg.role} message; feedback is given on "
                    "assistant answers",
                    param="message_id",
                    code="not_an_answer",
                )
            if msg.status == "generating":
                raise ConflictError(
                    f"message {message_id!r} is still being generated; label it once it is "
                    "finished",
                    param="message_id",
                )
            key = {"m": message_id, "r": reviewer}
            existing = c.execute(
                text("SELECT id FROM feedback WHERE message_id = :m AND reviewer = :r"), key
            ).first()
            c.execute(
                text(
                    f"INSERT INTO feedback ({FEEDBACK_FIELDS}) VALUES (:id, :m, :r, :rating, "
                    ":better, :note, :key_id, :now, :now) "
                    "ON CONFLICT (message_id, reviewer) DO UPDATE SET "
                    "rating = excluded.rating, better = excluded.better, note = excluded.note, "
                    "api_key_id = excluded.api_key_id, updated_at = excluded.updated_at"
                ),
                {
                    **key,
                    "id": new_id("fb"),
                    "rating": rating,
                    "better": better,
                    "note": note,
                    "key_id": api_key_id,
                    "now": now,
                },
            )
            row = c.execute(
                text(
                    f"SELECT {FEEDBACK_FIELDS} FROM feedback "
                    "WHERE message_id = :m AND reviewer = :r"
                ),
                key,
            ).one()
        return dict(row._mapping), existing is None

    def list_feedback(self, message_id: str) -> list[dict[str, Any]]:
        """Every reviewer's label on a message, oldest first. Raises NotFoundError."""
        with self.engine.connect() as c:
            if (
                c.execute(text("SELECT 1 FROM messages WHERE id = :id"), {"id": message_id}).first()
                is None
            ):
                raise NotFoundError(f"no message with id {message_id!r}", param="message_id")
            rows = c.execute(
                text(
                    f"SELECT {FEEDBACK_FIELDS} FROM feedback WHERE message_id = :id "
                    "ORDER BY created_at, reviewer"
                ),
                {"id": message_id},
            )
            return [dict(r._mapping) for r in rows]

    def conversation_feedback(self, conversation_id: str) -> dict[str, list[dict[str, Any]]]:
        """The labels on a conversation's messages, by message id (unlabelled ones absent)."""
        fields = ", ".join(f"f.{f.strip()}" for f in FEEDBACK_FIELDS.split(","))
        with self.engine.connect() as c:
            rows = c.execute(
                text(
                    f"SELECT {fields} FROM feedback f JOIN messages m ON m.id = f.message_id "
                    "WHERE m.conversation_id = :id ORDER BY f.created_at, f.reviewer"
                ),
                {"id": conversation_id},
            )
            out: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                out.setdefault(r.message_id, []).append(dict(r._mapping))
        return out

    def iter_feedback(self) -> Iterator[dict[str, Any]]:
        """Every labelled message, in conversation order, with what led up to it.

        Yields `{"message": {...}, "prompt": [{"role", "content"}, ...], "labels": [...]}`:
        the prompt is the conversation before the answer as the model was given it (earlier
        answers that stayed empty are left out, as the pipeline leaves them out).
        """
        fields = ", ".join(f"f.{f.strip()}" for f in FEEDBACK_FIELDS.split(","))
        with self.engine.connect() as c:
            rows = c.execute(
                text(
                    f"SELECT {fields}, m.conversation_id FROM feedback f "
                    "JOIN messages m ON m.id = f.message_id "
                    "ORDER BY m.conversation_id, m.seq, f.created_at, f.reviewer"
                )
            )
            by_conversation: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for r in rows:
                label = dict(r._mapping)
                conversation_id = label.pop("conversation_id")
                labels = by_conversation.setdefault(conversation_id, {})
                labels.setdefault(label["message_id"], []).append(label)
        for conversation_id, labels in by_conversation.items():
            try:
                messages = self.get_conversation(conversation_id)["messages"]
            except NotFoundError:  # deleted since the labels were read
                continue
            for i, message in enumerate(messages):
                if message["id"] not in labels:
                    continue
                prompt = [
                    {"role": m["role"], "content": m["content"]}
                    for m in messages[:i]
                    if m["content"] or m["role"] != "assistant"
                ]
                yield {"message": message, "prompt": prompt, "labels": labels[message["id"]]}

    # -- API keys ----------------------------------------------------------------------
    def create_key(self, name: str) -> tuple[dict[str, Any], str]:
        """Create a key; return (its record, the secret). The secret is shown once only."""
        secret = "ck-" + secrets.token_urlsafe(32)
        row = {
            "id": new_id("key"),
            "name": name,
            "prefix": secret[:7],
            "hash": _hash_key(secret),
            "created_at": time.time(),
        }
        with self.engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO api_keys (id, name, prefix, hash, created_at) "
                    "VALUES (:id, :name, :prefix, :hash, :created_at)"
                ),
                row,
            )
        return {k: v for k, v in row.items() if k != "hash"}, secret

    def list_keys(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            rows = c.execute(
                text(
                    "SELECT id, name, prefix, created_at, last_used_at, "
                    "revoked_at FROM api_keys ORDER BY created_at"
                )
            )
            return [dict(r._mapping) for r in rows]

    def key_name(self, key_id: str) -> str | None:
        """The name given to the key with this id (None if there is none)."""
        with self.engine.connect() as c:
            return c.execute(
                text("SELECT name FROM api_keys WHERE id = :id"), {"id": key_id}
            ).scalar_one_or_none()

    def revoke_key(self, key_id_or_name: str) -> dict[str, Any]:
        """Revoke by id or name. Raises NotFoundError when no active key matches."""
        with self.engine.begin() as c:
            r = c.execute(
                text(
                    "UPDATE api_keys SET revoked_at = :now WHERE "
                    "(id = :k OR name = :k) AND revoked_at IS NULL"
                ),
                {"now": time.time(), "k": key_id_or_name},
            )
            if not r.rowcount:
                raise NotFoundError(f"no active API key with id or name {key_id_or_name!r}")
        return next(
            k
            for k in self.list_keys()
            if key_id_or_name in (k["id"], k["name"]) and k["revoked_at"]
        )

    def verify_key(self, secret: str) -> str | None:
        """The key's id if `secret` is an active key, else None."""
        with self.engine.begin() as c:
            row = c.execute(
                text("SELECT id FROM api_keys WHERE hash = :h AND revoked_at IS NULL"),
                {"h": _hash_key(secret)},
            ).first()
            if row is None:
                return None
            c.execute(
                text("UPDATE api_keys SET last_used_at = :now WHERE id = :id"),
                {"now": time.time(), "id": row[0]},
            )
            return row[0]


def _hash_key(secret: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a committed transaction survives a process crash (kill -9);
    # only a power loss can drop the last commits.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class _tx:
    """Use the caller's connection if given, else a fresh transaction."""

    def __init__(self, engine: Engine, conn: Connection | None):
        self.engine, self.conn, self._cm = engine, conn, None

    def __enter__(self) -> Connection:
        if self.conn is not None:
            return self.conn
        self._cm = self.engine.begin()
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._cm is not None:
            self._cm.__exit__(*exc)
