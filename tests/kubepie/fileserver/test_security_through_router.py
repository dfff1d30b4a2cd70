"""What a client sees of the file server through the real router (``kubepie serve`` with its
local backend and the real oidc-provider): one ``Date`` header (the router's server adds one;
the file server behind it must not add a second), no ``Server`` header, error bodies of ours
in each protocol's format, and the infinite-depth PROPFIND refusal."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config

from tests.fixtures.oidc import OidcProvider
from tests.kubepie.router.conftest import CLAIMS_IDENTITY, Router, _storage, start_router

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d")


@pytest.fixture(scope="module")
def router(oidc_provider: OidcProvider) -> Iterator[Router]:
    area = Path(tempfile.mkdtemp(prefix="kubepie-router-sec-", dir="/tmp"))
    area.chmod(0o755)
    _storage(area)
    handle = start_router(oidc_provider, area, name="router-sec", identity=CLAIMS_IDENTITY)
    try:
        yield handle
    finally:
        handle.stop()
        shutil.rmtree(area, ignore_errors=True)


@pytest.fixture(scope="module")
def dav(router: Router) -> Iterator[httpx.Client]:
    token = router.provider.mint(router.provider.claims_for("alice"))
    with httpx.Client(
        base_url=router.url,
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
        timeout=30,
    ) as client:
        yield client


def assert_headers_once(response: httpx.Response) -> None:
    assert len(response.headers.get_list("date")) == 1, response.headers
    assert "server" not in response.headers, response.headers


def assert_nothing_internal(text: str, router: Router) -> None:
    assert "wsgidav" not in text.lower(), text
    assert "<html" not in text.lower(), text
    assert not TIMESTAMP.search(text), text
    assert str(router.area) not in text, text


def test_webdav_answers_carry_one_date_and_no_server(dav: httpx.Client, router: Router) -> None:
    put = dav.put("/dav/home/dated.txt", content=b"one date\n")
    assert put.status_code == 201, put.text
    for response in (
        put,
        dav.get("/dav/home/dated.txt"),
        dav.head("/dav/home/dated.txt"),
        dav.request("PROPFIND", "/dav/home/", headers={"Depth": "1"}),
        dav.request("MKCOL", "/dav/home/made"),
        dav.options("/dav/home/"),
    ):
        assert response.status_code < 400, (response.status_code, response.text)
        assert_headers_once(response)


def test_webdav_errors_through_the_router_are_ours(dav: httpx.Client, router: Router) -> None:
    missing = dav.get("/dav/home/no-such-file")
    assert missing.status_code == 404
    assert missing.text == "404 Not Found\n"
    assert_nothing_internal(missing.text, router)
    assert_headers_once(missing)
    long_name = dav.put(f"/dav/home/{'n' * 300}", content=b"x")
    assert long_name.status_code == 400, long_name.text
    assert "name too long" in long_name.text
    assert_nothing_internal(long_name.text, router)
    infinite = dav.request("PROPFIND", "/dav/home/")
    assert infinite.status_code == 403
    assert "<D:propfind-finite-depth/>" in infinite.text
    assert_headers_once(infinite)


def test_s3_errors_through_the_router_are_s3_xml_with_one_date(
    dav: httpx.Client, router: Router
) -> None:
    created = dav.post("/api/v1/credentials", json={"description": "headers"})
    assert created.status_code == 201, created.text
    cred = created.json()
    s3 = boto3.session.Session(
        aws_access_key_id=cred["access_key_id"],
        aws_secret_access_key=cred["secret_access_key"],
        region_name="us-east-1",
    ).client(
        "s3",
        endpoint_url=router.s3_url,
        config=Config(
            s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1}
        ),
    )
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket="home", Key="no/such/key")
    assert exc.value.response["Error"]["Code"] == "NoSuchKey"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "home", "Key": "no/such"})
    response = httpx.get(url, trust_env=False)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Code>NoSuchKey</Code>" in response.text
    assert_nothing_internal(response.text, router)
    assert_headers_once(response)
