"""Security review items on the WebDAV side, against a real standalone server (alice, uid
10001) that also serves S3: no unbounded PROPFIND or XML bodies, KubePie's own error bodies
(no WsgiDAV banner, no timestamp, no server path), filesystem errors as 4xx (a name over 255
bytes was a 500), one ``Date`` and no ``Server`` header."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config
from mypy_boto3_s3 import S3Client

from tests.kubepie.fileserver.servers import (
    ACCESS_KEY,
    ALICE,
    SECRET_KEY,
    Server,
    shared_area,
    start_standalone,
    user_dir,
)
from tests.support import free_port

LONG = "n" * 300  # over NAME_MAX (255 bytes): ENAMETOOLONG from the kernel
FINITE_DEPTH = '<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>'
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d")


@pytest.fixture(scope="module")
def area() -> Iterator[Path]:
    with shared_area() as path:
        yield path


@pytest.fixture(scope="module")
def served(area: Path) -> Iterator[tuple[Server, int]]:
    home = user_dir(area / "home", ALICE)
    user_dir(home / "tree" / "sub", ALICE)
    s3_port = free_port()
    srv = start_standalone(
        area, {"home": str(home)}, name="security", extra=(f"--s3-listen=127.0.0.1:{s3_port}",)
    )
    yield srv, s3_port
    srv.stop()


@pytest.fixture
def client(served: tuple[Server, int]) -> Iterator[httpx.Client]:
    with served[0].client() as c:
        yield c


@pytest.fixture(scope="module")
def s3(served: tuple[Server, int]) -> Iterator[S3Client]:
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name="us-east-1"
    )
    client = session.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{served[1]}",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    yield client
    client.close()


def assert_own_error_body(response: httpx.Response, area: Path) -> None:
    """A short body of ours: no wsgidav banner or HTML, no time, no path on the server."""
    text = response.text
    assert "wsgidav" not in text.lower(), text
    assert "<html" not in text.lower(), text
    assert not TIMESTAMP.search(text), text
    assert str(area) not in text, text
    assert "/tmp/" not in text, text
    assert "server" not in {k.lower() for k in response.headers}, response.headers


@pytest.mark.parametrize("depth", [None, "infinity", "Infinity"])
def test_propfind_of_infinite_depth_is_refused_with_the_precondition(
    client: httpx.Client, depth: str | None
) -> None:
    headers = {} if depth is None else {"Depth": depth}
    response = client.request("PROPFIND", "/dav/home/", headers=headers)
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/xml")
    assert FINITE_DEPTH in response.text


def test_propfind_of_depth_one_still_lists(client: httpx.Client) -> None:
    response = client.request("PROPFIND", "/dav/home/", headers={"Depth": "1"})
    assert response.status_code == 207
    assert "/dav/home/tree/" in response.text
    assert "/dav/home/tree/sub/" not in response.text  # one level only


@pytest.mark.parametrize("method", ["PROPFIND", "PROPPATCH", "LOCK"])
def test_xml_body_over_the_bound_is_refused_unread(client: httpx.Client, method: str) -> None:
    body = b"<?xml version='1.0'?><D:propfind xmlns:D='DAV:'><D:allprop/>"
    body += b" " * (2 << 20) + b"</D:propfind>"
    response = client.request(method, "/dav/home/tree", headers={"Depth": "0"}, content=body)
    assert response.status_code == 413, response.text
    assert response.headers.get("connection") == "close"


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("PUT", {}),
        ("GET", {}),
        ("HEAD", {}),
        ("PROPFIND", {"Depth": "0"}),
        ("MKCOL", {}),
        ("DELETE", {}),
        ("PROPPATCH", {}),
        ("LOCK", {"Timeout": "Second-60"}),
        ("COPY", {"Destination": "/dav/home/copy"}),
        ("MOVE", {"Destination": "/dav/home/moved"}),
    ],
)
def test_a_name_over_255_bytes_is_a_client_error(
    client: httpx.Client, area: Path, method: str, headers: dict[str, str]
) -> None:
    content = b"data" if method == "PUT" else None
    if method == "PROPPATCH":
        content = (
            b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z">'
            b"<D:set><D:prop><Z:a>1</Z:a></D:prop></D:set></D:propertyupdate>"
        )
    if method == "LOCK":
        content = (
            b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            b"</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
        )
    response = client.request(method, f"/dav/home/{LONG}", headers=headers, content=content)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if method != "HEAD":
        assert response.status_code == 400
        assert response.text.startswith("400 Bad Request"), response.text
        assert "name too long" in response.text.lower(), response.text
        assert_own_error_body(response, area)


def test_a_destination_name_over_255_bytes_is_a_client_error(client: httpx.Client) -> None:
    assert client.put("/dav/home/source.txt", content=b"x").status_code in (201, 204)
    response = client.request(
        "COPY", "/dav/home/source.txt", headers={"Destination": f"/dav/home/{LONG}"}
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", {}),
        ("PROPFIND", {"Depth": "0"}),
        ("DELETE", {}),
        ("MOVE", {"Destination": "/dav/home/elsewhere"}),
        ("PROPPATCH", {}),
    ],
)
def test_not_found_bodies_are_plain_and_name_nothing_internal(
    client: httpx.Client, area: Path, method: str, headers: dict[str, str]
) -> None:
    response = client.request(method, "/dav/home/no-such-file", headers=headers)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "404 Not Found\n"
    assert_own_error_body(response, area)


def test_status_pages_of_successes_carry_no_banner(client: httpx.Client, area: Path) -> None:
    response = client.request("MKCOL", "/dav/home/made")
    assert response.status_code == 201
    assert response.text == "201 Created\n"
    assert_own_error_body(response, area)
    again = client.request("MKCOL", "/dav/home/made")
    assert again.status_code == 405
    assert_own_error_body(again, area)


def test_one_date_header_and_no_server_header(client: httpx.Client) -> None:
    for response in (
        client.get("/dav/home/no-such-file"),
        client.put("/dav/home/dated.txt", content=b"x"),
        client.get("/dav/home/dated.txt"),
        client.request("PROPFIND", "/dav/home/", headers={"Depth": "1"}),
        client.options("/dav/home/"),
    ):
        assert len(response.headers.get_list("date")) == 1, response.headers
        assert "server" not in response.headers, response.headers


def _raw_exchange(port: int, head: bytes) -> bytes:
    """Send ``head`` (possibly cut short by the server closing) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            for start in range(0, len(head), 65536):
                sock.sendall(head[start : start + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


@pytest.mark.parametrize("which", ["webdav", "s3"])
def test_an_endless_request_head_is_cut_off_with_431(
    served: tuple[Server, int], which: str
) -> None:
    port = served[0].port if which == "webdav" else served[1]
    head = b"GET /dav/home/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 << 20) + b"\r\n\r\n"
    answer = _raw_exchange(port, head)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"connection: close" in answer.lower()


def test_a_large_but_sane_request_head_is_served(served: tuple[Server, int]) -> None:
    server = served[0]
    auth = server.headers["Authorization"].encode()
    head = (
        b"GET /dav/home/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
        + auth
        + b"\r\nX-Padding: "
        + b"p" * (40 << 10)
        + b"\r\n\r\n"
    )
    answer = _raw_exchange(server.port, head)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_s3_key_over_255_bytes_is_key_too_long(s3: S3Client) -> None:
    for call in (
        lambda: s3.put_object(Bucket="home", Key=LONG, Body=b"x"),
        lambda: s3.get_object(Bucket="home", Key=LONG),
        lambda: s3.head_object(Bucket="home", Key=LONG),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        if exc.value.response["Error"].get("Code") not in (None, "400"):  # HEAD has no body
            assert exc.value.response["Error"]["Code"] == "KeyTooLongError"


def test_s3_errors_name_no_server_path_and_carry_no_version(
    served: tuple[Server, int], s3: S3Client, area: Path
) -> None:
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "home", "Key": "nope/x"})
    response = httpx.get(url)
    assert response.status_code == 404
    assert "<Code>NoSuchKey</Code>" in response.text
    assert str(area) not in response.text
    assert "server" not in response.headers
    assert len(response.headers.get_list("date")) == 1
