"""The dev issuer's tokens: RS256 ID tokens for the client, JWT access tokens for the router.

Access tokens follow RFC 9068 (``typ: at+jwt``, ``aud`` the router's audience, ``client_id``,
``scope``) and carry the identity claims of :func:`kubepie.demo.accounts.claims_for`; ID tokens
are for the client only (``aud`` its client id, ``nonce``, ``auth_time``, ``azp``), so one is
never accepted where an access token is expected. The claims builders are pure.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubepie.demo.accounts import DemoUser, claims_for
from kubepie.demo.grants import Grant
from kubepie.demo.keys import SigningKey

#: Seconds an access token from a login lives: an hour, like most issuers; the router refreshes.
ACCESS_LIFETIME = 3600.0
#: Seconds an ID token lives: only read at login.
ID_TOKEN_LIFETIME = 300.0


def access_token_claims(
    issuer: str,
    audience: str,
    user: DemoUser,
    *,
    client_id: str,
    scope: tuple[str, ...],
    now: float,
    lifetime: float,
) -> dict[str, Any]:
    """The claims of an RFC 9068 access token for ``user``. Pure."""
    issued = int(now)
    return {
        **claims_for(user),
        "iss": issuer,
        "sub": user.username,
        "aud": audience,
        "client_id": client_id,
        "scope": " ".join(scope),
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(lifetime),
        "jti": secrets.token_hex(12),
    }


def id_token_claims(
    issuer: str,
    user: DemoUser,
    *,
    client_id: str,
    nonce: str | None,
    auth_time: float,
    now: float,
    lifetime: float = ID_TOKEN_LIFETIME,
) -> dict[str, Any]:
    """The claims of an OpenID Connect ID token for ``user`` at ``client_id``. Pure."""
    issued = int(now)
    claims: dict[str, Any] = {
        **claims_for(user),
        "iss": issuer,
        "sub": user.username,
        "aud": client_id,
        "azp": client_id,
        "iat": issued,
        "exp": issued + int(lifetime),
        "auth_time": int(auth_time),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return claims


@dataclass(frozen=True, slots=True)
class TokenMinter:
    """Signs the tokens of one issuer for one resource audience."""

    key: SigningKey
    issuer: str
    audience: str
    access_lifetime: float = ACCESS_LIFETIME
    clock: Callable[[], float] = time.time

    def access_token(
        self,
        user: DemoUser,
        client_id: str,
        scope: tuple[str, ...] = ("openid",),
        *,
        lifetime: float | None = None,
    ) -> str:
        claims = access_token_claims(
            self.issuer,
            self.audience,
            user,
            client_id=client_id,
            scope=scope,
            now=self.clock(),
            lifetime=self.access_lifetime if lifetime is None else lifetime,
        )
        return self.key.sign(claims, typ="at+jwt")

    def token_response(
        self, user: DemoUser, grant: Grant, refresh_token: str | None
    ) -> dict[str, Any]:
        """The ``/token`` answer for ``grant``: access, ID and (if given) refresh token."""
        id_claims = id_token_claims(
            self.issuer,
            user,
            client_id=grant.client_id,
            nonce=grant.nonce,
            auth_time=grant.auth_time,
            now=self.clock(),
        )
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": self.access_token(user, grant.client_id, grant.scope),
            "expires_in": int(self.access_lifetime),
            "id_token": self.key.sign(id_claims),
            "scope": " ".join(grant.scope),
        }
        if refresh_token is not None:
            answer["refresh_token"] = refresh_token
        return answer
