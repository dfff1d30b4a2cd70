"""Token validation against the real oidc-provider: what is accepted, what is refused and why."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from identity.claims import ClaimsPolicy, identity_from_claims
from identity.errors import DirectoryUnavailableError, MappingError, TokenError, UnknownIssuerError
from identity.models import Identity
from identity.scopes import allows, parse_scopes
from identity.tokens import IssuerSettings, TokenSettings, TokenValidator
from tests.fixtures.oidc import AUDIENCE, OidcProvider, OidcProviderFactory, SigningKey
from tests.support import free_port

POLICY = ClaimsPolicy()


def settings_for(*providers: OidcProvider, **overrides: Any) -> TokenSettings:
    issuers = tuple(
        IssuerSettings(
            p.issuer,
            (AUDIENCE,),
            introspection_client_id=p.router.client_id,
            introspection_client_secret=p.router.client_secret,
        )
        for p in providers
    )
    return TokenSettings(issuers, **overrides)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        yield client


@pytest.fixture
def validator(oidc_provider: OidcProvider, http: httpx.AsyncClient) -> TokenValidator:
    return TokenValidator(settings_for(oidc_provider), http)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A compact JWS built by hand (pyjwt refuses to make the dangerous ones)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode(), "sha256").digest()
    return f"{signing_input}.{_b64(signature)}"


async def refused(validator: TokenValidator, token: str) -> TokenError:
    with pytest.raises(TokenError) as caught:
        await validator.validate(token)
    assert token not in str(caught.value)
    assert caught.value.status == 401
    return caught.value


# -- accepted -----------------------------------------------------------------------------------


async def test_a_login_token_maps_to_the_users_identity(
    oidc_provider: OidcProvider, validator: TokenValidator
) -> None:
    tokens = await oidc_provider.login("alice", scopes=("storage.read:/home/alice",))
    token = await validator.validate(tokens.access_token)
    assert (token.issuer, token.subject, token.client_id) == (
        oidc_provider.issuer,
        "alice",
        oidc_provider.router.client_id,
    )
    assert token.expires_at > time.time()
    assert identity_from_claims(token, POLICY) == Identity(
        oidc_provider.issuer,
        "alice",
        "alice",
        10001,
        10001,
        (10001, 20001, 20002),
        ("alice", "beamline-x", "physics"),
    )
    capabilities = parse_scopes(token.scopes)
    assert allows(capabilities, "read", "/home/alice/notes.txt")
    assert not allows(capabilities, "read", "/home/alicex")
    assert not allows(capabilities, "modify", "/home/alice/notes.txt")


async def test_refreshed_and_short_lived_tokens_validate(
    oidc_provider: OidcProvider, validator: TokenValidator
) -> None:
    tokens = await oidc_provider.login("bob", scopes=("offline_access",))
    assert tokens.refresh_token
    refreshed = await oidc_provider.refresh(tokens)
    assert refreshed.access_token != tokens.access_token
    assert (await validator.validate(refreshed.access_token)).subject == "bob"

    client = oidc_provider.register_client(["http://127.0.0.1:9/short"], access_token_ttl=5)
    short = await oidc_provider.login("bob", client=client)
    claims = (await validator.validate(short.access_token)).claims
    assert claims["exp"] - claims["iat"] == 5


async def test_id_token_carries_the_same_identity_but_is_no_access_token(
    oidc_provider: OidcProvider, validator: TokenValidator, http: httpx.AsyncClient
) -> None:
    tokens = await oidc_provider.login("carol")
    assert tokens.id_token
    for_client = TokenValidator(
        TokenSettings((IssuerSettings(oidc_provider.issuer, (oidc_provider.router.client_id,)),)),
        http,
    )
    from_id_token = identity_from_claims(await for_client.validate(tokens.id_token), POLICY)
    from_access = identity_from_claims(await validator.validate(tokens.access_token), POLICY)
    assert from_id_token == from_access
    assert (from_access.uid, from_access.gids) == (10003, (10003, 20002))
    assert (await refused(validator, tokens.id_token)).reason == "audience mismatch"
    # Where the audience cannot tell them apart, the token type (RFC 9068) does.
    typed = TokenValidator(
        TokenSettings(
            (
                IssuerSettings(
                    oidc_provider.issuer,
                    (AUDIENCE, oidc_provider.router.client_id),
                    token_type="at+jwt",
                ),
            )
        ),
        http,
    )
    assert (await typed.validate(tokens.access_token)).subject == "carol"
    assert (await refused(typed, tokens.id_token)).reason == "token has no type"
    jwt_typed = oidc_provider.mint(oidc_provider.claims_for("carol"), headers={"typ": "JWT"})
    assert (await refused(typed, jwt_typed)).reason == "token type 'JWT' is not accepted"


@pytest.mark.parametrize(
    ("username", "reason"),
    [
        ("nouid", "token has no 'uid' claim"),
        ("svc", "uid is below the minimum uid 1000"),
        ("rootuser", "uid 0 is never mapped"),
    ],
)
async def test_valid_tokens_of_unmappable_users_are_refused_at_mapping(
    oidc_provider: OidcProvider, validator: TokenValidator, username: str, reason: str
) -> None:
    token = await validator.validate((await oidc_provider.login(username)).access_token)
    with pytest.raises(MappingError, match=f"^{reason}$") as caught:
        identity_from_claims(token, POLICY)
    assert caught.value.status == 403


async def test_client_credentials_token_is_valid_but_has_no_user(
    oidc_provider: OidcProvider, validator: TokenValidator
) -> None:
    tokens = await oidc_provider.client_credentials()
    token = await validator.validate(tokens.access_token)
    assert token.subject == token.client_id == oidc_provider.service.client_id
    with pytest.raises(MappingError, match="token has no user"):
        identity_from_claims(token, POLICY)


# -- refused, with a reason ---------------------------------------------------------------------


def _edge_cases(p: OidcProvider) -> list[tuple[str, str]]:
    now = int(time.time())
    good = p.claims_for("alice")
    kid = p.signing_key.kid
    public = p.signing_key.private_key.public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_bytes = json.dumps(p.signing_key.public_jwk).encode()
    n_bytes = base64.urlsafe_b64decode(p.signing_key.public_jwk["n"] + "==")
    stranger = SigningKey(kid, SigningKey.generate().private_key)
    genuine = p.mint(good)
    head, body, sig = genuine.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(body + "==")) | {"uid": 10002}
    return [
        (hand_made({"alg": "none", "kid": kid}, good, None), "algorithm 'none' is not allowed"),
        (hand_made({"alg": "None", "kid": kid}, good, None), "algorithm 'none' is not allowed"),
        (hand_made({"alg": "HS256", "kid": kid}, good, pem), "algorithm 'HS256' is not allowed"),
        (
            hand_made({"alg": "HS256", "kid": kid}, good, jwk_bytes),
            "algorithm 'HS256' is not allowed",
        ),
        (
            hand_made({"alg": "HS512", "kid": kid}, good, n_bytes),
            "algorithm 'HS512' is not allowed",
        ),
        (
            f"{_b64(json.dumps({'alg': 'ES256', 'kid': kid}).encode())}.{body}.{sig}",
            "algorithm 'ES256' does not match the signing key",
        ),
        (p.mint({**good, "exp": now - 3600, "iat": now - 7200}), "token expired"),
        (p.mint({**good, "nbf": now + 3600}), "token not yet valid"),
        (p.mint({**good, "iat": now + 3600}), "token issued in the future"),
        (p.mint({**good, "aud": "someone-else"}), "audience mismatch"),
        (p.mint({**good, "aud": [p.router.client_id]}), "audience mismatch"),
        (p.mint({k: v for k, v in good.items() if k != "aud"}), "missing claim 'aud'"),
        (p.mint({k: v for k, v in good.items() if k != "exp"}), "missing claim 'exp'"),
        (p.mint(good, key=stranger), "bad signature"),
        (f"{head}.{_b64(json.dumps(tampered).encode())}.{sig}", "bad signature"),
        (p.mint(good, headers={"kid": "no-such-key"}), "unknown signing key"),
        ("eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "malformed token"),
        ("a.b.c.d.e", "encrypted tokens are not accepted"),
        (p.mint({**good, "padding": "x" * 20_000}), "token too large"),
    ]


async def test_forged_and_out_of_time_tokens_are_refused_with_a_reason(
    oidc_provider: OidcProvider, validator: TokenValidator
) -> None:
    # Warm the key cache first, as a running router would have it.
    await validator.validate(oidc_provider.mint(oidc_provider.claims_for("alice")))
    cases = _edge_cases(oidc_provider)
    outcomes = [(await refused(validator, token)).reason for token, _ in cases]
    assert outcomes == [reason for _, reason in cases]


async def test_untrusted_issuer_is_refused(
    oidc_provider: OidcProvider, validator: TokenValidator
) -> None:
    token = oidc_provider.mint(oidc_provider.claims_for("alice", iss="https://evil.example"))
    error = await refused(validator, token)
    assert isinstance(error, UnknownIssuerError)
    assert error.reason == "issuer is not trusted"


async def test_unreachable_issuer_is_a_503_not_a_401(
    oidc_provider: OidcProvider, http: httpx.AsyncClient
) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    validator = TokenValidator(TokenSettings((IssuerSettings(issuer, (AUDIENCE,)),)), http)
    token = oidc_provider.mint(oidc_provider.claims_for("alice", iss=issuer))
    with pytest.raises(DirectoryUnavailableError, match="unreachable") as caught:
        await validator.validate(token)
    assert caught.value.status == 503


def test_settings_refuse_symmetric_and_none_algorithms() -> None:
    for alg in ("none", "HS256", "HS512"):
        with pytest.raises(ValueError, match=f"algorithm '{alg}' is not an asymmetric"):
            IssuerSettings("https://idp", ("kubepie",), algorithms=("RS256", alg))
    with pytest.raises(ValueError, match="at least one audience"):
        IssuerSettings("https://idp", ())


# -- keys: rotation and the refetch limit --------------------------------------------------------


async def test_rotated_key_is_picked_up_without_restarting_the_validator(
    oidc_provider_factory: OidcProviderFactory, http: httpx.AsyncClient
) -> None:
    provider = oidc_provider_factory.start(name="oidc-rotating")
    validator = TokenValidator(settings_for(provider, jwks_refetch_interval_s=0.2), http)
    before = await provider.login("carol")
    assert (await validator.validate(before.access_token)).subject == "carol"
    keys = validator.keys_of(provider.issuer)
    assert keys.fetch_count == 1

    new_key = provider.rotate_key()
    after = await provider.login("carol")
    assert json.loads(base64.urlsafe_b64decode(after.access_token.split(".")[0] + "=="))["kid"] == (
        new_key.kid
    )
    assert (await validator.validate(after.access_token)).subject == "carol"
    assert keys.fetch_count == 2
    # Tokens signed before the rotation stay valid while the old key is published.
    assert (await validator.validate(before.access_token)).subject == "carol"
    assert keys.fetch_count == 2


async def test_unknown_kid_flood_refetches_at_most_once_per_interval(
    oidc_provider: OidcProvider,
) -> None:
    jwks_requests: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path == "/jwks":
            jwks_requests.append(str(request.url))

    def flood(size: int) -> list[str]:
        made_up = [
            SigningKey(f"made-up-{n}", oidc_provider.signing_key.private_key) for n in range(size)
        ]
        return [oidc_provider.mint(oidc_provider.claims_for("alice"), key=k) for k in made_up]

    async with httpx.AsyncClient(
        timeout=5, trust_env=False, event_hooks={"request": [count]}
    ) as http:
        validator = TokenValidator(settings_for(oidc_provider, jwks_refetch_interval_s=0.5), http)
        await validator.validate(oidc_provider.mint(oidc_provider.claims_for("alice")))
        assert len(jwks_requests) == 1
        for token in flood(30):
            assert (await refused(validator, token)).reason == "unknown signing key"
        assert len(jwks_requests) == 1, "refetched within the interval"

        await asyncio.sleep(0.6)
        # Concurrent requests with unknown kids share one refetch.
        outcomes = await asyncio.gather(
            *(validator.validate(token) for token in flood(30)), return_exceptions=True
        )
        assert {getattr(o, "reason", o) for o in outcomes} == {"unknown signing key"}
        assert len(jwks_requests) == 2, "one refetch once the interval had passed"
        known = await validator.validate(oidc_provider.mint(oidc_provider.claims_for("bob")))
        assert known.subject == "bob"
        assert len(jwks_requests) == 2


# -- opaque tokens: RFC 7662 introspection -------------------------------------------------------


async def test_opaque_token_is_introspected_and_refused_once_revoked(
    oidc_provider: OidcProvider, validator: TokenValidator
) -> None:
    client = oidc_provider.register_client(["http://127.0.0.1:9/opaque"], access_tokens="opaque")
    tokens = await oidc_provider.login("bob", client=client)
    assert tokens.access_token.count(".") == 0
    token = await validator.validate(tokens.access_token)
    assert token.introspected
    assert (token.subject, token.client_id) == ("bob", client.client_id)
    identity = identity_from_claims(token, POLICY)
    assert (identity.username, identity.uid, identity.gids) == ("bob", 10002, (10002, 20001))

    await oidc_provider.revoke(tokens.access_token, client)
    assert (await refused(validator, tokens.access_token)).reason == "token is not active"
    assert (await refused(validator, "not-a-token-at-all")).reason == "token is not active"


async def test_opaque_tokens_need_an_issuer_with_introspection(
    oidc_provider: OidcProvider, http: httpx.AsyncClient
) -> None:
    settings = TokenSettings((IssuerSettings(oidc_provider.issuer, (AUDIENCE,)),))
    validator = TokenValidator(settings, http)
    client = oidc_provider.register_client(["http://127.0.0.1:9/opaque"], access_tokens="opaque")
    tokens = await oidc_provider.login("bob", client=client)
    assert (await refused(validator, tokens.access_token)).reason == (
        "opaque tokens are not accepted"
    )


async def test_opaque_token_for_another_relying_party_is_refused(
    oidc_provider: OidcProvider, validator: TokenValidator
) -> None:
    client = oidc_provider.register_client(["http://127.0.0.1:9/ui"], access_tokens="userinfo")
    tokens = await oidc_provider.login("bob", client=client)
    assert (await refused(validator, tokens.access_token)).reason == "missing claim 'aud'"
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
        userinfo = await http.get(
            f"{oidc_provider.issuer}/me",
            headers={"Authorization": f"Bearer {tokens.access_token}"},
        )
    assert userinfo.status_code == 200
    assert userinfo.json()["uid"] == 10002


# -- several issuers ----------------------------------------------------------------------------


async def test_several_issuers_are_trusted_at_once_and_kept_apart(
    oidc_provider: OidcProvider, oidc_provider_factory: OidcProviderFactory, http: httpx.AsyncClient
) -> None:
    other = oidc_provider_factory.start(name="oidc-second-issuer")
    both = TokenValidator(settings_for(oidc_provider, other), http)
    first_only = TokenValidator(settings_for(oidc_provider), http)

    mine = await oidc_provider.login("alice")
    theirs = await other.login("dave")
    assert (await both.validate(mine.access_token)).issuer == oidc_provider.issuer
    token = await both.validate(theirs.access_token)
    assert (token.issuer, identity_from_claims(token, POLICY).uid) == (other.issuer, 10004)
    assert isinstance(await refused(first_only, theirs.access_token), UnknownIssuerError)

    # The second issuer's key cannot speak for the first issuer.
    impostor = other.mint(oidc_provider.claims_for("alice"))
    assert (await refused(both, impostor)).reason == "unknown signing key"
    same_kid = other.mint(
        oidc_provider.claims_for("alice"),
        key=SigningKey(oidc_provider.signing_key.kid, other.signing_key.private_key),
    )
    assert (await refused(both, same_kid)).reason == "bad signature"
