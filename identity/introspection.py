"""RFC 7662 token introspection, for opaque access tokens.

:func:`introspect` asks the issuer's introspection endpoint (client authentication with
HTTP Basic, as the RFC suggests); :func:`check_introspection` is the pure decision over the
answer: ``active: false`` is refused, and so are answers whose ``iss``, ``aud`` or ``exp`` do
not fit. Answers are not cached: a revoked token is refused on its next use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from identity.errors import DirectoryUnavailableError, TokenError
from identity.models import ValidatedToken


async def introspect(
    http: httpx.AsyncClient,
    endpoint: str,
    token: str,
    *,
    client_id: str,
    client_secret: str,
) -> Mapping[str, Any]:
    """The introspection endpoint's JSON answer for ``token``."""
    try:
        response = await http.post(
            endpoint,
            data={"token": token, "token_type_hint": "access_token"},
            auth=(client_id, client_secret),
            headers={"Accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise DirectoryUnavailableError(
            f"introspection endpoint {endpoint} unreachable ({type(exc).__name__})"
        ) from exc
    if response.status_code != 200:
        raise DirectoryUnavailableError(
            f"introspection endpoint {endpoint} answered HTTP {response.status_code}"
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise DirectoryUnavailableError(f"introspection endpoint {endpoint}: not JSON") from exc
    if not isinstance(body, Mapping):
        raise DirectoryUnavailableError(f"introspection endpoint {endpoint}: not a JSON object")
    return body


def check_introspection(
    answer: Mapping[str, Any],
    *,
    issuer: str,
    audiences: frozenset[str],
    now: float,
    leeway: float,
) -> ValidatedToken:
    """Accept an introspection answer from ``issuer`` or raise :class:`TokenError`. Pure.

    The answer must name one of ``audiences`` in ``aud``, as a JWT must: a token the issuer
    made for another relying party (e.g. one only meant for its userinfo endpoint, without a
    resource indicator) is not a token for us.
    """
    if answer.get("active") is not True:
        raise TokenError("token is not active")
    if "iss" in answer and answer["iss"] != issuer:
        raise TokenError("issuer mismatch")
    exp = _number(answer.get("exp"))
    if exp is None:
        raise TokenError("missing claim 'exp'")
    if exp < now - leeway:
        raise TokenError("token expired")
    nbf = _number(answer.get("nbf"))
    if nbf is not None and nbf > now + leeway:
        raise TokenError("token not yet valid")
    if "aud" not in answer:
        raise TokenError("missing claim 'aud'")
    aud = answer["aud"]
    named = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    if not named & audiences:
        raise TokenError("audience mismatch")
    sub = answer.get("sub")
    client_id = answer.get("client_id")
    subject = sub if isinstance(sub, str) else client_id if isinstance(client_id, str) else None
    if subject is None:
        raise TokenError("missing claim 'sub'")
    scope = answer.get("scope")
    return ValidatedToken(
        issuer=issuer,
        subject=subject,
        claims=dict(answer),
        scopes=tuple(scope.split()) if isinstance(scope, str) else (),
        expires_at=exp,
        client_id=client_id if isinstance(client_id, str) else None,
        introspected=True,
    )


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
