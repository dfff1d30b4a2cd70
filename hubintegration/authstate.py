"""The user's POSIX identity from the ``auth_state`` the authenticator stored. Pure.

GenericOAuthenticator keeps the claims it got at login (ID token or userinfo) under
``auth_state[<user_auth_state_key>]`` (``oauth_user`` by default). The mapping fails closed: a
missing or non-numeric uid, uid 0, a uid below ``min_uid`` or a missing gid refuses the spawn
with a message that says which, never a default UID.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hubintegration.errors import UnmappableUser
from hubintegration.settings import Claims
from identity.models import Identity


def _number(claims: Mapping[str, Any], key: str, who: str) -> int:
    value = claims.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UnmappableUser(f"{who}: the login gave no numeric {key!r} claim")
    try:
        return int(value)
    except ValueError as exc:
        raise UnmappableUser(f"{who}: claim {key!r} is not a number") from exc


def _numbers(claims: Mapping[str, Any], key: str, who: str) -> tuple[int, ...]:
    value = claims.get(key) or []
    if not isinstance(value, list):
        raise UnmappableUser(f"{who}: claim {key!r} is not a list of numbers")
    return tuple(_number({key: v}, key, who) for v in value)


def _names(claims: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = claims.get(key) or []
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def identity_from_auth_state(
    username: str, auth_state: Mapping[str, Any] | None, config: Claims
) -> Identity:
    """The :class:`~identity.models.Identity` of Hub user ``username``; raises
    :class:`UnmappableUser` when the stored claims do not give a safe one."""
    if not auth_state:
        raise UnmappableUser(
            f"{username}: no login data is stored for this user (auth_state is empty); "
            "log out and in again"
        )
    claims = auth_state.get(config.user_key)
    if not isinstance(claims, Mapping):
        raise UnmappableUser(f"{username}: the login data holds no user claims")
    uid = _number(claims, config.uid, username)
    gid = _number(claims, config.gid, username)
    if uid == 0 or gid == 0:
        raise UnmappableUser(f"{username}: uid or gid 0 (root) is never used for a notebook")
    if uid < config.min_uid:
        raise UnmappableUser(f"{username}: uid {uid} is below the minimum {config.min_uid}")
    gids = tuple(g for g in _numbers(claims, config.gids, username) if g != 0)
    issuer = str(claims.get("iss", ""))
    return Identity(
        issuer=issuer,
        sub=str(claims.get("sub", username)),
        username=username,
        uid=uid,
        gid=gid,
        gids=gids,
        groups=_names(claims, config.groups),
    )
