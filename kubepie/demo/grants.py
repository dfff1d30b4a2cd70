"""Authorization requests, codes and refresh tokens of the dev issuer (RFC 6749, RFC 7636).

Pure checks plus one in-memory store:

* :func:`parse_authorization_request` validates ``/authorize`` parameters: a registered client,
  its exact redirect URI, ``response_type=code``, the ``openid`` scope, and PKCE with ``S256``
  (``plain`` is refused; a request without a challenge too);
* :class:`GrantStore` issues authorization codes (single-use, short-lived: redeeming one
  removes it before anything else is checked, so a replay always fails) and refresh tokens
  (rotated on every use);
* :func:`pkce_matches` and :meth:`Client.authenticates` compare in constant time.

Every refusal is :class:`~kubepie.demo.errors.GrantError` with the RFC 6749 error code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kubepie.demo.errors import GrantError

#: Seconds an authorization code can be redeemed: RFC 6749 recommends at most ten minutes; one
#: is plenty for a redirect on the same machine.
CODE_LIFETIME = 60.0
#: Seconds a refresh token lives: a working day of the demo.
REFRESH_LIFETIME = 8 * 3600.0
#: RFC 7636 §4.1: 43 to 128 characters of the unreserved set.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


@dataclass(frozen=True, slots=True)
class Client:
    """A registered confidential client (the router)."""

    client_id: str
    secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()

    def authenticates(self, secret: str) -> bool:
        return hmac.compare_digest(secret.encode(), self.secret.encode())


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated ``/authorize`` request, waiting for the user to log in."""

    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str


@dataclass(frozen=True, slots=True)
class Grant:
    """What a user allowed a client: redeemed for tokens with a code or a refresh token."""

    client_id: str
    username: str
    scope: tuple[str, ...]
    auth_time: float
    nonce: str | None = None
    redirect_uri: str = ""
    code_challenge: str = ""


def s256(verifier: str) -> str:
    """The RFC 7636 ``S256`` challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pkce_matches(verifier: str, challenge: str) -> bool:
    """Whether ``verifier`` answers the ``S256`` ``challenge``; constant-time comparison."""
    if not _VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(s256(verifier).encode(), challenge.encode())


def _one(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return value if value else None


def parse_authorization_request(
    params: Mapping[str, str], clients: Mapping[str, Client]
) -> AuthorizationRequest:
    """Validate ``/authorize`` parameters. Pure.

    A bad client or redirect URI is reported to the user (never redirected to an unchecked
    URI); everything else too, since this issuer serves one well-behaved client.
    """
    client_id = _one(params, "client_id")
    client = clients.get(client_id or "")
    if client is None:
        raise GrantError("invalid_client", "unknown client_id", 401)
    redirect_uri = _one(params, "redirect_uri")
    if redirect_uri not in client.redirect_uris:
        raise GrantError("invalid_request", "redirect_uri is not registered for this client")
    if params.get("response_type") != "code":
        raise GrantError("unsupported_response_type", "only response_type=code is supported")
    scope = tuple((params.get("scope") or "").split())
    if "openid" not in scope:
        raise GrantError("invalid_scope", "the openid scope is required")
    challenge = _one(params, "code_challenge")
    if challenge is None:
        raise GrantError("invalid_request", "PKCE is required: send code_challenge")
    if params.get("code_challenge_method") != "S256":
        raise GrantError("invalid_request", "code_challenge_method must be S256")
    if not _CHALLENGE.match(challenge):
        raise GrantError("invalid_request", "code_challenge is not an S256 challenge")
    return AuthorizationRequest(
        client.client_id,
        redirect_uri,
        scope,
        _one(params, "state"),
        _one(params, "nonce"),
        challenge,
    )


class GrantStore:
    """Authorization codes and refresh tokens, in memory (a demo restart logs everyone out)."""

    def __init__(
        self,
        *,
        code_lifetime: float = CODE_LIFETIME,
        refresh_lifetime: float = REFRESH_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._code_lifetime = code_lifetime
        self._refresh_lifetime = refresh_lifetime
        self._clock = clock
        self._codes: dict[str, tuple[Grant, float]] = {}
        self._refresh: dict[str, tuple[Grant, float]] = {}

    def _expire(self) -> None:
        now = self._clock()
        for table in (self._codes, self._refresh):
            for key in [k for k, (_, expires) in table.items() if expires <= now]:
                del table[key]

    def issue_code(self, grant: Grant) -> str:
        self._expire()
        code = secrets.token_urlsafe(32)
        self._codes[code] = (grant, self._clock() + self._code_lifetime)
        return code

    def redeem_code(self, code: str, client_id: str, redirect_uri: str, verifier: str) -> Grant:
        """The grant of ``code``, which is used up by this call whatever its outcome."""
        entry = self._codes.pop(code, None)
        if entry is None or entry[1] <= self._clock():
            raise GrantError("invalid_grant", "authorization code is unknown, used or expired")
        grant = entry[0]
        if not hmac.compare_digest(grant.client_id.encode(), client_id.encode()):
            raise GrantError("invalid_grant", "authorization code was issued to another client")
        if grant.redirect_uri != redirect_uri:
            raise GrantError("invalid_grant", "redirect_uri does not match the authorization")
        if not pkce_matches(verifier, grant.code_challenge):
            raise GrantError("invalid_grant", "PKCE verification failed")
        return grant

    def issue_refresh_token(self, grant: Grant) -> str:
        self._expire()
        token = secrets.token_urlsafe(32)
        self._refresh[token] = (grant, self._clock() + self._refresh_lifetime)
        return token

    def redeem_refresh_token(self, token: str, client_id: str) -> Grant:
        """The grant of ``token``; the token is used up (the caller issues a new one)."""
        entry = self._refresh.pop(token, None)
        if entry is None or entry[1] <= self._clock():
            raise GrantError("invalid_grant", "refresh token is unknown, used or expired")
        if entry[0].client_id != client_id:
            raise GrantError("invalid_grant", "refresh token was issued to another client")
        return entry[0]

    def revoke_user(self, client_id: str, username: str) -> None:
        """Forget ``username``'s refresh tokens at ``client_id`` (logout)."""
        for key in [
            k
            for k, (g, _) in self._refresh.items()
            if g.client_id == client_id and g.username == username
        ]:
            del self._refresh[key]
