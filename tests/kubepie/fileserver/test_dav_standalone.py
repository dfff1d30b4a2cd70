"""WebDAV against a real standalone server running as alice (uid 10001), with HTTP Basic."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.kubepie.fileserver.servers import (
    ACCESS_KEY,
    ALICE,
    SECRET_KEY,
    Server,
    proc_status,
    shared_area,
    start_standalone,
    user_dir,
)


@pytest.fixture(scope="module")
def area() -> Iterator[Path]:
    with shared_area() as path:
        yield path


@pytest.fixture(scope="module")
def server(area: Path) -> Iterator[Server]:
    home = user_dir(area / "home", ALICE)
    data = user_dir(area / "data", ALICE)
    other = user_dir(area / "other", ALICE)
    (data / "readme.txt").write_text("read only\n")
    os.chown(data / "readme.txt", ALICE.uid, ALICE.gid)
    roots = {"home": str(home), "data": f"{data}:ro", "other": str(other)}
    srv = start_standalone(area, roots, name="standalone")
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def test_runs_as_the_invoking_user_not_root(server: Server) -> None:
    status = proc_status(server.proc.pid)
    assert status["Uid"].split() == [str(ALICE.uid)] * 4
    assert status["Gid"].split() == [str(ALICE.gid)] * 4


def test_litmus_passes_all_five_suites(server: Server, area: Path) -> None:
    workdir = user_dir(area / "litmus-cwd", ALICE)
    result = subprocess.run(
        ["litmus", f"{server.base_url}/dav/home/", ACCESS_KEY, SECRET_KEY],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=240,
        check=False,
    )
    summaries = [line for line in result.stdout.splitlines() if line.startswith("<- summary")]
    suites = {line.split("`")[1].split("'")[0]: line for line in summaries}
    assert set(suites) == {"basic", "copymove", "props", "locks", "http"}, result.stdout[-3000:]
    for line in summaries:
        assert " 0 failed" in line, line
        assert "100.0%" in line, line
    assert result.returncode == 0


def test_requests_without_or_with_wrong_credentials_get_401(server: Server) -> None:
    with httpx.Client(base_url=server.base_url) as anon:
        response = anon.get("/dav/home/")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        wrong = base64.b64encode(f"{ACCESS_KEY}:nope".encode()).decode()
        assert (
            anon.get("/dav/home/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
        )


def test_put_then_get_with_range_and_conditionals(client: httpx.Client, area: Path) -> None:
    body = bytes(range(256)) * 4096
    assert client.put("/dav/home/blob.bin", content=body).status_code == 201
    full = client.get("/dav/home/blob.bin")
    assert full.status_code == 200
    assert full.content == body
    etag, modified = full.headers["etag"], full.headers["last-modified"]

    part = client.get("/dav/home/blob.bin", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == body[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(body)}"

    assert client.get("/dav/home/blob.bin", headers={"If-None-Match": etag}).status_code == 304
    since = client.get("/dav/home/blob.bin", headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    head = client.head("/dav/home/blob.bin")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(body)

    assert client.put("/dav/home/blob.bin", content=b"second").status_code == 204
    # The replaced version was kept alive by a hidden link until after the answer: gone now.
    assert not [n for n in _settled(area / "home") if ".kubepie-upload-" in n]
    assert os.stat(area / "home" / "blob.bin").st_nlink == 1
    assert client.put("/dav/home/empty.bin", content=b"").status_code == 201
    assert client.get("/dav/home/empty.bin").content == b""
    assert client.get("/dav/home/blob.bin", headers={"If-None-Match": etag}).content == b"second"


def test_large_get_and_head_match_the_file(client: httpx.Client, area: Path) -> None:
    body = os.urandom(3 * 1024 * 1024 + 12345)  # several 1 MiB blocks and a short tail
    (area / "home" / "large.bin").write_bytes(body)
    got = client.get("/dav/home/large.bin")
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["content-type"] == "application/octet-stream"
    head = client.head("/dav/home/large.bin")
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["content-length"] == str(len(body))
    assert head.content == b""
    assert client.get("/dav/home/nothing-here.bin").status_code == 404


def test_chunked_put_stores_the_whole_body(client: httpx.Client, area: Path) -> None:
    pieces = [os.urandom(300_000) for _ in range(5)]

    def stream() -> Iterator[bytes]:
        yield from pieces

    response = client.put("/dav/home/chunked.bin", content=stream())
    assert response.status_code == 201
    assert (area / "home" / "chunked.bin").read_bytes() == b"".join(pieces)


def test_html_listing_for_browsers(client: httpx.Client) -> None:
    client.put("/dav/home/listed.txt", content=b"x")
    page = client.get("/dav/home/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "listed.txt" in page.text
    root = client.get("/dav/")
    assert 'href="home/"' in root.text
    assert 'href="data/"' in root.text


def test_html_listing_escapes_names_and_hides_internals(client: httpx.Client, area: Path) -> None:
    user_dir(area / "home" / "odd", ALICE)
    (area / "home" / "odd" / '<b>x&y".txt').write_text("x")
    user_dir(area / "home" / "odd" / ".kubepie-s3-uploads", ALICE)
    page = client.get("/dav/home/odd/")
    assert page.status_code == 200
    assert "<b>x" not in page.text
    assert "&lt;b&gt;x&amp;y&quot;.txt" in page.text
    assert 'href="%3Cb%3Ex%26y%22.txt"' in page.text
    assert ".kubepie-" not in page.text
    moved = client.get("/dav/home/odd")
    assert moved.status_code == 301
    assert moved.headers["location"] == "/dav/home/odd/"
    head = client.head("/dav/home/odd/")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(page.content)
    assert head.content == b""
    assert client.get("/dav/home/no-such-dir/").status_code == 404


def test_read_only_mount_refuses_writes(client: httpx.Client, area: Path) -> None:
    assert client.get("/dav/data/readme.txt").text == "read only\n"
    assert client.put("/dav/data/new.txt", content=b"x").status_code == 403
    assert client.put("/dav/data/readme.txt", content=b"x").status_code == 403
    assert client.delete("/dav/data/readme.txt").status_code == 403
    assert client.request("MKCOL", "/dav/data/dir").status_code == 403
    move = client.request(
        "MOVE", "/dav/data/readme.txt", headers={"Destination": "/dav/home/readme.txt"}
    )
    assert move.status_code == 403
    assert (area / "data" / "readme.txt").read_text() == "read only\n"


def test_move_and_copy_across_mounts(client: httpx.Client, area: Path) -> None:
    client.put("/dav/home/travel.txt", content=b"travels")
    copy = client.request(
        "COPY", "/dav/home/travel.txt", headers={"Destination": "/dav/other/copied.txt"}
    )
    assert copy.status_code == 201
    move = client.request(
        "MOVE", "/dav/home/travel.txt", headers={"Destination": "/dav/other/moved.txt"}
    )
    assert move.status_code == 201
    assert (area / "other" / "copied.txt").read_bytes() == b"travels"
    assert (area / "other" / "moved.txt").read_bytes() == b"travels"
    assert not (area / "home" / "travel.txt").exists()
    to_ro = client.request(
        "COPY", "/dav/other/moved.txt", headers={"Destination": "/dav/data/moved.txt"}
    )
    assert to_ro.status_code == 403


def test_mount_roots_cannot_be_deleted_or_moved(client: httpx.Client) -> None:
    assert client.delete("/dav/other/").status_code == 403
    move = client.request("MOVE", "/dav/other/", headers={"Destination": "/dav/home/o/"})
    assert move.status_code == 403
    assert client.delete("/dav/").status_code == 403


def test_dead_properties_live_in_user_xattrs(client: httpx.Client, area: Path) -> None:
    client.put("/dav/home/props.txt", content=b"p")
    patch = (
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:kubepie-test">'
        "<D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>"
    )
    assert client.request("PROPPATCH", "/dav/home/props.txt", content=patch).status_code == 207
    names = os.listxattr(area / "home" / "props.txt")
    assert "user.kubepie.dav.{urn:kubepie-test}colour" in names
    # Replacing the content keeps the properties (PUT renames a new file into place).
    client.put("/dav/home/props.txt", content=b"p2")
    find = client.request(
        "PROPFIND",
        "/dav/home/props.txt",
        headers={"Depth": "0"},
        content='<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:kubepie-test">'
        "<D:prop><Z:colour/></D:prop></D:propfind>",
    )
    assert find.status_code == 207
    assert "blue" in find.text


def _raw_put(server: Server, path: str, head: bytes, sent: bytes) -> None:
    """Send a PUT's headers and part of its body on a raw socket, then hang up."""
    auth = base64.b64encode(f"{ACCESS_KEY}:{SECRET_KEY}".encode())
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"PUT " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Basic " + auth + b"\r\n" + head + b"\r\n" + sent
        )
        time.sleep(0.3)


