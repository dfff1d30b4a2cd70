"""SigV2 presigned URLs (boto3's default for us-east-1) are bounded like SigV4's: at most 7
days of validity left at the moment of use. Against the running server."""

from __future__ import annotations

import time

import httpx
import pytest

from kubepie.s3.sigv4 import MAX_PRESIGN_EXPIRES
from tests.kubepie.s3.conftest import S3Server

YEAR_2101 = 4133980800  # 2101-01-01T00:00:00Z


def _sigv2_url(s3_server: S3Server, key: str, expires_at: int) -> str:
    s3 = s3_server.client(signature_version="s3")
    url = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": "home", "Key": key},
        ExpiresIn=expires_at - int(time.time()),
    )
    assert "Signature=" in url
    assert "X-Amz-Signature" not in url
    assert "Expires=" in url
    return url


@pytest.mark.parametrize(
    "expires_at",
    [YEAR_2101, int(time.time()) + MAX_PRESIGN_EXPIRES + 3600],
    ids=["year-2101", "seven-days-and-an-hour"],
)
def test_sigv2_presigned_url_valid_for_more_than_seven_days_is_refused(
    s3_server: S3Server, expires_at: int
) -> None:
    s3_server.client().put_object(Bucket="home", Key="sigv2/far.txt", Body=b"far")
    response = httpx.get(_sigv2_url(s3_server, "sigv2/far.txt", expires_at), verify=s3_server.tls())
    assert response.status_code == 403, response.text
    assert "<Code>AccessDenied</Code>" in response.text
    assert "7 days" in response.text


def test_sigv2_presigned_url_within_seven_days_works(s3_server: S3Server) -> None:
    s3_server.client().put_object(Bucket="home", Key="sigv2/near.txt", Body=b"near")
    url = _sigv2_url(s3_server, "sigv2/near.txt", int(time.time()) + MAX_PRESIGN_EXPIRES - 600)
    response = httpx.get(url, verify=s3_server.tls())
    assert response.status_code == 200, response.text
    assert response.content == b"near"
