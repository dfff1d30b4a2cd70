"""The user's POSIX identity from the ``auth_state`` the authenticator stored.

GenericOAuthenticator keeps the claims it got at login (ID token or userinfo, received from
the issuer's token endpoint over the back channel) under ``auth_state[<user_auth_state_key>]``
(``oauth_user`` by default). They are mapped by :func:`identity.claims.identity_from_claims`,
the same policy the router uses, so the mapping fails closed the same way: no uid, uid or gid
0, uid below ``min_uid``... refuse the spawn with a message that says which, never a default.
The Hub's username (itself from ``username_claim``) is the identity's username.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hubintegration.errors import UnmappableUser
from hubintegration.settings import Claims
from identity.claims import ClaimsPolicy, identity_from_claims
from identity.errors import MappingError
from identity.models import Identity, ValidatedToken


def policy_of(config: Claims) -> ClaimsPolicy:
    return ClaimsPolicy(
        username_claim="preferred_username",
        uid_claim=config.uid,
        gid_claim=config.gid,
        gids_claim=config.gids,
        groups_claim=config.groups,
        min_uid=config.min_uid,
    )


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
    policy = policy_of(config)
    token = ValidatedToken(
        issuer=str(claims.get("iss", "")),
        subject=str(claims.get("sub", username)),
        claims={**claims, policy.username_claim: username},
        scopes=(),
        expires_at=0.0,
    )
    try:
        return identity_from_claims(token, policy)
    except MappingError as exc:
        raise UnmappableUser(f"{username} cannot run a notebook: {exc}") from exc
