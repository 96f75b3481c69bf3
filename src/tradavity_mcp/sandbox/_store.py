"""The sandbox's storage: JSON documents in SQLite, cached in memory.

Every entity is a document (`kind`, `id`, owning `user_id`, JSON `data`). Reads come
from the in-memory cache; writes go through to SQLite inside a transaction, so a
handler's side effects commit together or not at all. One process owns a database.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    kind    TEXT NOT NULL,
    id      INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS replays (
    key_id      INTEGER NOT NULL,
    idem_key    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created     REAL NOT NULL,
    status      INTEGER NOT NULL,
    body        BLOB NOT NULL,
    headers     TEXT NOT NULL,
    PRIMARY KEY (key_id, idem_key)
);
"""

Doc = dict[str, Any]


class Store:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.executescript(_SCHEMA)
        self._docs: dict[str, dict[int, Doc]] = {}
        self._owner: dict[tuple[str, int], int] = {}
        self._counters: dict[str, int] = {}
        self._load()
        self._depth = 0
        self._undo: list[tuple[str, int, Doc | None, int | None]] = []

    def _load(self) -> None:
        """Fill the in-memory cache from the database."""
        self._docs, self._owner, self._counters = {}, {}, {}
        for kind, doc_id, user_id, data in self._db.execute(
            "SELECT kind, id, user_id, data FROM docs"
        ):
            self._docs.setdefault(kind, {})[doc_id] = json.loads(data)
            self._owner[(kind, doc_id)] = user_id
        for name, value in self._db.execute("SELECT name, value FROM counters"):
            self._counters[name] = value

    def image(self) -> bytes:
        """The whole store as bytes (the database and its cache), to fill another store
        with (`restore`)."""
        with self._lock:
            return pickle.dumps(
                (self._db.serialize(), self._docs, self._owner, self._counters),
                protocol=pickle.HIGHEST_PROTOCOL,
            )

    def restore(self, image: bytes) -> None:
        """Make this store's contents those of `image` (from `image()` in this process)."""
        data, docs, owner, counters = pickle.loads(image)  # noqa: S301 (our own bytes)
        source = sqlite3.connect(":memory:")
        try:
            source.deserialize(data)
            with self._lock:
                source.backup(self._db)
                self._docs, self._owner, self._counters = docs, owner, counters
        finally:
            source.close()

    @property
    def empty(self) -> bool:
        return not self._docs

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together; an exception rolls back store and cache."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
                self._undo = []
                counters = dict(self._counters)
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                    for kind, doc_id, old, owner in reversed(self._undo):
                        if old is None:
                            self._docs.get(kind, {}).pop(doc_id, None)
                            self._owner.pop((kind, doc_id), None)
                        else:
                            self._docs.setdefault(kind, {})[doc_id] = old
                            self._owner[(kind, doc_id)] = owner or 0
                    self._counters = counters
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def next_id(self, name: str) -> int:
        with self.transaction():
            value = self._counters.get(name, 0) + 1
            self._counters[name] = value
            self._db.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=?",
                (name, value, value),
            )
            return value

    def put(self, kind: str, doc_id: int, user_id: int, data: Doc) -> Doc:
        with self.transaction():
            old = self._docs.get(kind, {}).get(doc_id)
            self._undo.append(
                (
                    kind,
                    doc_id,
                    json.loads(json.dumps(old)) if old else None,
                    self._owner.get((kind, doc_id)),
                )
            )
            self._docs.setdefault(kind, {})[doc_id] = data
            self._owner[(kind, doc_id)] = user_id
            self._db.execute(
                "INSERT INTO docs VALUES (?, ?, ?, ?) ON CONFLICT(kind, id) DO UPDATE SET "
                "user_id=excluded.user_id, data=excluded.data",
                (kind, doc_id, user_id, json.dumps(data, separators=(",", ":"))),
            )
            return data

    def delete(self, kind: str, doc_id: int) -> None:
        with self.transaction():
            old = self._docs.get(kind, {}).pop(doc_id, None)
            owner = self._owner.pop((kind, doc_id), None)
            if old is not None:
                self._undo.append((kind, doc_id, old, owner))
            self._db.execute("DELETE FROM docs WHERE kind=? AND id=?", (kind, doc_id))

    def get(self, kind: str, doc_id: int, user_id: int | None = None) -> Doc | None:
        doc = self._docs.get(kind, {}).get(doc_id)
        if doc is None or (user_id is not None and self._owner.get((kind, doc_id)) != user_id):
            return None
        return doc

    def all(self, kind: str, user_id: int | None = None) -> list[Doc]:
        docs = self._docs.get(kind, {})
        if user_id is None:
            return list(docs.values())
        return [d for i, d in docs.items() if self._owner.get((kind, i)) == user_id]

    # --- the idempotency cache ------------------------------------------------------------

    def save_replay(
        self,
        key_id: int,
        idem_key: str,
        fingerprint: str,
        created: float,
        response: tuple[int, bytes, dict[str, str]],
    ) -> None:
        """Cache a response for replays (inside the write's transaction when there is one);
        entries older than a day are dropped on the way."""
        status, body, headers = response
        with self.transaction():
            self._db.execute("DELETE FROM replays WHERE created < ?", (created - 86400,))
            self._db.execute(
                "INSERT OR REPLACE INTO replays VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, idem_key, fingerprint, created, status, body, json.dumps(headers)),
            )

    def load_replays(
        self, since: float
    ) -> Iterator[tuple[int, str, str, float, tuple[int, bytes, dict[str, str]]]]:
        rows = self._db.execute(
            "SELECT key_id, idem_key, fingerprint, created, status, body, headers FROM replays "
            "WHERE created >= ?",
            (since,),
        ).fetchall()
        for key_id, idem_key, fingerprint, created, status, body, headers in rows:
            yield key_id, idem_key, fingerprint, created, (status, bytes(body), json.loads(headers))

    def close(self) -> None:
        with self._lock:
            self._db.close()