def _settled(directory: Path) -> list[str]:
    """The names in ``directory`` once no upload temp file is left (waits up to 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        names = sorted(os.listdir(directory))
        if not any(".kubepie-upload-" in n for n in names) or time.monotonic() > deadline:
            return names
        time.sleep(0.05)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("route", ["plain", "wsgidav"])
def test_interrupted_put_leaves_old_version_and_no_partial_file(
    server: Server, client: httpx.Client, area: Path, framing: str, route: str
) -> None:
    """Both PUT paths: the plain fast path and wsgidav's (taken when a header needs it)."""
    target = f"cut-{framing}-{route}.bin"
    old = b"old version\n"
    assert client.put(f"/dav/home/{target}", content=old).status_code == 201
    half = os.urandom(1_000_000)
    if framing == "content-length":
        head = f"Content-Length: {2 * len(half)}\r\n".encode()
        sent = half
    else:
        head = b"Transfer-Encoding: chunked\r\n"
        sent = f"{len(half):x}\r\n".encode() + half + b"\r\n"
    if route == "wsgidav":
        head += b"X-OC-Mtime: 1700000000\r\n"  # not plain: wsgidav handles it
    _raw_put(server, f"/dav/home/{target}", head, sent)
    _raw_put(server, f"/dav/home/new-{target}", head, sent)

    names = _settled(area / "home")
    assert not any(".kubepie-upload-" in n for n in names), names
    assert f"new-{target}" not in names
    assert (area / "home" / target).read_bytes() == old
    assert client.get(f"/dav/home/{target}").content == old


