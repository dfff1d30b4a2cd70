"""Authenticate a request into a :class:`~kubepie.router.access.Principal`.

Accepted, in this order:

1. ``Authorization: Bearer <token>``: validated by :class:`identity.tokens.TokenValidator`
   (JWT or introspection); its WLCG ``storage.*`` scopes restrict it. A token without a user
   (``client_credentials``) is refused with 403 and says so.
2. ``Authorization: Basic <access key id:secret>``: an app credential; its owner's identity is
   resolved again on every use.
3. The browser session cookie set by ``/callback``, only where the caller allows it
   (``allow_session``: the JSON API and the web UI; never ``/dav`` or S3, whose answers carry
   user content that must not act with a browser's session). The cookie is honoured only while
   its session id is live in the :class:`~kubepie.router.sessions.SessionStore` (logout and
   the user's removal end it), and the identity in it is mapped again on every use.

Without any, :class:`~kubepie.router.errors.Unauthenticated` (401 with the challenges).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Protocol

from identity.errors import MappingError
from identity.models import Identity, ValidatedToken
from identity.scopes import parse_scopes
from identity.tokens import TokenValidator
from kubepie.credentials.store import CredentialStore
from kubepie.router.access import AuthMethod, Principal
from kubepie.router.errors import Forbidden, Unauthenticated
from kubepie.router.identities import IdentityResolver
from kubepie.router.session import CookieSealer
from kubepie.router.sessions import SessionStore

SESSION_COOKIE = "kubepie_session"
#: Longest ``Authorization`` value looked at (real bearer tokens are a few KiB).
MAX_AUTHORIZATION = 17 * 1024


class TokenCheck(Protocol):
    async def validate(self, token: str) -> ValidatedToken: ...


def parse_cookies(header: str | None) -> dict[str, str]:
    """``Cookie`` header → name/value pairs (first one wins). Pure."""
    cookies: dict[str, str] = {}
    if not header:
        return cookies
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies


def session_token(payload: Mapping[str, Any]) -> ValidatedToken | None:
    """The identity claims kept in a session cookie, as a token to map. Pure."""
    iss, sub, claims = payload.get("iss"), payload.get("sub"), payload.get("claims")
    if not isinstance(iss, str) or not isinstance(sub, str) or not isinstance(claims, dict):
        return None
    return ValidatedToken(issuer=iss, subject=sub, claims=claims, scopes=(), expires_at=0.0)


def session_id(payload: Mapping[str, Any] | None) -> str | None:
    """The server-side session id kept in a session cookie's payload. Pure."""
    sid = payload.get("sid") if payload is not None else None
    return sid if isinstance(sid, str) and sid else None


class Authenticator:
    """Turns request headers into a principal; see the module docstring."""

    def __init__(
        self,
        validator: TokenValidator | TokenCheck,
        resolver: IdentityResolver,
        store: CredentialStore,
        sealer: CookieSealer,
        sessions: SessionStore,
    ) -> None:
        self._validator = validator
        self._resolver = resolver
        self._store = store
        self._sealer = sealer
        self._sessions = sessions

    @property
    def resolver(self) -> IdentityResolver:
        return self._resolver

    @property
    def sessions(self) -> SessionStore:
        return self._sessions

    async def authenticate(
        self, headers: Mapping[str, str], *, allow_session: bool = False
    ) -> Principal:
        authorization = headers.get("authorization")
        if authorization:
            if len(authorization) > MAX_AUTHORIZATION:
                raise Unauthenticated("authorization header too large")
            scheme, _, value = authorization.strip().partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer":
                return await self.bearer(value.strip())
            if scheme == "basic":
                return await self.basic(value.strip())
            raise Unauthenticated(f"unsupported authorization scheme {scheme!r}")
        cookie = parse_cookies(headers.get("cookie")).get(SESSION_COOKIE) if allow_session else None
        if cookie:
            principal = await self.session(cookie)
            if principal is not None:
                return principal
        raise Unauthenticated("authentication required")

    async def bearer(self, token: str) -> Principal:
        if not token:
            raise Unauthenticated("empty bearer token")
        validated = await self._validator.validate(token)
        if self._resolver.policy.username_claim not in validated.claims:
            raise Forbidden(
                "this token has no user (a client_credentials token?): "
                "use a token issued to a person"
            )
        identity = await self._resolver.for_token(validated)
        return Principal(identity, AuthMethod.BEARER, parse_scopes(validated.scopes))

    async def basic(self, value: str) -> Principal:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise Unauthenticated("malformed basic credentials") from exc
        access_key, sep, secret = decoded.partition(":")
        if not sep or not access_key or not secret:
            raise Unauthenticated("malformed basic credentials")
        credential = await self._store.verify(access_key, secret)
        identity = await self._resolver.for_owner(credential.owner)
        return Principal(identity, AuthMethod.BASIC, credential=credential)

    def session_id(self, cookie: str | None) -> str | None:
        """The session id in a session cookie that opens (live or not), else ``None``."""
        return session_id(self._sealer.open(SESSION_COOKIE, cookie))

    async def session(self, cookie: str) -> Principal | None:
        """The principal of a live session's cookie, else ``None``. A user the identity
        mapping now refuses (removed from the directory, out of the allowed groups) loses
        every session, not only this one."""
        payload = self._sealer.open(SESSION_COOKIE, cookie)
        token = session_token(payload) if payload is not None else None
        sid = session_id(payload)
        if token is None or sid is None or not await self._sessions.alive(sid):
            return None
        try:
            identity: Identity = await self._resolver.for_token(token)
        except MappingError:
            await self._sessions.end_all(token.issuer, token.subject)
            raise
        return Principal(identity, AuthMethod.SESSION)


__all__ = ["SESSION_COOKIE", "Authenticator", "parse_cookies", "session_id", "session_token"]
