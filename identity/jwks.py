"""An issuer's published metadata and signing keys: discovery, then JWKS, cached.

:class:`IssuerKeys` fetches ``/.well-known/openid-configuration`` once, then the ``jwks_uri``.
Parsed keys are kept by ``kid``; a token signed with an unknown ``kid`` triggers at most one
refetch per ``refetch_interval`` seconds (so a flood of made-up ``kid`` values cannot turn into
a flood of requests to the issuer), and the whole set is refreshed when older than ``max_age``.
Lookups of known keys are a dictionary access: no I/O on the hot path.

An issuer that cannot be reached (or answers nonsense) is
:class:`identity.errors.DirectoryUnavailableError` (503), unless keys are already cached, in
which case they keep working until the issuer is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from identity.errors import DirectoryUnavailableError

log = logging.getLogger(__name__)

#: Key types that may verify tokens of an asymmetric issuer (never ``oct``: shared secrets).
_ASYMMETRIC_KTY = frozenset({"RSA", "EC", "OKP"})


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of the discovery document validation needs."""

    issuer: str
    jwks_uri: str
    introspection_endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key from the JWKS that verifies signatures (``key``: a ``cryptography`` object)."""

    kid: str | None
    kty: str
    key: Any
    alg: str | None = None
    crv: str | None = None


def parse_jwks(document: Any) -> dict[str | None, VerificationKey]:
    """The usable signing keys of a JWK Set, by ``kid``. Pure; skips what cannot verify."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    keys: dict[str | None, VerificationKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping) or jwk.get("kty") not in _ASYMMETRIC_KTY:
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            parsed = jwt.PyJWK(dict(jwk))
        except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
            log.warning("skipping JWK %r: %s", jwk.get("kid"), exc)
            continue
        kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
        keys[kid] = VerificationKey(
            kid, str(jwk["kty"]), parsed.key, jwk.get("alg"), jwk.get("crv")
        )
    return keys


def parse_metadata(document: Any, expected_issuer: str) -> ProviderMetadata:
    """Check the discovery document names ``expected_issuer`` (mix-up protection). Pure."""
    if not isinstance(document, Mapping):
        raise ValueError("discovery document is not a JSON object")
    if document.get("issuer") != expected_issuer:
        raise ValueError("discovery document names another issuer")
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise ValueError("discovery document has no jwks_uri")
    introspection = document.get("introspection_endpoint")
    return ProviderMetadata(
        expected_issuer, jwks_uri, introspection if isinstance(introspection, str) else None
    )


class IssuerKeys:
    """Discovery and JWKS of one issuer, cached; see the module docstring."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        issuer: str,
        *,
        refetch_interval: float = 30.0,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._http = http
        self._refetch_interval = refetch_interval
        self._max_age = max_age
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._keys: dict[str | None, VerificationKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._fetches = 0
        self._lock = asyncio.Lock()

    @property
    def fetch_count(self) -> int:
        """How many times the JWKS was fetched successfully (for tests and metrics)."""
        return self._fetches

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json(url, "discovery")
            try:
                self._metadata = parse_metadata(document, self.issuer)
            except ValueError as exc:
                raise DirectoryUnavailableError(f"issuer {self.issuer}: {exc}") from exc
        return self._metadata

    def cached(self, kid: str | None) -> VerificationKey | None:
        """A known key from a fresh set, without I/O; ``None`` if unknown or due a refresh."""
        fetched = self._fetched_at
        if fetched is None or self._clock() - fetched > self._max_age:
            return None
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> VerificationKey | None:
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        return key

    async def key(self, kid: str | None) -> VerificationKey | None:
        """The key called ``kid``, refetching the JWKS if allowed; ``None`` if it has none."""
        key = self.cached(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self.cached(kid)
            if key is not None:
                return key
            attempted = self._attempted_at
            if attempted is not None and self._clock() - attempted < self._refetch_interval:
                if self._fetched_at is None:
                    raise DirectoryUnavailableError(f"issuer {self.issuer}: no keys yet")
                return self._lookup(kid)
            await self._refresh()
            return self._lookup(kid)

    async def _refresh(self) -> None:
        self._attempted_at = self._clock()
        try:
            metadata = await self.metadata()
            document = await self._get_json(metadata.jwks_uri, "JWKS")
            try:
                keys = parse_jwks(document)
            except ValueError as exc:
                raise DirectoryUnavailableError(f"issuer {self.issuer}: {exc}") from exc
        except DirectoryUnavailableError:
            if self._fetched_at is None:
                raise
            log.warning("issuer %s: JWKS refresh failed; keeping the cached keys", self.issuer)
            return
        self._fetches += 1
        self._keys = keys
        self._fetched_at = self._clock()

    async def _get_json(self, url: str, what: str) -> Any:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise DirectoryUnavailableError(
                f"issuer {self.issuer}: {what} unreachable ({type(exc).__name__})"
            ) from exc
        if response.status_code != 200:
            raise DirectoryUnavailableError(
                f"issuer {self.issuer}: {what} answered HTTP {response.status_code}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise DirectoryUnavailableError(f"issuer {self.issuer}: {what} is not JSON") from exc
