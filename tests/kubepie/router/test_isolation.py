"""Isolation through the router: alice cannot read or list bob's files by WebDAV, S3, presigned
URL or path tricks (``..``, encoded slashes, symlinks leading out of a mount)."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.kubepie.router.conftest import Router, basic, browser_login, create_credential
from tests.kubepie.router.test_s3 import s3_client

BOB_SECRET = b"bob's private notes\n"

#: PROPFIND needs a finite Depth: without one (infinity) the file server answers 403.
DEPTH_1 = {"Depth": "1"}


@pytest.fixture(scope="module")
async def creds(router: Router) -> dict[str, Any]:
    out = {}
    for user in ("alice", "bob"):
        web = await browser_login(router, user)
        try:
            out[user] = await create_credential(web, router)
        finally:
            await web.aclose()
    bob_home = router.home("bob")
    (bob_home / "secret.txt").write_bytes(BOB_SECRET)
    os.chown(bob_home / "secret.txt", 10002, 10002)
    physics = router.area / "group" / "physics" / "bob-only.txt"
    physics.write_bytes(BOB_SECRET)
    os.chown(physics, 10002, 20001)
    physics.chmod(0o600)
    alice_home = router.home("alice")
    link = alice_home / "to-bob"
    if not link.is_symlink():
        link.symlink_to(bob_home / "secret.txt")
        os.lchown(link, 10001, 10001)
    return out


async def _raw_get(router: Router, raw_path: str, cred: dict[str, Any]) -> int:
    """GET exactly ``raw_path`` (HTTP clients would normalise the dot segments away)."""
    host, port = router.url.removeprefix("http://").split(":")
    token = base64.b64encode(f"{cred['access_key_id']}:{cred['secret_access_key']}".encode())
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET {raw_path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {token.decode()}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


async def test_webdav_path_tricks(router: Router, creds: dict[str, Any]) -> None:
    alice = basic(creds["alice"])
    async with httpx.AsyncClient(trust_env=False, timeout=30, auth=alice) as http:
        # /dav/home is alice's own home: bob's file is simply not there.
        assert (await http.get(f"{router.url}/dav/home/secret.txt")).status_code == 404
        for raw in (
            "/dav/home/../home/secret.txt",
            "/dav/home/%2e%2e/bob/secret.txt",
            "/dav/home/..%2Fbob%2Fsecret.txt",
            "/dav/home%2F..%2F..%2Fbob/secret.txt",
            "/dav/home/%00/secret.txt",
        ):
            status = await _raw_get(router, raw, creds["alice"])
            assert status == 400, (raw, status)
        link = await http.get(f"{router.url}/dav/home/to-bob")
        assert link.status_code in (403, 404), link.status_code
        assert BOB_SECRET not in link.content
        shared = await http.get(f"{router.url}/dav/group-physics/bob-only.txt")
        assert shared.status_code in (403, 404)
        assert BOB_SECRET not in shared.content
        # Bob's personal group area is not among alice's mounts at all.
        assert (
            await http.request("PROPFIND", f"{router.url}/dav/group-bob/", headers=DEPTH_1)
        ).status_code == 404
        # And a client cannot claim to be someone else to the file server.
        spoof = await http.get(
            f"{router.url}/dav/home/secret.txt",
            headers={"X-KubePie-Server-Secret": "x", "X-KubePie-User": "bob"},
        )
        assert spoof.status_code == 404
    async with httpx.AsyncClient(trust_env=False, timeout=30, auth=basic(creds["bob"])) as http:
        own = await http.get(f"{router.url}/dav/home/secret.txt")
        assert own.content == BOB_SECRET


def _check_s3_tricks(router: Router, creds: dict[str, Any]) -> None:
    alice = s3_client(router, creds["alice"])
    keys = [o["Key"] for o in alice.list_objects_v2(Bucket="home").get("Contents", [])]
    assert "secret.txt" not in keys
    for bucket, key in (("home", "secret.txt"), ("group-physics", "bob-only.txt")):
        with pytest.raises(ClientError):
            alice.get_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as no_bucket:
        alice.list_objects_v2(Bucket="group-bob")
    assert no_bucket.value.response["Error"]["Code"] == "NoSuchBucket"
    url = alice.generate_presigned_url(
        "get_object", Params={"Bucket": "home", "Key": "to-bob"}, ExpiresIn=60
    )
    response = httpx.get(url, trust_env=False)
    assert response.status_code in (403, 404)
    assert BOB_SECRET not in response.content
    # A presigned URL of bob's cannot be turned into one for another path.
    bob = s3_client(router, creds["bob"])
    bob_url = bob.generate_presigned_url(
        "get_object", Params={"Bucket": "home", "Key": "secret.txt"}, ExpiresIn=60
    )
    assert httpx.get(bob_url, trust_env=False).content == BOB_SECRET
    forged = bob_url.replace("/home/secret.txt", "/group-physics/bob-only.txt")
    assert httpx.get(forged, trust_env=False).status_code == 403
    alice.close()
    bob.close()


async def test_s3_and_presigned_isolation(router: Router, creds: dict[str, Any]) -> None:
    await asyncio.to_thread(_check_s3_tricks, router, creds)
