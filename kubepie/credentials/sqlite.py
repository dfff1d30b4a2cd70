"""The SQLite :class:`~kubepie.credentials.store.CredentialStore`: one file under ``state_dir``.

One connection per store, used from worker threads (``asyncio.to_thread``) one operation at a
time. The database runs in WAL mode, so several processes (or store instances) may share the
file: a revocation committed by one is seen by the next lookup of every other, since lookups
always read the file. Secrets are sealed with :class:`~kubepie.credentials.cipher.SecretCipher`
(a revoked credential's sealed secret is erased); the file is kept ``0600`` (SQLite gives its
``-wal`` and ``-shm`` files the same mode) and a missing directory is created ``0700``.

This module is the only one that imports ``sqlite3``; its exceptions become
:class:`StoreUnavailableError` here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from hmac import compare_digest
from pathlib import Path
from typing import Any, TypeVar

from kubepie.credentials.cipher import SecretCipher
from kubepie.credentials.errors import (
    CredentialExpired,
    CredentialNotFound,
    CredentialRevoked,
    EncryptionKeyError,
    InvalidCredentialRequest,
    SecretMismatch,
    StoreUnavailableError,
    UnknownAccessKey,
)
from kubepie.credentials.models import (
    ActiveCredential,
    Credential,
    NewCredential,
    Owner,
    check_description,
    normalize_prefix,
)
from kubepie.credentials.store import (
    ACCESS_KEY_ID,
    CredentialPolicy,
    new_access_key_id,
    new_credential_id,
    new_secret_access_key,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The one answer for an unknown access key and a wrong secret: which of the two, or any
#: internal id, would tell a guesser what exists.
INVALID_KEY_OR_SECRET = "invalid access key or secret"  # noqa: S105 (a message)

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    id              TEXT PRIMARY KEY,
    access_key_id   TEXT NOT NULL UNIQUE,
    owner_issuer    TEXT NOT NULL,
    owner_sub       TEXT NOT NULL,
    owner_username  TEXT NOT NULL,
    description     TEXT NOT NULL,
    read_only       INTEGER NOT NULL,
    prefix          TEXT NOT NULL,
    created_at      REAL NOT NULL,
    expires_at      REAL,
    last_used_at    REAL,
    revoked_at      REAL,
    key_id          TEXT,
    sealed_secret   BLOB
);
CREATE INDEX IF NOT EXISTS credentials_owner ON credentials (owner_issuer, owner_sub);
"""
_COLUMNS = (
    "id, access_key_id, owner_issuer, owner_sub, owner_username, description, read_only, "
    "prefix, created_at, expires_at, last_used_at, revoked_at, key_id, sealed_secret"
)
#: Upper bound on ``expires_in`` when no ``max_lifetime`` is configured: 100 years, in seconds.
_LONGEST = 100 * 365 * 86400.0
#: Compared against when the access key id is unknown, so that path costs about the same.
_DUMMY_SECRET = b"x" * 40


