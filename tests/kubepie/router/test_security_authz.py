"""Authorization of every path a request names, against the real router and file servers.

* A decision and the forwarded request read the same headers: a client cannot have the
  router decide on a header (``If-None-Match: *``, ``Overwrite: F``,
  ``x-amz-content-sha256``) that it then drops because ``Connection`` names it.
* The second objects a request names pass the same checks as its path: S3
  ``x-amz-copy-source`` (CopyObject, UploadPartCopy), DeleteObjects' keys, WebDAV ``MOVE``
  sources and destinations.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.kubepie.router.conftest import Router, basic, browser_login, create_credential
from tests.kubepie.router.signing import signed_headers
from tests.kubepie.router.test_s3 import s3_client


async def _credential(router: Router, user: str, **params: Any) -> Any:
    web = await browser_login(router, user)
    try:
        return await create_credential(web, router, **params)
    finally:
        await web.aclose()


async def _token(router: Router, user: str, *scopes: str) -> str:
    tokens = await router.provider.login(user, scopes=scopes)
    return tokens.access_token


async def raw_request(
    method: str, url: str, headers: list[tuple[str, str]], body: bytes = b""
) -> int:
    """Send one HTTP/1.1 request with exactly the headers given (``Connection`` and repeated
    headers included, which HTTP client libraries manage themselves); the response status."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        lines = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)
        return int(status_line.split()[1])
    finally:
        writer.close()


def _folder() -> str:
    return f"authz-{secrets.token_hex(4)}"


# -- item 2: decisions and forwarding read the same headers -----------------------------------


async def test_create_token_cannot_hide_if_none_match_behind_connection(router: Router) -> None:
    folder = _folder()
    alice = await _credential(router, "alice")
    url = f"{router.url}/dav/home/{folder}"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        made = await http.request("MKCOL", f"{url}/", auth=basic(alice))
        assert made.status_code == 201, made.text
        put = await http.put(f"{url}/keep.txt", content=b"original\n", auth=basic(alice))
        assert put.status_code == 201
    token = await _token(router, "alice", f"storage.create:/home/{folder}")
    status = await raw_request(
        "PUT",
        f"{url}/keep.txt",
        [
            ("Authorization", f"Bearer {token}"),
            ("If-None-Match", "*"),
            ("Connection", "close, If-None-Match"),
        ],
        b"overwritten\n",
    )
    assert status == 400
    assert (router.home("alice") / folder / "keep.txt").read_bytes() == b"original\n"


async def test_create_token_cannot_hide_overwrite_behind_connection(router: Router) -> None:
    folder = _folder()
    alice = await _credential(router, "alice")
    url = f"{router.url}/dav/home/{folder}"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        assert (await http.request("MKCOL", f"{url}/", auth=basic(alice))).status_code == 201
        for name, text in (("src.txt", b"new\n"), ("dst.txt", b"original\n")):
            put = await http.put(f"{url}/{name}", content=text, auth=basic(alice))
            assert put.status_code == 201
    token = await _token(
        router, "alice", f"storage.create:/home/{folder}", f"storage.read:/home/{folder}"
    )
    for extra in (
        [("Overwrite", "F"), ("Connection", "close, Overwrite")],
        [("Overwrite", "F"), ("Overwrite", "T"), ("Connection", "close")],
    ):
        status = await raw_request(
            "COPY",
            f"{url}/src.txt",
            [
                ("Authorization", f"Bearer {token}"),
                ("Destination", f"{url}/dst.txt"),
                *extra,
            ],
        )
        assert status == 400, extra
    assert (router.home("alice") / folder / "dst.txt").read_bytes() == b"original\n"


