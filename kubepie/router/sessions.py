"""Server-side browser sessions: every login gets an id; logout or the user's removal ends it.

The sealed session cookie (:mod:`kubepie.router.session`) carries the identity claims and a
random session id, and is honoured only while that id is live in a :class:`SessionStore`: a
cookie copied before logout, or kept by a browser whose user has since been removed from the
directory, opens nothing, although its seal and expiry are still good.

:class:`SqliteSessionStore` keeps only a SHA-256 hash of each id (a copy of the file gives no
usable session), with the owner (issuer, subject) and expiry, in its own SQLite file beside the
credential database. WAL mode and no in-process cache: every lookup reads the file, so a logout
answered by one router process is seen by the next request to any other sharing the file.
Routers on several hosts plug another :class:`SessionStore` in where the router is assembled.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kubepie.router.errors import SessionStoreError

T = TypeVar("T")

#: Random bytes in a session id (256 bits).
ID_BYTES = 32
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id_hash     TEXT PRIMARY KEY,
    issuer      TEXT NOT NULL,
    sub         TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_owner ON sessions (issuer, sub);
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);
"""


class SessionStore(Protocol):
    """Where live browser sessions are kept (see the module docstring)."""

    async def start(self, issuer: str, sub: str, lifetime: float) -> str:
        """A new live session of (``issuer``, ``sub``) for ``lifetime`` seconds: its id."""
        ...

    async def alive(self, session_id: str) -> bool:
        """Whether ``session_id`` names a session that was started, not ended, not expired."""
        ...

    async def end(self, session_id: str) -> None:
        """End one session (logout); ending an unknown one is not an error."""
        ...

    async def end_all(self, issuer: str, sub: str) -> int:
        """End every session of one user (removed, disabled); how many there were."""
        ...


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


class SqliteSessionStore:
    """Sessions in an SQLite file. Create with :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Callable[[], float]) -> None:
        self._conn = conn
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    async def open(
        cls, path: Path, *, clock: Callable[[], float] = time.time
    ) -> SqliteSessionStore:
        try:
            conn = await asyncio.to_thread(_connect, path)
        except sqlite3.Error as exc:
            raise SessionStoreError(f"session database {path}: {exc}") from exc
        except OSError as exc:
            raise SessionStoreError(f"session database {path}: {exc.strerror}") from exc
        return cls(conn, path, clock)

    def __repr__(self) -> str:
        return f"SqliteSessionStore({str(self._path)!r})"

    async def close(self) -> None:
        await self._run(self._conn.close)

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        def locked() -> T:
            with self._lock:
                return func(*args)

        try:
            return await asyncio.to_thread(locked)
        except sqlite3.Error as exc:
            raise SessionStoreError(f"session database {self._path}: {exc}") from exc

    async def start(self, issuer: str, sub: str, lifetime: float) -> str:
        session_id = secrets.token_urlsafe(ID_BYTES)
        now = self._clock()

        def insert() -> None:
            # Expired rows go as new ones come: the table holds about one working day of logins.
            self._conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            self._conn.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                (_digest(session_id), issuer, sub, now, now + lifetime),
            )

        await self._run(insert)
        return session_id

    async def alive(self, session_id: str) -> bool:
        if not session_id:
            return False
        row = await self._run(
            lambda: self._conn.execute(
                "SELECT 1 FROM sessions WHERE id_hash = ? AND expires_at > ?",
                (_digest(session_id), self._clock()),
            ).fetchone()
        )
        return row is not None

    async def end(self, session_id: str) -> None:
        await self._run(
            lambda: self._conn.execute(
                "DELETE FROM sessions WHERE id_hash = ?", (_digest(session_id),)
            )
        )

    async def end_all(self, issuer: str, sub: str) -> int:
        cursor = await self._run(
            lambda: self._conn.execute(
                "DELETE FROM sessions WHERE issuer = ? AND sub = ?", (issuer, sub)
            )
        )
        return int(cursor.rowcount)


__all__ = ["SessionStore", "SqliteSessionStore"]
