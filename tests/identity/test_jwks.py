"""The issuer key cache: discovery, JWKS parsing, refresh by age, and an issuer going away."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from identity.errors import DirectoryUnavailableError
from identity.jwks import IssuerKeys, parse_jwks, parse_metadata
from tests.fixtures.oidc import OidcProvider, OidcProviderFactory, SigningKey


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        yield client


def test_jwks_parsing_keeps_only_asymmetric_signing_keys() -> None:
    rsa = SigningKey.generate().public_jwk
    keys = parse_jwks(
        {
            "keys": [
                rsa,
                {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
                {**SigningKey.generate().public_jwk, "kid": "enc", "use": "enc"},
                {"kty": "RSA", "kid": "broken", "n": "", "e": ""},
                "not a key",
            ]
        }
    )
    assert list(keys) == [rsa["kid"]]
    assert keys[rsa["kid"]].kty == "RSA"
    with pytest.raises(ValueError, match="not a JWK Set"):
        parse_jwks({"keys": "none"})


def test_discovery_must_name_the_expected_issuer() -> None:
    good = {"issuer": "https://idp", "jwks_uri": "https://idp/jwks"}
    assert parse_metadata(good, "https://idp").introspection_endpoint is None
    with pytest.raises(ValueError, match="names another issuer"):
        parse_metadata({**good, "issuer": "https://evil"}, "https://idp")
    with pytest.raises(ValueError, match="no jwks_uri"):
        parse_metadata({"issuer": "https://idp"}, "https://idp")


async def test_key_set_is_refreshed_when_older_than_max_age(
    oidc_provider: OidcProvider, http: httpx.AsyncClient
) -> None:
    clock = Clock()
    keys = IssuerKeys(http, oidc_provider.issuer, refetch_interval=10, max_age=100, clock=clock)
    kid = oidc_provider.signing_key.kid
    assert keys.cached(kid) is None
    assert (await keys.key(kid)) is not None
    assert keys.cached(kid) is not None
    clock.now += 50
    assert (await keys.key(kid)) is not None
    assert keys.fetch_count == 1
    clock.now += 60
    assert keys.cached(kid) is None, "past max_age the cache does not answer alone"
    assert (await keys.key(kid)) is not None
    assert keys.fetch_count == 2


async def test_cached_keys_outlive_an_issuer_outage_but_no_keys_is_a_503(
    oidc_provider_factory: OidcProviderFactory, http: httpx.AsyncClient
) -> None:
    provider = oidc_provider_factory.start(name="oidc-outage")
    kid = provider.signing_key.kid
    clock = Clock()
    warm = IssuerKeys(http, provider.issuer, refetch_interval=10, max_age=100, clock=clock)
    assert (await warm.key(kid)) is not None
    provider.stop()

    clock.now += 500
    assert (await warm.key(kid)) is not None, "stale keys keep verifying while the issuer is down"
    assert (await warm.key("unknown")) is None
    assert warm.fetch_count == 1

    cold = IssuerKeys(http, provider.issuer, refetch_interval=10, clock=clock)
    with pytest.raises(DirectoryUnavailableError, match="unreachable") as caught:
        await cold.key(kid)
    assert caught.value.status == 503
    with pytest.raises(DirectoryUnavailableError, match="no keys yet"):
        await cold.key(kid)

    provider.start()
    clock.now += 11
    assert (await cold.key(kid)) is not None