async def test_signed_body_hash_cannot_be_hidden_behind_connection(router: Router) -> None:
    """A captured signed PUT replayed with another body: the router verified the signature
    over ``x-amz-content-sha256``, so the file server must check the body against it."""
    cred = await _credential(router, "alice")
    key = f"{_folder()}.txt"
    host = router.s3_url.removeprefix("http://")
    signed = b"signed body\n"
    headers, _, _ = signed_headers(
        "PUT",
        host,
        f"/home/{key}",
        cred["access_key_id"],
        cred["secret_access_key"],
        payload_hash=hashlib.sha256(signed).hexdigest(),
    )
    swapped = b"forged body\n"
    status = await raw_request(
        "PUT",
        f"{router.s3_url}/home/{key}",
        [
            *((k, v) for k, v in headers.items() if k != "host"),
            ("Connection", "close, x-amz-content-sha256"),
        ],
        swapped,
    )
    assert status == 400
    assert not (router.home("alice") / key).exists()


# -- item 3: every object a request names is checked -----------------------------------------


@pytest.fixture(scope="module")
async def alice_pub(router: Router) -> Any:
    """alice's files ``home/private.txt`` and ``home/pub/a.txt`` and a credential limited to
    ``home/pub``."""
    full = await _credential(router, "alice")
    s3 = s3_client(router, full)
    s3.put_object(Bucket="home", Key="private.txt", Body=b"private\n")
    s3.put_object(Bucket="home", Key="pub/a.txt", Body=b"public\n")
    return await _credential(router, "alice", prefix="home/pub")


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


async def test_prefix_credential_cannot_copy_from_outside_its_prefix(
    router: Router, alice_pub: dict[str, Any]
) -> None:
    s3 = s3_client(router, alice_pub)
    pub = router.home("alice") / "pub"
    sources: list[Any] = [
        {"Bucket": "home", "Key": "private.txt"},
        {"Bucket": "data", "Key": "readme.txt"},
        "home/private.txt",
        "/home/private.txt",
        "home/%70rivate.txt?versionId=null",
        "/data/readme.txt?versionId=1",
    ]
    for number, source in enumerate(sources):
        with pytest.raises(ClientError) as refused:
            s3.copy_object(Bucket="home", Key=f"pub/stolen-{number}.txt", CopySource=source)
        assert _code(refused) == "AccessDenied", source
        assert not (pub / f"stolen-{number}.txt").exists(), source
    s3.copy_object(Bucket="home", Key="pub/copy.txt", CopySource="home/pub/a.txt")
    assert (pub / "copy.txt").read_bytes() == b"public\n"


async def test_prefix_credential_cannot_upload_part_copy_from_outside_its_prefix(
    router: Router, alice_pub: dict[str, Any]
) -> None:
    s3 = s3_client(router, alice_pub)
    upload = s3.create_multipart_upload(Bucket="home", Key="pub/parts.bin")["UploadId"]
    try:
        for source in ("home/private.txt", "data/readme.txt"):
            with pytest.raises(ClientError) as refused:
                s3.upload_part_copy(
                    Bucket="home",
                    Key="pub/parts.bin",
                    UploadId=upload,
                    PartNumber=1,
                    CopySource=source,
                )
            assert _code(refused) == "AccessDenied", source
        parts = s3.list_parts(Bucket="home", Key="pub/parts.bin", UploadId=upload)
        assert not parts.get("Parts")
        inside = s3.upload_part_copy(
            Bucket="home",
            Key="pub/parts.bin",
            UploadId=upload,
            PartNumber=1,
            CopySource="home/pub/a.txt",
        )
        assert inside["CopyPartResult"]["ETag"]
    finally:
        s3.abort_multipart_upload(Bucket="home", Key="pub/parts.bin", UploadId=upload)


