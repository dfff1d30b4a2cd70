"""The user's POSIX identity at spawn: from the login's claims or from the directory.

``claims.source: claims``: GenericOAuthenticator keeps the claims it got at login (ID token or
userinfo, received from the issuer's token endpoint over the back channel) under
``auth_state[<user_auth_state_key>]`` (``oauth_user`` by default). ``claims.source: ldap``: the
Hub username is looked up in the directory (:class:`identity.claims.DirectoryIdentityMapper`).
Both go through the same policy as the router (:mod:`identity.claims`), so they fail closed the
same way: no uid, uid or gid 0, uid below ``min_uid``, unknown user... refuse the spawn with a
message that says which, never a default. A directory that cannot be asked refuses with 503.
The Hub's username is the identity's username.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hubintegration.errors import DirectoryDown, UnmappableUser
from hubintegration.settings import Claims
from identity.claims import ClaimsPolicy, DirectoryIdentityMapper, identity_from_claims
from identity.directory import Directory
from identity.errors import DirectoryUnavailableError, MappingError
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


def directory_of(config: Claims, env: Mapping[str, str] = os.environ) -> Directory | None:
    """The (cached) LDAP directory of ``config``, or ``None`` for the claims source."""
    if config.source != "ldap" or config.ldap is None:
        return None
    from identity.cache import CachedDirectory
    from identity.ldap import LdapDirectory, LdapSettings

    ldap = config.ldap
    settings = LdapSettings(
        urls=ldap.urls,
        user_base=ldap.user_base,
        group_base=ldap.group_base,
        bind_dn=ldap.bind_dn,
        bind_password=env.get(ldap.bind_password_env, "") if ldap.bind_dn else "",
        user_filter=ldap.user_filter,
        group_filter=ldap.group_filter,
        start_tls=ldap.start_tls,
        ca_file=ldap.ca_file,
    )
    return CachedDirectory(LdapDirectory(settings), ttl=ldap.cache_ttl_s)


def _token(username: str, claims: Mapping[str, Any], policy: ClaimsPolicy) -> ValidatedToken:
    return ValidatedToken(
        issuer=str(claims.get("iss", "")),
        subject=str(claims.get("sub", username)),
        claims={**claims, policy.username_claim: username},
        scopes=(),
        expires_at=0.0,
    )


async def resolve_identity(
    username: str,
    auth_state: Mapping[str, Any] | None,
    config: Claims,
    directory: Directory | None = None,
) -> Identity:
    """The :class:`~identity.models.Identity` of Hub user ``username``; raises
    :class:`UnmappableUser` (403) or :class:`DirectoryDown` (503)."""
    policy = policy_of(config)
    if directory is not None:
        try:
            return await DirectoryIdentityMapper(directory, policy).identity_for(
                _token(username, {}, policy)
            )
        except MappingError as exc:
            raise UnmappableUser(f"{username} cannot run a notebook: {exc}") from exc
        except DirectoryUnavailableError as exc:
            raise DirectoryDown(f"the user directory cannot be reached: {exc}") from exc
    if not auth_state:
        raise UnmappableUser(
            f"{username}: no login data is stored for this user (auth_state is empty); "
            "log out and in again"
        )
    claims = auth_state.get(config.user_key)
    if not isinstance(claims, Mapping):
        raise UnmappableUser(f"{username}: the login data holds no user claims")
    try:
        return identity_from_claims(_token(username, claims, policy), policy)
    except MappingError as exc:
        raise UnmappableUser(f"{username} cannot run a notebook: {exc}") from exc
