"""Pure data: the POSIX identity a request runs as, and directory entries."""

from __future__ import annotations

from dataclasses import dataclass, field


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
