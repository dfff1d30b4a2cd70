"""Paths never leave a mount: dot segments, encoded separators, NUL and outward symlinks → 403.

Requests go out on ``http.client`` so the path reaches the server byte for byte (httpx would
normalise ``..`` away before sending).
"""

from __future__ import annotations

import base64
import http.client
import os
from collections.abc import Iterator

import pytest

from tests.kubepie.fileserver.servers import (
    ACCESS_KEY,
    ALICE,
    SECRET_KEY,
    Server,
    shared_area,
    start_standalone,
    user_dir,
)

AUTH = {
    "Authorization": "Basic " + base64.b64encode(f"{ACCESS_KEY}:{SECRET_KEY}".encode()).decode()
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with shared_area() as area:
        home = user_dir(area / "home", ALICE)
        other = user_dir(area / "other", ALICE)
        (other / "secret.txt").write_text("other mount\n")
        inside = user_dir(home / "inside", ALICE)
        (inside / "ok.txt").write_text("fine\n")
        (home / "back\\slash.txt").write_text("a backslash is a file name byte\n")
        os.symlink("/etc/shadow", home / "shadow")
        os.symlink("/etc", home / "etc")
        os.symlink(str(other), home / "to-other")
        os.symlink("inside/ok.txt", home / "link-ok.txt")
        srv = start_standalone(area, {"home": str(home), "other": str(other)}, name="confined")
        yield srv
        srv.stop()


def raw(server: Server, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, headers={**AUTH, **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/dav/home/../other/secret.txt",
        "/dav/home/%2e%2e/other/secret.txt",
        "/dav/home/%2E%2E/%2E%2E/etc/passwd",
        "/dav/home/inside%2F..%2F..%2Fother/secret.txt",
        "/dav/home/inside%2fok.txt",
        "/dav/home/ok%00.txt",
        "/dav/home/./inside/ok.txt",
        "/dav/home/shadow",
        "/dav/home/etc/passwd",
        "/dav/home/etc/",
        "/dav/home/to-other/secret.txt",
    ],
)
def test_escapes_are_refused(server: Server, path: str) -> None:
    assert raw(server, "GET", path) == 403


def test_a_backslash_is_an_ordinary_name_byte(server: Server) -> None:
    # POSIX names may hold a backslash: such a file is served, and its directory still lists.
    assert raw(server, "GET", "/dav/home/back%5Cslash.txt") == 200
    assert raw(server, "PROPFIND", "/dav/home/", {"Depth": "1"}) == 207


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PROPFIND", "MKCOL"])
def test_outward_symlink_refused_for_every_method(server: Server, method: str) -> None:
    # A finite Depth: without one, PROPFIND is refused (403) before the path is even looked at.
    depth = {"Depth": "0"} if method == "PROPFIND" else None
    assert raw(server, method, "/dav/home/shadow", depth) == 403
    assert raw(server, method, "/dav/home/etc/x", depth) == 403


def test_symlinks_inside_the_mount_work(server: Server) -> None:
    assert raw(server, "GET", "/dav/home/link-ok.txt") == 200
    assert raw(server, "GET", "/dav/home/inside/ok.txt") == 200


def test_listing_hides_outward_symlinks(server: Server) -> None:
    with server.client() as client:
        listing = client.request("PROPFIND", "/dav/home/", headers={"Depth": "1"})
    assert listing.status_code == 207
    assert "link-ok.txt" in listing.text
    for hidden in ("shadow", "/etc/", "to-other"):
        assert f"/dav/home/{hidden.strip('/')}" not in listing.text


@pytest.mark.parametrize(
    "destination",
    [
        "/dav/home/../../etc/x",
        "/dav/home/%2e%2e/other/x",
        "/dav/home/a%2Fb",
        "/elsewhere/x",
        "/dav/home/shadow",
    ],
)
def test_destination_is_confined_too(server: Server, destination: str) -> None:
    status = raw(server, "COPY", "/dav/home/inside/ok.txt", {"Destination": destination})
    assert status == 403


def test_unknown_mount_is_404(server: Server) -> None:
    assert raw(server, "GET", "/dav/nosuch/file") == 404
