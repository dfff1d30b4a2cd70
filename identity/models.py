"""Pure data: the POSIX identity a request runs as, directory entries, validated tokens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request runs as, after authentication and mapping.

    ``gids`` are the supplementary group ids, sorted, without duplicates, and always including
    the primary ``gid``; ``groups`` are the matching group names where known.
    """

    issuer: str
    sub: str
    username: str
    uid: int
    gid: int
    gids: tuple[int, ...] = ()
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        gids = tuple(sorted({self.gid, *self.gids}))
        object.__setattr__(self, "gids", gids)
        object.__setattr__(self, "groups", tuple(sorted(set(self.groups))))


@dataclass(frozen=True, slots=True)
class User:
    """A ``posixAccount`` as a directory knows it."""

    username: str
    uid: int
    gid: int
    gecos: str = ""
    home: str = ""
    shell: str = "/bin/sh"


@dataclass(frozen=True, slots=True)
class Group:
    """A ``posixGroup``: its members are usernames (``memberUid`` or resolved ``member`` DNs)."""

    name: str
    gid: int
    members: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ValidatedToken:
    """A bearer token that passed validation (signature or introspection, time, audience).

    ``claims`` are the token's claims (JWT payload or introspection response); ``scopes`` the
    space-separated ``scope`` claim split into entries; ``expires_at`` is POSIX seconds.
    ``introspected`` tells an opaque token (RFC 7662) from a locally verified JWT.
    """

    issuer: str
    subject: str
    claims: Mapping[str, Any]
    scopes: tuple[str, ...]
    expires_at: float
    client_id: str | None = None
    introspected: bool = False
