"""S3 through the router: boto3 (objects, listing, ranges, presigned URLs, multipart), signed
streaming chunks verified by the router, and rclone over S3 and WebDAV."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from mypy_boto3_s3 import S3Client
from mypy_boto3_s3.type_defs import CompletedPartTypeDef

from kubepie.s3 import sigv4
from tests.kubepie.router.conftest import Router, browser_login, create_credential
from tests.kubepie.router.signing import aws_chunked, signed_headers


async def _credential(router: Router, user: str, **params: Any) -> Any:
    web = await browser_login(router, user)
    try:
        return await create_credential(web, router, **params)
    finally:
        await web.aclose()


def s3_client(router: Router, cred: dict[str, Any], read_timeout: float = 60) -> S3Client:
    """boto3 with its defaults but path-style and a single attempt: a retry on a fresh
    connection must not hide a failure."""
    session = boto3.session.Session(
        aws_access_key_id=cred["access_key_id"],
        aws_secret_access_key=cred["secret_access_key"],
        region_name="us-east-1",
    )
    return session.client(
        "s3",
        endpoint_url=router.s3_url,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
            read_timeout=read_timeout,
        ),
    )


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture(scope="module")
async def carol_s3(router: Router) -> Any:
    return await _credential(router, "carol")


def _boto3_suite(router: Router, cred: dict[str, Any]) -> None:
    s3 = s3_client(router, cred)
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {"home", "data", "group-carol", "group-beamline-x"} <= buckets
    s3.put_object(Bucket="home", Key="docs/a.txt", Body=b"alpha\n", Metadata={"k": "v"})
    got = s3.get_object(Bucket="home", Key="docs/a.txt")
    assert got["Body"].read() == b"alpha\n"
    assert got["Metadata"] == {"k": "v"}
    assert s3.get_object(Bucket="home", Key="docs/a.txt", Range="bytes=1-3")["Body"].read() == (
        b"lph"
    )
    listed = s3.list_objects_v2(Bucket="home", Prefix="docs/")
    assert [o["Key"] for o in listed["Contents"]] == ["docs/a.txt"]
    assert s3.head_object(Bucket="home", Key="docs/a.txt")["ContentLength"] == 6
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket="home", Key="docs/none.txt")
    assert _code(missing) == "NoSuchKey"
    with pytest.raises(ClientError) as read_only:
        s3.put_object(Bucket="data", Key="x.txt", Body=b"x")
    assert _code(read_only) == "AccessDenied"

    # Presigned GET and PUT work with any HTTP client, and only for what they name.
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "home", "Key": "docs/a.txt"}, ExpiresIn=60
    )
    assert httpx.get(url, trust_env=False).content == b"alpha\n"
    assert httpx.get(url.replace("a.txt", "b.txt"), trust_env=False).status_code == 403
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "home", "Key": "docs/p.txt"}, ExpiresIn=60
    )
    assert httpx.put(put_url, content=b"presigned", trust_env=False).status_code == 200
    assert s3.get_object(Bucket="home", Key="docs/p.txt")["Body"].read() == b"presigned"

    # Multipart: two parts of 5 MiB and a short last one.
    parts_data = [os.urandom(5 * 1024 * 1024), os.urandom(5 * 1024 * 1024), b"tail"]
    upload = s3.create_multipart_upload(Bucket="home", Key="big/multi.bin")
    parts: list[CompletedPartTypeDef] = []
    for number, data in enumerate(parts_data, start=1):
        etag = s3.upload_part(
            Bucket="home",
            Key="big/multi.bin",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=data,
        )["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket="home",
        Key="big/multi.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    whole = s3.get_object(Bucket="home", Key="big/multi.bin")["Body"].read()
    assert hashlib.sha256(whole).digest() == hashlib.sha256(b"".join(parts_data)).digest()

    s3.copy_object(Bucket="home", Key="docs/copy.txt", CopySource="home/docs/a.txt")
    s3.delete_object(Bucket="home", Key="docs/copy.txt")
    with pytest.raises(ClientError):
        s3.head_object(Bucket="home", Key="docs/copy.txt")
    s3.close()


async def test_boto3_through_the_router(router: Router, carol_s3: Any) -> None:
    await asyncio.to_thread(_boto3_suite, router, carol_s3)
    stat = os.stat(router.home("carol") / "big" / "multi.bin")
    assert (stat.st_uid, stat.st_gid) == (10003, 10003)


async def test_a_refused_upload_leaves_the_connection_usable(router: Router) -> None:
    # boto3 sends file-like bodies with "Expect: 100-continue" and withholds them when the
    # answer comes first; the kept-alive connection must not read the next request as that
    # body. One client (one connection pool) makes every call here.
    cred = await _credential(router, "carol", read_only=True)

    def refused_then_used() -> None:
        s3 = s3_client(router, cred, read_timeout=5)
        for _ in range(3):
            with pytest.raises(ClientError) as refused:
                s3.put_object(Bucket="home", Key="ro.bin", Body=io.BytesIO(b"x" * 100_000))
            assert _code(refused) == "AccessDenied"
            assert "home" in {b["Name"] for b in s3.list_buckets()["Buckets"]}
        s3.close()

    await asyncio.to_thread(refused_then_used)


@pytest.mark.parametrize("forge", [None, 1])
async def test_streaming_chunk_signatures_are_verified_by_the_router(
    router: Router, carol_s3: Any, forge: int | None
) -> None:
    chunks = [os.urandom(70_000), os.urandom(70_000), b"end"]
    length = sum(len(c) for c in chunks)
    host = router.s3_url.removeprefix("http://")
    path = f"/home/stream-{forge}.bin"
    headers, seed, key = signed_headers(
        "PUT",
        host,
        path,
        carol_s3["access_key_id"],
        carol_s3["secret_access_key"],
        payload_hash=sigv4.STREAMING_SIGNED,
        extra={"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(length)},
    )
    body = aws_chunked(chunks, key, seed, headers["x-amz-date"], forge=forge)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        response = await http.put(f"{router.s3_url}{path}", headers=headers, content=body)
    target = router.home("carol") / path.rsplit("/", 1)[1]
    if forge is None:
        assert response.status_code == 200, response.text
        assert target.read_bytes() == b"".join(chunks)
    else:
        assert response.status_code == 403, response.text
        assert b"SignatureDoesNotMatch" in response.content
        assert not target.exists()


def _rclone(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    return subprocess.run(
        ["rclone", "--config", "/dev/null", "--low-level-retries", "1", "--retries", "1", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    (root / "sub" / "c with space.txt").write_text("gamma\n")
    (root / "sub" / "big.bin").write_bytes(os.urandom(6 * 1024 * 1024))


async def test_rclone_copy_and_check_over_s3_and_webdav(
    router: Router, carol_s3: Any, tmp_path: Path
) -> None:
    source = tmp_path / "tree"
    _tree(source)
    s3_env = {
        "RCLONE_CONFIG_KP_TYPE": "s3",
        "RCLONE_CONFIG_KP_PROVIDER": "Other",
        "RCLONE_CONFIG_KP_ACCESS_KEY_ID": carol_s3["access_key_id"],
        "RCLONE_CONFIG_KP_SECRET_ACCESS_KEY": carol_s3["secret_access_key"],
        "RCLONE_CONFIG_KP_ENDPOINT": router.s3_url,
        "RCLONE_CONFIG_KP_REGION": "us-east-1",
        "RCLONE_CONFIG_KP_FORCE_PATH_STYLE": "true",
    }
    obscured = (
        await asyncio.to_thread(_rclone, {}, "obscure", "--", carol_s3["secret_access_key"])
    ).stdout.strip()
    dav_env = {
        "RCLONE_CONFIG_KP_TYPE": "webdav",
        "RCLONE_CONFIG_KP_URL": f"{router.url}/dav/",
        "RCLONE_CONFIG_KP_VENDOR": "other",
        "RCLONE_CONFIG_KP_USER": carol_s3["access_key_id"],
        "RCLONE_CONFIG_KP_PASS": obscured,
    }
    for name, env, remote in (("s3", s3_env, "kp:home/rc-s3"), ("dav", dav_env, "kp:home/rc-dav")):
        copied = await asyncio.to_thread(_rclone, env, "copy", str(source), remote)
        assert copied.returncode == 0, (name, copied.stderr)
        checked = await asyncio.to_thread(_rclone, env, "check", str(source), remote)
        assert checked.returncode == 0, (name, checked.stderr)
        assert "0 differences found" in checked.stderr
        local = router.home("carol") / remote.rsplit("/", 1)[1] / "sub" / "big.bin"
        assert local.read_bytes() == (source / "sub" / "big.bin").read_bytes()