def test_rclone_copies_a_tree_in_and_check_matches(server: Server, area: Path) -> None:
    source = area / "rclone-src"
    for i in range(12):
        sub = source / f"dir{i % 3}" / ("deep" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{i}.bin").write_bytes(os.urandom(1000 * (i + 1)))
    (source / "empty.txt").write_bytes(b"")
    obscured = subprocess.run(
        ["rclone", "obscure", SECRET_KEY], capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(area),
        "RCLONE_CONFIG": str(area / "rclone.conf"),
        "RCLONE_CONFIG_FS_TYPE": "webdav",
        "RCLONE_CONFIG_FS_URL": f"{server.base_url}/dav/home",
        "RCLONE_CONFIG_FS_VENDOR": "other",
        "RCLONE_CONFIG_FS_USER": ACCESS_KEY,
        "RCLONE_CONFIG_FS_PASS": obscured,
    }
    (area / "rclone.conf").write_text("")
    subprocess.run(
        ["rclone", "copy", str(source), "fs:tree"], env=env, check=True, capture_output=True
    )
    check = subprocess.run(
        ["rclone", "check", "--download", str(source), "fs:tree"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "0 differences found" in check.stderr
    assert (area / "home" / "tree" / "dir1" / "deep" / "file1.bin").read_bytes() == (
        source / "dir1" / "deep" / "file1.bin"
    ).read_bytes()