async def test_delete_objects_checks_every_key(router: Router, alice_pub: dict[str, Any]) -> None:
    s3 = s3_client(router, alice_pub)
    home = router.home("alice")
    s3.put_object(Bucket="home", Key="pub/d1.txt", Body=b"1")
    s3.put_object(Bucket="home", Key="pub/d2.txt", Body=b"2")
    with pytest.raises(ClientError) as refused:
        s3.delete_objects(
            Bucket="home",
            Delete={"Objects": [{"Key": "pub/d1.txt"}, {"Key": "private.txt"}]},
        )
    assert _code(refused) == "AccessDenied"
    assert (home / "private.txt").read_bytes() == b"private\n"
    assert (home / "pub" / "d1.txt").exists()
    deleted = s3.delete_objects(
        Bucket="home", Delete={"Objects": [{"Key": "pub/d1.txt"}, {"Key": "pub/d2.txt"}]}
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["pub/d1.txt", "pub/d2.txt"]
    assert not deleted.get("Errors")
    assert not (home / "pub" / "d1.txt").exists()
    assert not (home / "pub" / "d2.txt").exists()


async def test_read_only_credential_cannot_copy_delete_or_move(router: Router) -> None:
    folder = _folder()
    full = await _credential(router, "alice")
    read_only = await _credential(router, "alice", read_only=True)
    s3 = s3_client(router, full)
    s3.put_object(Bucket="home", Key=f"{folder}/x.txt", Body=b"x\n")
    ro = s3_client(router, read_only)
    with pytest.raises(ClientError) as copy:
        ro.copy_object(Bucket="home", Key=f"{folder}/y.txt", CopySource=f"home/{folder}/x.txt")
    assert _code(copy) == "AccessDenied"
    with pytest.raises(ClientError) as delete:
        ro.delete_objects(Bucket="home", Delete={"Objects": [{"Key": f"{folder}/x.txt"}]})
    assert _code(delete) == "AccessDenied"
    url = f"{router.url}/dav/home/{folder}"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        moved = await http.request(
            "MOVE",
            f"{url}/x.txt",
            auth=basic(read_only),
            headers={"Destination": f"{url}/z.txt", "Overwrite": "F"},
        )
    assert moved.status_code == 403
    home: Path = router.home("alice") / folder
    assert (home / "x.txt").read_bytes() == b"x\n"
    assert not (home / "y.txt").exists()
    assert not (home / "z.txt").exists()


async def test_move_reads_its_source(router: Router) -> None:
    """A MOVE makes its source readable at the destination: it needs read there too."""
    folder = _folder()
    alice = await _credential(router, "alice")
    url = f"{router.url}/dav/home/{folder}"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        for sub in ("", "in/", "out/"):
            made = await http.request("MKCOL", f"{url}/{sub}", auth=basic(alice))
            assert made.status_code == 201
        put = await http.put(f"{url}/in/secret.txt", content=b"secret\n", auth=basic(alice))
        assert put.status_code == 201
        token = await _token(
            router,
            "alice",
            f"storage.modify:/home/{folder}/in",
            f"storage.modify:/home/{folder}/out",
            f"storage.read:/home/{folder}/out",
        )
        bearer = {"Authorization": f"Bearer {token}"}
        moved = await http.request(
            "MOVE",
            f"{url}/in/secret.txt",
            headers={**bearer, "Destination": f"{url}/out/secret.txt", "Overwrite": "F"},
        )
        assert moved.status_code == 403
        assert (await http.get(f"{url}/out/secret.txt", headers=bearer)).status_code == 404
    assert (router.home("alice") / folder / "in" / "secret.txt").read_bytes() == b"secret\n"


async def test_presigned_upload_cannot_become_a_copy(
    router: Router, alice_pub: dict[str, Any]
) -> None:
    """A presigned PUT URL handed to someone else names one upload; an ``x-amz-copy-source``
    the presigner never signed must not turn it into a copy of another object. (SigV4: a
    SigV2 URL signs every ``x-amz-*`` header sent.)"""
    session = boto3.session.Session(
        aws_access_key_id=alice_pub["access_key_id"],
        aws_secret_access_key=alice_pub["secret_access_key"],
        region_name="us-east-1",
    )
    s3 = session.client(
        "s3",
        endpoint_url=router.s3_url,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": "home", "Key": "pub/presigned.txt"},
        ExpiresIn=300,
    )
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        response = await http.put(
            url, content=b"", headers={"x-amz-copy-source": quote("home/pub/a.txt")}
        )
        assert response.status_code == 403, response.text
        assert b"AccessDenied" in response.content
        assert not (router.home("alice") / "pub" / "presigned.txt").exists()
        plain = await http.put(url, content=b"uploaded\n")
        assert plain.status_code == 200, plain.text
    assert (router.home("alice") / "pub" / "presigned.txt").read_bytes() == b"uploaded\n"
