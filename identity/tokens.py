"""Bearer token validation: JWTs against the issuer's JWKS, opaque tokens by introspection.

:class:`TokenValidator` trusts the issuers of its :class:`TokenSettings` at once. For a JWT it
reads the unverified ``iss`` only to pick the issuer, then verifies with that issuer's key and
rules: the algorithm must be on the issuer's allow-list (``none`` and the HMAC family can never
be on it: an asymmetric issuer's public key must not become a shared secret), the key type must
fit the algorithm, and ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` are checked with a small
leeway. Tokens that are not JWTs go to RFC 7662 introspection at the issuers configured for it.

Every refusal is :class:`identity.errors.TokenError` with a short reason that never repeats the
token; an issuer that cannot be reached is :class:`identity.errors.DirectoryUnavailableError`.
The HTTP client is injected and owned by the caller.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from identity.errors import DirectoryUnavailableError, TokenError, UnknownIssuerError
from identity.introspection import check_introspection, introspect
from identity.jwks import IssuerKeys, VerificationKey
from identity.models import ValidatedToken

#: Asymmetric JWS algorithms this module knows, by the key type that verifies them.
KEY_TYPE_OF_ALGORITHM: Mapping[str, str] = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "RSA"),
    **dict.fromkeys(("ES256", "ES384", "ES512"), "EC"),
    "EdDSA": "OKP",
}
_CURVE_OF_ALGORITHM = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
#: Longer bearer tokens are refused before any parsing (real ones are a few KiB at most).
MAX_TOKEN_LENGTH = 16 * 1024


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """One trusted issuer.

    ``audiences``: the ``aud`` values accepted (a token must name at least one).
    ``algorithms``: the allow-list; only asymmetric algorithms (``RS*``, ``PS*``, ``ES*``,
    ``EdDSA``) may be listed, so ``none`` and ``HS*`` are refused when the settings are built.
    ``introspection_client_id``/``_secret``: credentials for RFC 7662 introspection of opaque
    tokens; without them, opaque tokens are not accepted from this issuer.
    ``token_type``: if set, the JWT header ``typ`` must be this (``at+jwt``, RFC 9068), which
    keeps ID tokens out even where the issuer puts the client id in access tokens' ``aud``;
    unset by default because many issuers still send ``typ: JWT`` on access tokens.
    """

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    token_type: str | None = None
    introspection_client_id: str | None = None
    introspection_client_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.audiences:
            raise ValueError(f"issuer {self.issuer!r}: at least one audience is required")
        for alg in self.algorithms:
            if alg not in KEY_TYPE_OF_ALGORITHM:
                raise ValueError(
                    f"issuer {self.issuer!r}: algorithm {alg!r} is not an asymmetric JWS "
                    f"algorithm (allowed: {', '.join(KEY_TYPE_OF_ALGORITHM)})"
                )
        if (self.introspection_client_id is None) != (self.introspection_client_secret is None):
            raise ValueError(f"issuer {self.issuer!r}: introspection needs both id and secret")


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """How tokens are validated.

    ``leeway_s``: clock skew tolerated on ``exp``/``nbf``/``iat`` (seconds; 30 covers NTP-less
    laptops without keeping expired tokens alive for long). ``jwks_refetch_interval_s``: at most
    one JWKS fetch per issuer in this many seconds when a token names an unknown ``kid`` (keys
    rotated at the issuer show up within it; a flood of made-up ``kid`` values cannot hammer the
    issuer). ``jwks_max_age_s``: the key set is refreshed when older (retired keys go away).
    """

    issuers: tuple[IssuerSettings, ...]
    leeway_s: float = 30.0
    jwks_refetch_interval_s: float = 30.0
    jwks_max_age_s: float = 3600.0

    def __post_init__(self) -> None:
        names = [i.issuer for i in self.issuers]
        if len(set(names)) != len(names):
            raise ValueError("an issuer is listed twice")


@dataclass(slots=True)
class _Issuer:
    settings: IssuerSettings
    keys: IssuerKeys
    audiences: frozenset[str]
    algorithms: frozenset[str]
    audience_list: list[str]


class TokenValidator:
    """Validates bearer tokens for every trusted issuer; see the module docstring."""

    def __init__(
        self,
        settings: TokenSettings,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._leeway = settings.leeway_s
        self._jwt = jwt.PyJWT()
        self._issuers = {
            s.issuer: _Issuer(
                s,
                IssuerKeys(
                    http,
                    s.issuer,
                    refetch_interval=settings.jwks_refetch_interval_s,
                    max_age=settings.jwks_max_age_s,
                ),
                frozenset(s.audiences),
                frozenset(s.algorithms),
                list(s.audiences),
            )
            for s in settings.issuers
        }

    def keys_of(self, issuer: str) -> IssuerKeys:
        """The key cache of a trusted issuer (for warming it up, metrics and tests)."""
        return self._issuers[issuer].keys

    async def validate(self, token: str) -> ValidatedToken:
        """The validated token, or :class:`TokenError` saying why not."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("token too large")
        dots = token.count(".")
        if dots == 2:
            return await self._validate_jwt(token)
        if dots == 4:
            raise TokenError("encrypted tokens are not accepted")
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            raise TokenError("malformed token")
        return await self._validate_opaque(token)

    async def _validate_jwt(self, token: str) -> ValidatedToken:
        header, payload = _unverified_parts(token)
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise TokenError("token has no algorithm")
        if alg.lower() == "none":
            raise TokenError("algorithm 'none' is not allowed")
        iss = payload.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise UnknownIssuerError("issuer is not trusted")
        if alg not in issuer.algorithms:
            raise TokenError(f"algorithm {alg!r} is not allowed")
        wanted = issuer.settings.token_type
        if wanted is not None:
            typ = header.get("typ")
            if not isinstance(typ, str) or not typ:
                raise TokenError("token has no type")
            if typ.lower() != wanted.lower():
                raise TokenError(f"token type {typ!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("malformed key id")
        key = issuer.keys.cached(kid) or await issuer.keys.key(kid)
        if key is None:
            raise TokenError("unknown signing key")
        _check_key_fits(key, alg)
        claims = self._decode(token, key, alg, issuer)
        return _validated(issuer.settings.issuer, claims)

    def _decode(
        self, token: str, key: VerificationKey, alg: str, issuer: _Issuer
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=issuer.audience_list,
                issuer=issuer.settings.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            reason = "token issued in the future" if "iat" in str(exc) else "token not yet valid"
            raise TokenError(reason) from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenError("audience mismatch") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenError("issuer mismatch") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenError("bad signature") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"missing claim {exc.claim!r}") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise TokenError(f"algorithm {alg!r} is not allowed") from exc
        except jwt.InvalidIssuedAtError as exc:
            raise TokenError("malformed claim 'iat'") from exc
        except jwt.DecodeError as exc:
            raise TokenError("malformed token") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError("invalid token") from exc
        return claims

    async def _validate_opaque(self, token: str) -> ValidatedToken:
        """Ask every issuer configured for introspection; the first that vouches wins.

        One issuer being down does not hide another's positive answer; if none vouches and one
        could not be asked, the answer is 503 rather than a possibly wrong 401.
        """
        refusal: TokenError | None = None
        unavailable: DirectoryUnavailableError | None = None
        for issuer in self._issuers.values():
            settings = issuer.settings
            if settings.introspection_client_id is None:
                continue
            assert settings.introspection_client_secret is not None
            try:
                metadata = await issuer.keys.metadata()
                if metadata.introspection_endpoint is None:
                    continue
                answer = await introspect(
                    self._http,
                    metadata.introspection_endpoint,
                    token,
                    client_id=settings.introspection_client_id,
                    client_secret=settings.introspection_client_secret,
                )
            except DirectoryUnavailableError as exc:
                unavailable = exc
                continue
            try:
                return check_introspection(
                    answer,
                    issuer=settings.issuer,
                    audiences=issuer.audiences,
                    now=self._clock(),
                    leeway=self._leeway,
                )
            except TokenError as exc:
                refusal = exc
        if unavailable is not None:
            raise unavailable
        if refusal is not None:
            raise refusal
        raise TokenError("opaque tokens are not accepted")


def _b64json(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, unverified: only to pick the issuer and key."""
    head, body, _ = token.split(".")
    try:
        header, payload = _b64json(head), _b64json(body)
    except (ValueError, binascii.Error) as exc:
        raise TokenError("malformed token") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise TokenError("malformed token")
    return header, payload


def _check_key_fits(key: VerificationKey, alg: str) -> None:
    if KEY_TYPE_OF_ALGORITHM[alg] != key.kty or (key.alg is not None and key.alg != alg):
        raise TokenError(f"algorithm {alg!r} does not match the signing key")
    curve = _CURVE_OF_ALGORITHM.get(alg)
    if curve is not None and key.crv != curve:
        raise TokenError(f"algorithm {alg!r} does not match the signing key")


def _validated(issuer: str, claims: dict[str, Any]) -> ValidatedToken:
    sub = claims["sub"]
    if not isinstance(sub, str):
        raise TokenError("malformed claim 'sub'")
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes = tuple(scope.split())
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scopes = tuple(scope)
    else:
        scopes = ()
    client_id = claims.get("client_id")
    return ValidatedToken(
        issuer=issuer,
        subject=sub,
        claims=claims,
        scopes=scopes,
        expires_at=float(claims["exp"]),
        client_id=client_id if isinstance(client_id, str) else None,
    )
