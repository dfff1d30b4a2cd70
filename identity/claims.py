"""Claims → :class:`identity.models.Identity`: the POSIX identity a validated token runs as.

Two sources, one policy:

* :func:`identity_from_claims` (pure): uid, gid, supplementary gids and group names from the
  token's own claims (``identity.source: claims``);
* :class:`DirectoryIdentityMapper` (async): the username claim looked up in a
  :class:`identity.directory.Directory` (``identity.source: ldap|static``).

Both end in :func:`check_identity`, which fails closed with :class:`MappingError` (403): no
uid, uid or any gid 0, uid below ``min_uid``, a primary or supplementary gid below ``min_gid``
and not in ``allowed_low_gids``, not in an allowed group. Numbers must be real
JSON integers (``true`` is not 1, ``"1001"`` is not 1001). A token without a user (a
``client_credentials`` token) has no username claim and is refused here, though it is a valid
token. A directory that cannot be reached raises
:class:`identity.errors.DirectoryUnavailableError` (503) unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from identity.directory import Directory
from identity.errors import MappingError
from identity.models import Identity, ValidatedToken

#: The largest valid uid/gid (``(uid_t) -1`` means "no change" to setresuid and is excluded).
MAX_ID = 2**32 - 2


@dataclass(frozen=True, slots=True)
class ClaimsPolicy:
    """Which claims carry what, and who may be mapped.

    ``min_uid``: accounts below it are system accounts (Debian's ``FIRST_UID`` is 1000); they
    never get a file server. ``min_gid``: groups below it are system groups (Debian's
    ``FIRST_GID`` is 1000; ``disk`` 6 and ``shadow`` 42 open raw devices and password hashes):
    an identity with such a primary or supplementary gid is refused, not trimmed, unless the
    gid is in ``allowed_low_gids`` (e.g. ``users``, 100, where it is every user's primary group).
    ``allowed_groups``: if set, the user must be in at least one of these groups (by name).
    """

    username_claim: str = "preferred_username"
    uid_claim: str = "uid"
    gid_claim: str = "gid"
    gids_claim: str = "gids"
    groups_claim: str = "groups"
    min_uid: int = 1000
    min_gid: int = 1000
    allowed_low_gids: frozenset[int] = frozenset()
    allowed_groups: frozenset[str] | None = None


def _integer(claims: Mapping[str, Any], name: str) -> int:
    if name not in claims:
        raise MappingError(f"token has no {name!r} claim")
    value = claims[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise MappingError(f"claim {name!r} is not an integer")
    return value


def username_of(claims: Mapping[str, Any], policy: ClaimsPolicy) -> str:
    """The username claim, or :class:`MappingError` (e.g. a token of a client, not a user)."""
    name = claims.get(policy.username_claim)
    if name is None:
        raise MappingError(f"token has no user ({policy.username_claim!r} claim missing)")
    if not isinstance(name, str) or not name or any(c in name for c in "/:\n\x00"):
        raise MappingError(f"claim {policy.username_claim!r} is not a valid username")
    return name


def identity_from_claims(token: ValidatedToken, policy: ClaimsPolicy) -> Identity:
    """The identity carried by ``token``'s own claims, checked against ``policy``. Pure."""
    claims = token.claims
    username = username_of(claims, policy)
    uid = _integer(claims, policy.uid_claim)
    gid = _integer(claims, policy.gid_claim)
    gids: tuple[int, ...] = ()
    if policy.gids_claim in claims:
        raw = claims[policy.gids_claim]
        if not isinstance(raw, list) or any(
            not isinstance(g, int) or isinstance(g, bool) for g in raw
        ):
            raise MappingError(f"claim {policy.gids_claim!r} is not a list of integers")
        gids = tuple(raw)
    groups: tuple[str, ...] = ()
    if policy.groups_claim in claims:
        raw = claims[policy.groups_claim]
        if not isinstance(raw, list) or any(not isinstance(g, str) for g in raw):
            raise MappingError(f"claim {policy.groups_claim!r} is not a list of names")
        groups = tuple(raw)
    identity = Identity(token.issuer, token.subject, username, uid, gid, gids, groups)
    return check_identity(identity, policy)


def check_identity(identity: Identity, policy: ClaimsPolicy) -> Identity:
    """``identity`` if ``policy`` lets it be used, else :class:`MappingError`. Pure."""
    if identity.uid == 0:
        raise MappingError("uid 0 is never mapped")
    if not 0 < identity.uid <= MAX_ID:
        raise MappingError("uid is out of range")
    if identity.uid < policy.min_uid:
        raise MappingError(f"uid is below the minimum uid {policy.min_uid}")
    if identity.gid == 0 or 0 in identity.gids:
        raise MappingError("gid 0 is never mapped")
    if any(not 0 < g <= MAX_ID for g in (identity.gid, *identity.gids)):
        raise MappingError("gid is out of range")
    if identity.gid < policy.min_gid and identity.gid not in policy.allowed_low_gids:
        raise MappingError(
            f"primary gid {identity.gid} is below the minimum gid {policy.min_gid} "
            "(a system group) and not allowed"
        )
    low = low_gids(identity.gids, policy)
    if low:
        raise MappingError(
            f"supplementary gids {', '.join(map(str, low))} are below the minimum gid "
            f"{policy.min_gid} (system groups) and not allowed"
        )
    if policy.allowed_groups is not None and not policy.allowed_groups.intersection(
        identity.groups
    ):
        raise MappingError("user is in none of the allowed groups")
    return identity


def low_gids(gids: tuple[int, ...], policy: ClaimsPolicy) -> tuple[int, ...]:
    """The gids of ``gids`` below ``policy.min_gid`` and not allowed explicitly. Pure."""
    return tuple(g for g in gids if g < policy.min_gid and g not in policy.allowed_low_gids)


class DirectoryIdentityMapper:
    """Maps a token's username to the account and groups a :class:`Directory` holds."""

    def __init__(self, directory: Directory, policy: ClaimsPolicy) -> None:
        self._directory = directory
        self._policy = policy

    async def identity_for(self, token: ValidatedToken) -> Identity:
        username = username_of(token.claims, self._policy)
        user = await self._directory.lookup_user(username)
        if user is None:
            raise MappingError("user is not in the directory")
        groups = await self._directory.groups_for(user)
        identity = Identity(
            token.issuer,
            token.subject,
            user.username,
            user.uid,
            user.gid,
            tuple(g.gid for g in groups),
            tuple(g.name for g in groups),
        )
        return check_identity(identity, self._policy)
