"""The dev issuer against our own TokenValidator: what it issues, what it refuses."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from identity.claims import ClaimsPolicy, identity_from_claims
from identity.errors import TokenError
from identity.tokens import IssuerSettings, TokenSettings, TokenValidator
from kubepie.demo.config import AUDIENCE, CLIENT_ID
from kubepie.demo.errors import BindRefused, DemoError
from kubepie.demo.issuer import bind_loopback
from kubepie.demo.keys import SigningKey
from tests.kubepie.demo.conftest import REDIRECT, SECRET, RunningIssuer


def validator(issuer: RunningIssuer, http: httpx.AsyncClient) -> TokenValidator:
    settings = IssuerSettings(issuer.url, (AUDIENCE,), token_type="at+jwt")
    return TokenValidator(TokenSettings((settings,)), http)


async def _tokens(dev_issuer: RunningIssuer, username: str = "alice") -> dict[str, str]:
    code, verifier = await dev_issuer.authorize(username)
    answer = await dev_issuer.token(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    tokens: dict[str, str] = answer.json()
    return tokens


async def test_discovery_names_the_issuer_and_only_s256(dev_issuer: RunningIssuer) -> None:
    doc = (await dev_issuer.http.get(f"{dev_issuer.url}/.well-known/openid-configuration")).json()
    assert doc["issuer"] == dev_issuer.url
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["end_session_endpoint"] == f"{dev_issuer.url}/logout"
    jwks = (await dev_issuer.http.get(doc["jwks_uri"])).json()
    assert [k["alg"] for k in jwks["keys"]] == ["RS256"]
    assert "d" not in jwks["keys"][0]  # the private part is never published


@pytest.mark.parametrize(
    ("user", "uid", "gids", "groups"),
    [
        ("alice", 10001, (10001, 20001, 20002), ("beamline-x", "physics")),
        ("bob", 10002, (10002, 20001), ("physics",)),
        ("carol", 10003, (10003, 20002), ("beamline-x",)),
    ],
)
async def test_access_tokens_validate_and_map_to_the_user(
    dev_issuer: RunningIssuer, user: str, uid: int, gids: tuple[int, ...], groups: tuple[str, ...]
) -> None:
    tokens = await _tokens(dev_issuer, user)
    async with httpx.AsyncClient(trust_env=False) as http:
        token = await validator(dev_issuer, http).validate(tokens["access_token"])
    identity = identity_from_claims(token, ClaimsPolicy())
    assert (identity.username, identity.uid, identity.gid) == (user, uid, uid)
    assert identity.gids == gids
    assert identity.groups == groups
    assert token.client_id == CLIENT_ID


async def test_id_token_is_for_the_client_and_not_an_access_token(
    dev_issuer: RunningIssuer,
) -> None:
    tokens = await _tokens(dev_issuer)
    async with httpx.AsyncClient(trust_env=False) as http:
        with pytest.raises(TokenError, match="token type"):
            await validator(dev_issuer, http).validate(tokens["id_token"])
        client_side = TokenValidator(
            TokenSettings((IssuerSettings(dev_issuer.url, (CLIENT_ID,)),)), http
        )
        id_token = await client_side.validate(tokens["id_token"])
    assert id_token.claims["nonce"] == "n-0S6"
    assert id_token.claims["preferred_username"] == "alice"


async def test_userinfo_answers_for_an_access_token_only(dev_issuer: RunningIssuer) -> None:
    tokens = await _tokens(dev_issuer, "carol")
    url = f"{dev_issuer.url}/userinfo"
    good = await dev_issuer.http.get(
        url, headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert good.json()["uid"] == 10003
    bad = await dev_issuer.http.get(url, headers={"Authorization": f"Bearer {tokens['id_token']}"})
    assert bad.status_code == 401


async def test_wrong_pkce_verifier_is_refused_and_burns_the_code(
    dev_issuer: RunningIssuer,
) -> None:
    code, verifier = await dev_issuer.authorize()
    wrong = await dev_issuer.token(
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=secrets.token_urlsafe(48),
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert "PKCE" in wrong.json()["error_description"]
    # The code is used up by the failed attempt: an attacker gets one guess, not many.
    retry = await dev_issuer.token(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
    )
    assert retry.json()["error"] == "invalid_grant"


async def test_code_reuse_is_refused(dev_issuer: RunningIssuer) -> None:
    code, verifier = await dev_issuer.authorize()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    assert (await dev_issuer.token(**form)).status_code == 200
    again = await dev_issuer.token(**form)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_client_must_authenticate(dev_issuer: RunningIssuer) -> None:
    code, verifier = await dev_issuer.authorize()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    wrong = await dev_issuer.http.post(
        f"{dev_issuer.url}/token", data=form, auth=(CLIENT_ID, SECRET + "x")
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    # An unauthenticated caller cannot burn the code; client_secret_post works like Basic.
    posted = await dev_issuer.http.post(
        f"{dev_issuer.url}/token",
        data={**form, "client_id": CLIENT_ID, "client_secret": SECRET},
    )
    assert posted.status_code == 200
    assert posted.json()["token_type"] == "Bearer"


async def test_refresh_token_rotates(dev_issuer: RunningIssuer) -> None:
    tokens = await _tokens(dev_issuer, "bob")
    fresh = await dev_issuer.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert fresh.status_code == 200
    assert fresh.json()["refresh_token"] != tokens["refresh_token"]
    async with httpx.AsyncClient(trust_env=False) as http:
        token = await validator(dev_issuer, http).validate(fresh.json()["access_token"])
    assert token.claims["uid"] == 10002
    replay = await dev_issuer.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert replay.json()["error"] == "invalid_grant"


async def test_wrong_password_gets_the_form_again(dev_issuer: RunningIssuer) -> None:
    with pytest.raises(AssertionError, match="wrong password"):
        await dev_issuer.authorize("alice", "bob-demo")


@pytest.mark.parametrize(
    "params",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge": ""},
        {"redirect_uri": "http://evil.example/callback"},
        {"scope": "profile"},
        {"client_id": "other"},
    ],
)
async def test_bad_authorization_requests_are_refused(
    dev_issuer: RunningIssuer, params: dict[str, str]
) -> None:
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        **params,
    }
    answer = await dev_issuer.http.get(f"{dev_issuer.url}/authorize", params=query)
    assert answer.status_code == 400
    assert "password" not in answer.text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "localhost.example.org"])
def test_non_loopback_bind_is_refused(host: str) -> None:
    with pytest.raises(BindRefused, match="loopback"):
        bind_loopback(host, 0)


def test_signing_key_persists_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    first = SigningKey.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert SigningKey.load_or_create(path).kid == first.kid
    path.write_text("not a key")
    with pytest.raises(DemoError, match="not a PEM key"):
        SigningKey.load_or_create(path)


async def test_logout_with_id_token_hint_ends_refresh_and_redirects_only_where_registered(
    dev_issuer: RunningIssuer,
) -> None:
    tokens = await _tokens(dev_issuer, "alice")
    url = f"{dev_issuer.url}/logout"
    stranger = await dev_issuer.http.get(
        url,
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "http://evil/"},
    )
    assert stranger.status_code == 200  # a page, never a redirect to an unregistered URI
    assert "You are logged out" in stranger.text
    refused = await dev_issuer.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert refused.json()["error"] == "invalid_grant"
    tokens = await _tokens(dev_issuer, "alice")
    back = await dev_issuer.http.get(
        url,
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "http://127.0.0.1:9/",
            "state": "s1",
        },
    )
    assert back.status_code == 303
    assert back.headers["location"] == "http://127.0.0.1:9/?state=s1"