def _credential(row: sqlite3.Row) -> Credential:
    return Credential(
        id=row["id"],
        access_key_id=row["access_key_id"],
        owner=Owner(row["owner_issuer"], row["owner_sub"], row["owner_username"]),
        description=row["description"],
        read_only=bool(row["read_only"]),
        prefix=row["prefix"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
    )


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also tighten a file restored with looser permissions
    finally:
        os.close(fd)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise StoreUnavailableError(
                f"credential database {path} has schema {version}, newer than this version "
                f"of kubepie understands ({_SCHEMA_VERSION})"
            )
        if version < _SCHEMA_VERSION:
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


class SqliteCredentialStore:
    """App credentials in an SQLite file. Create with :meth:`open`; close with :meth:`close`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        cipher: SecretCipher,
        policy: CredentialPolicy,
        clock: Callable[[], float],
    ) -> None:
        self._conn = conn
        self._path = path
        self._cipher = cipher
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._recorded: dict[str, float] = {}

    @classmethod
    async def open(
        cls,
        path: Path,
        cipher: SecretCipher,
        policy: CredentialPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> SqliteCredentialStore:
        """Open (creating if needed) the store at ``path``.

        Fails closed with :class:`EncryptionKeyError` when the file holds secrets sealed with a
        key that is not configured: a wrong or missing key is reported at start, not at the
        first login.
        """
        try:
            conn = await asyncio.to_thread(_connect, path)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"credential database {path}: {exc}") from exc
        except OSError as exc:
            raise StoreUnavailableError(f"credential database {path}: {exc.strerror}") from exc
        store = cls(conn, path, cipher, policy or CredentialPolicy(), clock)
        try:
            await store._check_keys()
        except BaseException:
            await store.close()
            raise
        return store

    def __repr__(self) -> str:
        return f"SqliteCredentialStore({str(self._path)!r})"

    async def close(self) -> None:
        """Close the connection, after any operation still running in a worker thread."""
        await self._run(self._conn.close)

    async def __aenter__(self) -> SqliteCredentialStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        def locked() -> T:
            with self._lock:
                return func(*args)

        try:
            return await asyncio.to_thread(locked)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"credential database {self._path}: {exc}") from exc

    async def _check_keys(self) -> None:
        rows = await self._run(
            lambda: self._conn.execute(
                "SELECT DISTINCT key_id FROM credentials WHERE sealed_secret IS NOT NULL"
            ).fetchall()
        )
        missing = sorted({row["key_id"] for row in rows} - self._cipher.key_ids)
        if missing:
            raise EncryptionKeyError(
                f"credential database {self._path} holds secrets encrypted with key(s) "
                f"{', '.join(missing)}, which are not configured (configured: "
                f"{', '.join(sorted(self._cipher.key_ids))}). Configure the key they were "
                "written with; while rotating, list the new key first and keep the old one."
            )

    # -- management (owner-scoped) -------------------------------------------------------------

    def _lifetime(self, expires_in: float | None) -> float | None:
        longest = self._policy.max_lifetime
        if expires_in is None:
            return longest
        if isinstance(expires_in, bool) or not expires_in > 0:
            raise InvalidCredentialRequest("expires_in must be a positive number of seconds")
        if expires_in > (longest if longest is not None else _LONGEST):
            raise InvalidCredentialRequest(
                f"expires_in is longer than the allowed {longest or _LONGEST:.0f} seconds"
            )
        return expires_in

    async def create(
        self,
        owner: Owner,
        *,
        description: str = "",
        expires_in: float | None = None,
        read_only: bool = False,
        prefix: str = "",
    ) -> NewCredential:
        lifetime = self._lifetime(expires_in)
        description = check_description(description)
        prefix = normalize_prefix(prefix)
        now = self._clock()
        credential = Credential(
            id=new_credential_id(),
            access_key_id=new_access_key_id(),
            owner=owner,
            description=description,
            read_only=read_only,
            prefix=prefix,
            created_at=now,
            expires_at=None if lifetime is None else now + lifetime,
            last_used_at=None,
        )
        secret = new_secret_access_key()
        key_id, sealed = self._cipher.seal(secret, credential.id)
        await self._run(self._insert, credential, key_id, sealed)
        log.info("credential %s created for %s", credential.id, owner.username)
        return NewCredential(credential, secret)

    def _insert(self, c: Credential, key_id: str, sealed: bytes) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            (count,) = conn.execute(
                "SELECT count(*) FROM credentials WHERE owner_issuer = ? AND owner_sub = ? "
                "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
                (c.owner.issuer, c.owner.sub, c.created_at),
            ).fetchone()
            if count >= self._policy.max_per_owner:
                raise InvalidCredentialRequest(
                    f"at most {self._policy.max_per_owner} credentials per user; revoke one first"
                )
            conn.execute(
                f"INSERT INTO credentials ({_COLUMNS}) "  # noqa: S608 (constant column list)
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
                (
                    c.id,
                    c.access_key_id,
                    c.owner.issuer,
                    c.owner.sub,
                    c.owner.username,
                    c.description,
                    int(c.read_only),
                    c.prefix,
                    c.created_at,
                    c.expires_at,
                    key_id,
                    sealed,
                ),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def list_for(self, owner: Owner) -> tuple[Credential, ...]:
        rows = await self._run(
            lambda: self._conn.execute(
                f"SELECT {_COLUMNS} FROM credentials "  # noqa: S608 (constant column list)
                "WHERE owner_issuer = ? AND owner_sub = ? AND revoked_at IS NULL "
                "ORDER BY created_at, id",
                (owner.issuer, owner.sub),
            ).fetchall()
        )
        return tuple(_credential(row) for row in rows)

    async def revoke(self, owner: Owner, credential_id: str) -> None:
        now = self._clock()
        changed = await self._run(
            lambda: (
                self._conn.execute(
                    "UPDATE credentials SET revoked_at = ?, key_id = NULL, sealed_secret = NULL "
                    "WHERE id = ? AND owner_issuer = ? AND owner_sub = ? AND revoked_at IS NULL",
                    (now, credential_id, owner.issuer, owner.sub),
                ).rowcount
            )
        )
        if changed != 1:
            raise CredentialNotFound(f"no credential {credential_id!r} of this user")
        self._recorded.pop(credential_id, None)
        log.info("credential %s revoked by %s", credential_id, owner.username)

    async def reseal(self) -> int:
        """Re-encrypt every stored secret under the first configured key; the count changed.

        The second half of a key rotation: afterwards the older keys may be removed.
        """
        count = await self._run(self._reseal)
        log.info("resealed %d credential secrets with key %s", count, self._cipher.primary_key_id)
        return count

    def _reseal(self) -> int:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT id, key_id, sealed_secret FROM credentials "
                "WHERE sealed_secret IS NOT NULL AND key_id != ?",
                (self._cipher.primary_key_id,),
            ).fetchall()
            for row in rows:
                secret = self._cipher.open(row["key_id"], row["sealed_secret"], row["id"])
                key_id, sealed = self._cipher.seal(secret, row["id"])
                conn.execute(
                    "UPDATE credentials SET key_id = ?, sealed_secret = ? WHERE id = ?",
                    (key_id, sealed, row["id"]),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return len(rows)

    # -- authentication ------------------------------------------------------------------------

    async def authenticate(self, access_key_id: str) -> ActiveCredential:
        credential, secret = await self._lookup(access_key_id)
        self._check_expiry(credential)
        return ActiveCredential(credential, secret)

    async def _lookup(self, access_key_id: str) -> tuple[Credential, str]:
        """The credential and its secret; unknown and revoked keys are refused here."""
        if not ACCESS_KEY_ID.match(access_key_id):
            raise UnknownAccessKey(INVALID_KEY_OR_SECRET)
        row = await self._run(
            lambda: self._conn.execute(
                f"SELECT {_COLUMNS} FROM credentials "  # noqa: S608 (constant column list)
                "WHERE access_key_id = ?",
                (access_key_id,),
            ).fetchone()
        )
        if row is None:
            raise UnknownAccessKey(INVALID_KEY_OR_SECRET)
        credential = _credential(row)
        if row["revoked_at"] is not None:
            # Its secret is erased, so nothing more can be checked; no internal id is named.
            raise CredentialRevoked("this access key was revoked")
        return credential, self._cipher.open(row["key_id"], row["sealed_secret"], credential.id)

    def _check_expiry(self, credential: Credential) -> None:
        if credential.expires_at is not None and credential.is_expired(self._clock()):
            when = datetime.fromtimestamp(credential.expires_at, UTC).isoformat(timespec="seconds")
            raise CredentialExpired(f"this access key expired at {when}")

    async def verify(self, access_key_id: str, secret_access_key: str) -> Credential:
        """The credential whose key and secret these are. An unknown key and a wrong secret
        are refused with one message (a caller learns neither which nor any internal id);
        only a caller who knows the secret learns that the key has expired."""
        given = secret_access_key.encode("utf-8", "surrogatepass")
        try:
            credential, secret = await self._lookup(access_key_id)
        except UnknownAccessKey:
            compare_digest(_DUMMY_SECRET, given)
            raise
        if not compare_digest(secret.encode("utf-8"), given):
            raise SecretMismatch(INVALID_KEY_OR_SECRET)
        self._check_expiry(credential)
        await self.record_use(credential)
        return credential

    async def record_use(self, credential: Credential) -> None:
        now = self._clock()
        interval = self._policy.last_used_interval
        last = max(credential.last_used_at or 0.0, self._recorded.get(credential.id, 0.0))
        if last and now - last < interval:
            return
        self._recorded[credential.id] = now
        await self._run(
            lambda: self._conn.execute(
                "UPDATE credentials SET last_used_at = ? WHERE id = ? "
                "AND (last_used_at IS NULL OR last_used_at <= ?)",
                (now, credential.id, now - interval),
            )
        )
