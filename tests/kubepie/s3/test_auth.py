"""Authentication against the running server, presigned URLs, and dropped uploads."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import botocore.auth
import httpx
import pytest
from botocore.exceptions import ClientError
from mypy_boto3_s3 import S3Client

from kubepie.s3 import sigv4
from tests.kubepie.s3.conftest import ACCESS_KEY, SECRET_KEY, S3Server, start_s3


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_wrong_secret_and_unknown_key_are_refused(s3_server: S3Server) -> None:
    with pytest.raises(ClientError) as exc:
        s3_server.client(secret="not-the-secret").list_objects_v2(Bucket="home")
    assert _code(exc) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as exc:
        s3_server.client(secret="not-the-secret").put_object(Bucket="home", Key="w", Body=b"x")
    assert _code(exc) == "SignatureDoesNotMatch"
    assert not (s3_server.home / "w").exists()
    client = s3_server.client()
    client._request_signer._credentials.access_key = "AKIAUNKNOWN"  # type: ignore[attr-defined]
    with pytest.raises(ClientError) as exc:
        client.list_buckets()
    assert _code(exc) == "InvalidAccessKeyId"


def test_anonymous_request_is_refused(s3_server: S3Server) -> None:
    response = httpx.get(f"{s3_server.http_url}/home/", timeout=10)
    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content


def _shift_clock(monkeypatch: pytest.MonkeyPatch, delta: timedelta) -> None:
    real = botocore.auth.get_current_datetime  # type: ignore[attr-defined]

    def shifted(*args: object, **kwargs: object) -> datetime:
        moment: datetime = real(*args, **kwargs)
        return moment + delta

    monkeypatch.setattr(botocore.auth, "get_current_datetime", shifted)


def test_request_signed_twenty_minutes_ago_is_refused(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3_server.client()
    _shift_clock(monkeypatch, timedelta(minutes=-20))
    with pytest.raises(ClientError) as exc:
        client.list_objects_v2(Bucket="home")
    assert _code(exc) == "RequestTimeTooSkewed"


@pytest.mark.parametrize("signature", ["default", "s3v4"])
def test_presigned_get_and_put(s3_server: S3Server, signature: str) -> None:
    # boto3's default presigner still writes SigV2 URLs for us-east-1; s3v4 writes X-Amz-*.
    s3 = s3_server.client(signature_version=None if signature == "default" else signature)
    key = f"presigned/{signature}.txt"
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "home", "Key": key}, ExpiresIn=300
    )
    assert ("X-Amz-Signature=" in put_url) == (signature == "s3v4")
    response = httpx.put(put_url, content=b"sent with a URL", verify=s3_server.tls())
    assert response.status_code == 200, response.text
    assert (s3_server.home / key).read_bytes() == b"sent with a URL"
    get_url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": "home",
            "Key": key,
            "ResponseContentDisposition": "attachment; filename=up.txt",
        },
        ExpiresIn=300,
    )
    response = httpx.get(get_url, verify=s3_server.tls())
    assert response.status_code == 200
    assert response.content == b"sent with a URL"
    assert response.headers["content-disposition"] == "attachment; filename=up.txt"
    tampered = get_url.replace(key, "presigned/other.txt")
    assert httpx.get(tampered, verify=s3_server.tls()).status_code == 403


def test_sigv4_presigned_url_after_expiry_is_refused(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = s3_server.client(signature_version="s3v4")
    s3.put_object(Bucket="home", Key="presigned/old.txt", Body=b"old")
    _shift_clock(monkeypatch, timedelta(hours=-2))
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "home", "Key": "presigned/old.txt"}, ExpiresIn=3600
    )
    response = httpx.get(url, verify=s3_server.tls())
    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content
    assert b"expired" in response.content


def test_default_presigned_url_after_expiry_is_refused(s3: S3Client, s3_server: S3Server) -> None:
    s3.put_object(Bucket="home", Key="presigned/soon.txt", Body=b"soon")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "home", "Key": "presigned/soon.txt"}, ExpiresIn=1
    )
    time.sleep(2.1)
    response = httpx.get(url, verify=s3_server.tls())
    assert response.status_code == 403
    assert b"expired" in response.content


def _send_half_and_hang_up(url: str, total: int) -> None:
    """PUT ``url`` declaring ``total`` bytes, send half of them, then close the socket."""
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}"
    with socket.create_connection((parts.hostname or "", parts.port or 80)) as sock:
        head = f"PUT {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {total}\r\n\r\n"
        sock.sendall(head.encode())
        chunk = b"n" * 65536
        for _ in range(total // 2 // len(chunk)):
            sock.sendall(chunk)
        time.sleep(0.3)


def _wait_for_no_temporaries(directory: Path) -> list[str]:
    deadline = time.monotonic() + 5
    while True:
        left = [p.name for p in directory.rglob("*.kubepie-upload-*")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def test_put_dropped_halfway_leaves_the_previous_version(s3_server: S3Server) -> None:
    client = s3_server.client(https=False)
    client.put_object(Bucket="home", Key="dropped/file.bin", Body=b"previous version")
    url = client.generate_presigned_url(
        "put_object", Params={"Bucket": "home", "Key": "dropped/file.bin"}, ExpiresIn=60
    )
    _send_half_and_hang_up(url, 8 * 1024 * 1024)
    assert _wait_for_no_temporaries(s3_server.home / "dropped") == []
    assert (s3_server.home / "dropped" / "file.bin").read_bytes() == b"previous version"
    got = client.get_object(Bucket="home", Key="dropped/file.bin")["Body"].read()
    assert got == b"previous version"


def test_upload_part_dropped_halfway_leaves_no_part(s3_server: S3Server) -> None:
    client = s3_server.client(https=False)
    key = "dropped/multi.bin"
    upload_id = client.create_multipart_upload(Bucket="home", Key=key)["UploadId"]
    url = client.generate_presigned_url(
        "upload_part",
        Params={"Bucket": "home", "Key": key, "UploadId": upload_id, "PartNumber": 1},
        ExpiresIn=60,
    )
    _send_half_and_hang_up(url, 8 * 1024 * 1024)
    staging = s3_server.home / f".kubepie-s3-uploads-{os.getuid()}" / upload_id
    assert _wait_for_no_temporaries(staging) == []
    assert client.list_parts(Bucket="home", Key=key, UploadId=upload_id).get("Parts", []) == []
    client.abort_multipart_upload(Bucket="home", Key=key, UploadId=upload_id)
    assert not (s3_server.home / "dropped" / "multi.bin").exists()


@pytest.fixture(scope="module")
def trusted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server, process = start_s3(tmp_path_factory.mktemp("s3-trusted"), "per-server-secret")
    yield server
    process.stop()


def test_trusted_front_checks_only_the_server_secret(trusted_server: S3Server) -> None:
    url = f"{trusted_server.http_url}/home/from-router.txt"
    with httpx.Client(timeout=10) as http:
        refused = http.put(url, content=b"x", headers={"x-kubepie-server-secret": "wrong"})
        assert refused.status_code == 403
        assert http.put(url, content=b"x").status_code == 403
        chunked = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"
        accepted = http.put(
            url,
            content=chunked,
            headers={
                "x-kubepie-server-secret": "per-server-secret",
                "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                "content-encoding": "aws-chunked",
                "x-amz-trailer": "x-amz-checksum-crc32",
                "x-amz-decoded-content-length": "5",
            },
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.headers["x-amz-checksum-crc32"] == "NhCmhg=="
    assert (trusted_server.home / "from-router.txt").read_bytes() == b"hello"


def _chunk_signed_put(url: str, body: bytes, *, corrupt: bool = False) -> httpx.Response:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload as the Java SDK sends it, signed here."""
    parts = urlsplit(url)
    now = datetime.now(UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] + [b""]
    encoded_length = sum(
        len(f"{len(c):x};chunk-signature=".encode()) + 64 + 4 + len(c) for c in chunks
    )
    headers = {
        "host": parts.netloc,
        "x-amz-date": amz_date,
        "x-amz-content-sha256": sigv4.STREAMING_SIGNED,
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(body)),
        "content-length": str(encoded_length),
    }
    signed = sorted(headers)
    request = sigv4.HttpRequest("PUT", parts.path, "", headers)
    canonical = sigv4.canonical_request(request, signed, sigv4.STREAMING_SIGNED, presigned=False)
    key = sigv4.signing_key(SECRET_KEY, amz_date[:8], "us-east-1")
    previous = hmac.new(key, sigv4.string_to_sign(amz_date, scope, canonical).encode(), "sha256")
    signature = previous.hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope},"
        f"SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    wire = bytearray()
    for chunk in chunks:
        to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                signature,
                sigv4.EMPTY_SHA256,
                hashlib.sha256(chunk).hexdigest(),
            )
        )
        signature = hmac.new(key, to_sign.encode(), "sha256").hexdigest()
        wire += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk + b"\r\n"
    if corrupt:
        wire[100] ^= 1
    return httpx.put(url, content=bytes(wire), headers=headers, timeout=10)


def test_chunk_signed_upload_is_verified_chunk_by_chunk(s3_server: S3Server) -> None:
    body = bytes(range(256)) * 1000
    url = f"{s3_server.http_url}/home/chunk-signed.bin"
    response = _chunk_signed_put(url, body)
    assert response.status_code == 200, response.text
    assert (s3_server.home / "chunk-signed.bin").read_bytes() == body
    forged = _chunk_signed_put(f"{s3_server.http_url}/home/forged.bin", body, corrupt=True)
    assert forged.status_code == 403
    assert b"SignatureDoesNotMatch" in forged.content
    assert not (s3_server.home / "forged.bin").exists()
