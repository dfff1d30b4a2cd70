"""WebDAV through the router with app credentials (Basic) and bearer tokens: real clients."""

from __future__ import annotations

import asyncio
import os
import subprocess

import httpx

from tests.fixtures.oidc import RESOURCE
from tests.kubepie.router.conftest import (
    Router,
    accounted,
    basic,
    browser_login,
    create_credential,
)


async def test_credentials_api_and_basic_webdav(router: Router) -> None:
    web = await browser_login(router, "alice")
    try:
        cred = await create_credential(web, router, description="laptop")
        assert set(cred) >= {"id", "access_key_id", "secret_access_key"}
        listed = (await web.get(f"{router.url}/api/v1/credentials")).json()["credentials"]
        mine = [c for c in listed if c["id"] == cred["id"]]
        assert mine
        assert "secret_access_key" not in mine[0]
    finally:
        await web.aclose()

    async with httpx.AsyncClient(auth=basic(cred), trust_env=False, timeout=30) as dav:
        put = await dav.put(f"{router.url}/dav/home/hello.txt", content=b"hello alice\n")
        assert put.status_code in (201, 204), put.text
        get = await dav.get(f"{router.url}/dav/home/hello.txt")
        assert get.status_code == 200
        assert get.content == b"hello alice\n"
        assert get.headers.get("x-kubepie-server-secret") is None
        ranged = await dav.get(f"{router.url}/dav/home/hello.txt", headers={"Range": "bytes=0-4"})
        assert ranged.status_code == 206
        assert ranged.content == b"hello"
        etag = get.headers["etag"]
        cached = await dav.get(f"{router.url}/dav/home/hello.txt", headers={"If-None-Match": etag})
        assert cached.status_code == 304
        listing = await dav.request("PROPFIND", f"{router.url}/dav/home/", headers={"Depth": "1"})
        assert listing.status_code == 207
        assert b"hello.txt" in listing.content
        moved = await dav.request(
            "MOVE",
            f"{router.url}/dav/home/hello.txt",
            headers={"Destination": f"{router.url}/dav/home/moved.txt"},
        )
        assert moved.status_code in (201, 204), moved.text
        # Credentials cannot manage credentials.
        refused = await dav.get(f"{router.url}/api/v1/credentials")
        assert refused.status_code == 403
    stat = os.stat(router.home("alice") / "moved.txt")
    assert (stat.st_uid, stat.st_gid) == (10001, 10001)

    puts = await accounted(
        router, lambda e: e["method"] == "PUT" and e["path"] == "/home/hello.txt"
    )
    assert puts
    assert puts[-1]["username"] == "alice"
    assert puts[-1]["auth"] == "basic"
    assert puts[-1]["bytes_in"] == len(b"hello alice\n")
    assert puts[-1]["uid"] == 10001
    assert cred["secret_access_key"] not in router.accounting.read_text()


async def test_bearer_token_with_curl(router: Router) -> None:
    tokens = await router.provider.login("alice", resource=RESOURCE)
    (router.home("alice") / "curl.txt").write_text("via curl\n")
    os.chown(router.home("alice") / "curl.txt", 10001, 10001)
    result = await asyncio.to_thread(
        subprocess.run,
        [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "-H",
            f"Authorization: Bearer {tokens.access_token}",
            f"{router.url}/dav/home/curl.txt",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert result.stdout == b"via curl\n"


async def test_opaque_token_by_introspection(router: Router) -> None:
    opaque = router.provider.register_client(
        ["http://127.0.0.1:9/callback"], access_tokens="opaque"
    )
    tokens = await router.provider.login("alice", client=opaque)
    assert tokens.access_token.count(".") != 2  # not a JWT
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        response = await http.get(
            f"{router.url}/api/v1/whoami",
            headers={"Authorization": f"Bearer {tokens.access_token}"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["username"] == "alice"
        await router.provider.revoke(tokens.access_token, client=opaque)
        revoked = await http.get(
            f"{router.url}/api/v1/whoami",
            headers={"Authorization": f"Bearer {tokens.access_token}"},
        )
        assert revoked.status_code == 401


async def test_litmus_all_suites_through_the_router(router: Router) -> None:
    web = await browser_login(router, "bob")
    try:
        cred = await create_credential(web, router, description="litmus")
    finally:
        await web.aclose()
    env = {**os.environ, "TESTS": "basic copymove props locks http"}
    proc = await asyncio.create_subprocess_exec(
        "litmus",
        "--",  # a secret may start with '-': end option parsing
        f"{router.url}/dav/home/",
        cred["access_key_id"],
        cred["secret_access_key"],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=str(router.area / "logs"),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=240)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    for suite in ("basic", "copymove", "props", "locks", "http"):
        assert f"-> running `{suite}'" in text
    assert "FAIL" not in text, text
