"""Refusals through the router, each with its status: token attacks, credential limits, WLCG
scopes, client_credentials tokens, old signatures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.fixtures.oidc import OidcProvider, SigningKey
from tests.kubepie.router.conftest import Router, basic, browser_login, create_credential
from tests.kubepie.router.signing import signed_headers

#: PROPFIND needs a finite Depth: without one (infinity) the file server answers 403.
DEPTH_1 = {"Depth": "1"}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _attacks(provider: OidcProvider) -> dict[str, str]:
    now = int(time.time())
    good = provider.mint(provider.claims_for("alice"))
    head, body, sig = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    tampered["uid"] = 10002
    public_pem = provider.signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_head = _b64({"alg": "HS256", "typ": "JWT", "kid": provider.signing_key.kid})
    hs_mac = hmac.new(public_pem, f"{hs_head}.{body}".encode(), hashlib.sha256).digest()
    hs_sig = base64.urlsafe_b64encode(hs_mac).rstrip(b"=").decode()
    return {
        "HS256 with the public key": f"{hs_head}.{body}.{hs_sig}",
        "expired": provider.mint(provider.claims_for("alice", iat=now - 900, exp=now - 600)),
        "not yet valid": provider.mint(provider.claims_for("alice", nbf=now + 600)),
        "wrong audience": provider.mint(provider.claims_for("alice", aud="someone-else")),
        "unknown issuer": provider.mint(provider.claims_for("alice", iss="http://evil.test")),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{body}.",
        "tampered claims": f"{head}.{_b64(tampered)}.{sig}",
        "foreign key": provider.mint(provider.claims_for("alice"), key=SigningKey.generate()),
        "garbage": "not-a-token",
    }


async def test_token_attacks_are_401(router: Router) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        for name, token in _attacks(router.provider).items():
            for path in ("/api/v1/whoami", "/dav/home/"):
                response = await http.request(
                    "PROPFIND" if path.startswith("/dav") else "GET",
                    f"{router.url}{path}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 401, (name, path, response.text)
                assert "www-authenticate" in response.headers


async def test_unmappable_users_are_403(router: Router) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        for user in ("rootuser", "svc", "nouid"):
            token = router.provider.mint(router.provider.claims_for(user))
            response = await http.get(
                f"{router.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 403, (user, response.text)


async def test_client_credentials_token_is_403_with_a_clear_message(router: Router) -> None:
    tokens = await router.provider.client_credentials()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        response = await http.get(
            f"{router.url}/api/v1/whoami",
            headers={"Authorization": f"Bearer {tokens.access_token}"},
        )
    assert response.status_code == 403
    assert "client_credentials" in response.json()["message"]


async def test_expired_and_revoked_credentials_are_refused_at_once(router: Router) -> None:
    web = await browser_login(router, "alice")
    try:
        short = await create_credential(web, router, expires_in=1)
        revoked = await create_credential(web, router)
        async with httpx.AsyncClient(trust_env=False, timeout=30) as dav:
            ok = await dav.request(
                "PROPFIND", f"{router.url}/dav/home/", auth=basic(revoked), headers=DEPTH_1
            )
            assert ok.status_code == 207
            gone = await web.delete(f"{router.url}/api/v1/credentials/{revoked['id']}")
            assert gone.status_code == 204
            refused = await dav.request("PROPFIND", f"{router.url}/dav/home/", auth=basic(revoked))
            assert refused.status_code == 401
            await asyncio.sleep(1.2)
            expired = await dav.request("PROPFIND", f"{router.url}/dav/home/", auth=basic(short))
            assert expired.status_code == 401
            wrong = await dav.request(
                "PROPFIND",
                f"{router.url}/dav/home/",
                auth=(revoked["access_key_id"], "wrong-secret"),
            )
            assert wrong.status_code == 401
        other = await browser_login(router, "bob")
        try:
            # Another owner's credential id is "not found", never revealed.
            stolen = await other.delete(f"{router.url}/api/v1/credentials/{short['id']}")
            assert stolen.status_code == 404
        finally:
            await other.aclose()
    finally:
        await web.aclose()


async def test_read_only_and_prefix_credentials(router: Router) -> None:
    web = await browser_login(router, "alice")
    try:
        read_only = await create_credential(web, router, read_only=True)
        confined = await create_credential(web, router, prefix="home/projects")
        bad = await web.post(f"{router.url}/api/v1/credentials", json={"prefix": "home/../x"})
        assert bad.status_code == 400
    finally:
        await web.aclose()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as dav:
        url = f"{router.url}/dav/home"
        assert (
            await dav.put(f"{url}/ro.txt", content=b"x", auth=basic(read_only))
        ).status_code == 403
        listing = await dav.request("PROPFIND", f"{url}/", auth=basic(read_only), headers=DEPTH_1)
        assert listing.status_code == 207
        made = await dav.request("MKCOL", f"{url}/projects/", auth=basic(confined))
        assert made.status_code == 201
        inside = await dav.put(f"{url}/projects/a.txt", content=b"a", auth=basic(confined))
        assert inside.status_code in (201, 204)
        outside = await dav.put(f"{url}/a.txt", content=b"a", auth=basic(confined))
        assert outside.status_code == 403
        sibling = await dav.get(f"{url}/projects2/a.txt", auth=basic(confined))
        assert sibling.status_code == 403
        escape = await dav.request(
            "COPY",
            f"{url}/projects/a.txt",
            auth=basic(confined),
            headers={"Destination": f"{url}/copied.txt"},
        )
        assert escape.status_code == 403


async def test_wlcg_read_scope_cannot_write(router: Router) -> None:
    tokens = await router.provider.login("alice", scopes=("storage.read:/home",))
    headers = {"Authorization": f"Bearer {tokens.access_token}"}
    async with httpx.AsyncClient(trust_env=False, timeout=30, headers=headers) as http:
        listing = await http.request("PROPFIND", f"{router.url}/dav/home/", headers=DEPTH_1)
        assert listing.status_code == 207
        put = await http.put(f"{router.url}/dav/home/scoped.txt", content=b"no")
        assert put.status_code == 403
        other_mount = await http.request("PROPFIND", f"{router.url}/dav/data/", headers=DEPTH_1)
        assert other_mount.status_code == 403


@pytest.mark.parametrize(("minutes", "status"), [(20, 403), (0, 200)])
async def test_sigv4_twenty_minutes_old_is_refused(
    router: Router, minutes: int, status: int
) -> None:
    web = await browser_login(router, "alice")
    try:
        cred = await create_credential(web, router)
    finally:
        await web.aclose()
    host = router.s3_url.removeprefix("http://")
    when = datetime.now(UTC) - timedelta(minutes=minutes)
    headers, _, _ = signed_headers(
        "GET", host, "/home", cred["access_key_id"], cred["secret_access_key"], when=when
    )
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        response = await http.get(f"{router.s3_url}/home", headers=headers)
    assert response.status_code == status, response.text
    if status == 403:
        assert b"RequestTimeTooSkewed" in response.content
