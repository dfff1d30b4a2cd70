"""Token or credential owner → :class:`identity.models.Identity`, as configured.

* ``identity.source: claims``: the token's own claims
  (:func:`identity.claims.identity_from_claims`).
  An app credential carries no token, so the last identity claims seen for its owner (at login
  or with a bearer token) are kept in a :class:`ClaimsSnapshots` store and mapped again, with
  today's policy, on every use: a changed membership applies from the owner's next login.
* ``ldap`` / ``static``: the username looked up in the (cached) directory, on every request and
  every credential use, so a changed group applies within the cache TTL and a removed user is
  refused.

Every refusal is an :mod:`identity.errors` exception (403 mapping, 503 directory down).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from identity.claims import ClaimsPolicy, DirectoryIdentityMapper, identity_from_claims
from identity.directory import Directory
from identity.errors import DirectoryUnavailableError, MappingError
from identity.models import Identity, ValidatedToken
from kubepie.credentials.models import Owner


class ClaimsSnapshots:
    """The identity claims last seen per owner (``iss``, ``sub``), in a small SQLite file.

    Only the claims the mapping reads are kept (username, uid, gid, gids, groups): never a
    token. Writes happen only when the claims changed; this process's router is the file's only
    writer, so what it wrote or read once is served from memory afterwards.
    """

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        self._path = path
        self._fields = fields
        self._lock = asyncio.Lock()
        self._written: dict[tuple[str, str], str] = {}
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS snapshots (issuer TEXT NOT NULL, sub TEXT NOT NULL,"
                " claims TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (issuer, sub))"
            )
            self._path.chmod(0o600)
            self._conn = conn
        return self._conn

    def _subset(self, claims: Mapping[str, Any]) -> str:
        return json.dumps({k: claims[k] for k in self._fields if k in claims}, sort_keys=True)

    async def remember(self, token: ValidatedToken) -> None:
        key = (token.issuer, token.subject)
        text = self._subset(token.claims)
        if self._written.get(key) == text:
            return
        async with self._lock:
            await asyncio.to_thread(self._write, key, text)
        self._written[key] = text

    def _write(self, key: tuple[str, str], text: str) -> None:
        try:
            self._db().execute(
                "INSERT INTO snapshots VALUES (?, ?, ?, ?) ON CONFLICT (issuer, sub)"
                " DO UPDATE SET claims = excluded.claims, updated_at = excluded.updated_at",
                (*key, text, time.time()),
            )
        except sqlite3.Error as exc:
            raise DirectoryUnavailableError("identity snapshot store cannot be written") from exc

    async def claims_of(self, issuer: str, sub: str) -> dict[str, Any] | None:
        key = (issuer, sub)
        text = self._written.get(key)
        if text is None:  # not seen since this process started: read what an earlier one wrote
            async with self._lock:
                text = await asyncio.to_thread(self._read, issuer, sub)
            if text is None:
                return None
            self._written[key] = text
        value = json.loads(text)
        return value if isinstance(value, dict) else None

    def _read(self, issuer: str, sub: str) -> str | None:
        try:
            cur = self._db().execute(
                "SELECT claims FROM snapshots WHERE issuer = ? AND sub = ?", (issuer, sub)
            )
            row = cur.fetchone()
        except sqlite3.Error as exc:
            raise DirectoryUnavailableError("identity snapshot store cannot be read") from exc
        return None if row is None else str(row[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class IdentityResolver:
    """Maps validated tokens and credential owners to identities; see the module docstring."""

    def __init__(
        self,
        policy: ClaimsPolicy,
        *,
        directory: Directory | None,
        snapshots: ClaimsSnapshots | None,
    ) -> None:
        if (directory is None) == (snapshots is None):
            raise ValueError("give exactly one of a directory (ldap/static) or snapshots (claims)")
        self._policy = policy
        self._directory = directory
        self._mapper = DirectoryIdentityMapper(directory, policy) if directory is not None else None
        self._snapshots = snapshots

    @property
    def policy(self) -> ClaimsPolicy:
        return self._policy

    async def for_token(self, token: ValidatedToken) -> Identity:
        if self._mapper is not None:
            return await self._mapper.identity_for(token)
        identity = identity_from_claims(token, self._policy)
        assert self._snapshots is not None
        await self._snapshots.remember(token)
        return identity

    async def for_owner(self, owner: Owner) -> Identity:
        """The owner's identity today (credential use): refused if they are gone."""
        if self._mapper is not None:
            claims: dict[str, Any] = {self._policy.username_claim: owner.username}
        else:
            assert self._snapshots is not None
            stored = await self._snapshots.claims_of(owner.issuer, owner.sub)
            if stored is None:
                raise MappingError("the credential's owner has no known identity")
            claims = stored
        token = ValidatedToken(
            issuer=owner.issuer, subject=owner.sub, claims=claims, scopes=(), expires_at=0.0
        )
        identity = await (
            self._mapper.identity_for(token)
            if self._mapper is not None
            else _from_claims(token, self._policy)
        )
        if identity.username != owner.username:
            raise MappingError("the credential's owner now maps to another account")
        return identity


async def _from_claims(token: ValidatedToken, policy: ClaimsPolicy) -> Identity:
    return identity_from_claims(token, policy)
