"""The oidc-provider fixture's own contract, which the router and JupyterHub tests build on."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from tests.fixtures.oidc import OidcProvider, drive_login
from tests.fixtures.oidc_login import LoginError, pkce_pair


async def test_a_relying_party_flow_ends_at_its_own_redirect_uri(
    oidc_provider: OidcProvider,
) -> None:
    redirect = "http://127.0.0.1:9/hub/oauth_callback"
    client = oidc_provider.register_client([redirect], auth_method="client_secret_post")
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(8)
    query = urlencode(
        {
            "client_id": client.client_id,
            "response_type": "code",
            "redirect_uri": redirect,
            "scope": "openid profile",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        callback = await drive_login(
            http, f"{oidc_provider.issuer}/auth?{query}", "dave", issuer=oidc_provider.issuer
        )
        assert callback.startswith(redirect + "?")
        params = parse_qs(urlsplit(callback).query)
        assert params["state"] == [state]
        assert params["iss"] == [oidc_provider.issuer]
        response = await http.post(
            f"{oidc_provider.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": params["code"][0],
                "redirect_uri": redirect,
                "code_verifier": verifier,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
            },
        )
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["id_token"], options={"verify_signature": False})
    assert (claims["preferred_username"], claims["uid"], claims["gids"]) == ("dave", 10004, [10004])


async def test_unknown_users_cannot_log_in(oidc_provider: OidcProvider) -> None:
    with pytest.raises(LoginError, match="provider answered"):
        await oidc_provider.login("mallory")


async def test_tokens_carry_the_population_claims_and_requested_storage_scopes(
    oidc_provider: OidcProvider,
) -> None:
    tokens = await oidc_provider.login(
        "alice", scopes=("offline_access", "storage.read:/home/alice", "storage.modify:/data")
    )
    assert tokens.refresh_token
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == "kubepie"
    assert (claims["uid"], claims["gid"], claims["gids"]) == (10001, 10001, [10001, 20001, 20002])
    assert claims["groups"] == ["alice", "beamline-x", "physics"]
    assert set(claims["scope"].split()) >= {"storage.read:/home/alice", "storage.modify:/data"}
    header = jwt.get_unverified_header(tokens.access_token)
    assert (header["typ"], header["alg"], header["kid"]) == (
        "at+jwt",
        "RS256",
        oidc_provider.signing_key.kid,
    )

    service = await oidc_provider.client_credentials(scopes=("storage.read:/data",))
    claims = jwt.decode(service.access_token, options={"verify_signature": False})
    assert (claims["sub"], claims["scope"], claims["aud"]) == (
        oidc_provider.service.client_id,
        "storage.read:/data",
        "kubepie",
    )
    assert "uid" not in claims
