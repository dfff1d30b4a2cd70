"""Settings that change behaviour, on the real app driven in-process through httpx."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import httpx

from kubepie.fileserver.mounts import Mount, Mounts
from kubepie.s3.app import create_s3_app
from kubepie.s3.auth import TrustedFrontAuthenticator
from kubepie.s3.settings import S3Settings

SECRET = {"x-kubepie-server-secret": "s"}


async def test_derived_etags_when_md5_etags_are_off(tmp_path: Path) -> None:
    app = create_s3_app(
        Mounts([Mount("home", tmp_path)]),
        TrustedFrontAuthenticator("s"),
        S3Settings(md5_etags=False),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s3") as client:
        put = await client.put("/home/a.bin", content=b"data", headers=SECRET)
        assert put.status_code == 200
        etag = put.headers["etag"]
        assert etag.endswith('-1"')
        head = await client.head("/home/a.bin", headers=SECRET)
        assert head.headers["etag"] == etag
        wrong = base64.b64encode(hashlib.md5(b"other", usedforsecurity=False).digest())
        refused = await client.put(
            "/home/a.bin", content=b"data2", headers={**SECRET, "content-md5": wrong.decode()}
        )
        assert refused.status_code == 400
        assert b"<Code>BadDigest</Code>" in refused.content
    assert (tmp_path / "a.bin").read_bytes() == b"data"
