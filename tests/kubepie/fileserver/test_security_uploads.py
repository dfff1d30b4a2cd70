"""Uploads in flight and after a crash, and create-only requests, on real backend servers.

* A temporary upload file is ``0600`` while the body arrives (WebDAV fast path, WebDAV through
  wsgidav, S3), and the finished file gets its final mode.
* Temporary files that a crashed upload left behind are removed when a server starts, if they
  are the user's own and stale; fresh ones and other users' are kept.
* With the router's create-only header WebDAV never replaces or deletes an existing name, and
  of two racing creates of one name exactly one wins.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kubepie.fileserver.uploads import is_upload_name
from tests.kubepie.fileserver.servers import (
    ALICE,
    BOB,
    PHYSICS,
    SERVER_SECRET,
    Server,
    shared_area,
    start_backend,
    user_dir,
)

pytestmark = pytest.mark.root

#: kubepie.fileserver.auth.CREATE_ONLY_HEADER, as the router sends it.
CREATE_ONLY = {"X-KubePie-Create-Only": "1"}
STALE = time.time() - 3 * 24 * 3600
LOCK_BODY = (
    '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
    "</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
)


def _own(path: Path, user: object = ALICE, gid: int | None = None) -> Path:
    uid = user.uid  # type: ignore[attr-defined]
    os.lchown(path, uid, gid if gid is not None else user.gid)  # type: ignore[attr-defined]
    return path


def _file(path: Path, data: bytes = b"x", *, user: object = ALICE, mtime: float = 0) -> Path:
    path.write_bytes(data)
    _own(path, user)
    if mtime:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture(scope="module")
def area() -> Iterator[Path]:
    with shared_area() as path:
        home = user_dir(path / "home", ALICE)
        user_dir(home / "sub", ALICE)
        physics = path / "physics"
        physics.mkdir()
        os.chown(physics, 0, PHYSICS)
        os.chmod(physics, 0o777)  # noqa: S103 (a shared group area, not sticky)
        # Left behind by crashed uploads (and look-alikes that must stay).
        _file(home / ".old.txt.kubepie-upload-0123456789ab", mtime=STALE)
        _file(home / "sub" / ".deep.bin.kubepie-upload-0123456789ac", mtime=STALE)
        _file(home / ".fresh.txt.kubepie-upload-0123456789ad")
        _file(home / "kept.txt", mtime=STALE)
        _own(user_dir(home / ".dir.kubepie-upload-0123456789ae", ALICE))
        _file(physics / ".bobs.txt.kubepie-upload-0123456789af", user=BOB, mtime=STALE)
        yield path


@pytest.fixture(scope="module")
def server(area: Path) -> Iterator[tuple[Server, Path]]:
    mounts: list[dict[str, object]] = [
        {"name": "home", "path": str(area / "home")},
        {"name": "physics", "path": str(area / "physics")},
    ]
    s3_sock = area / "uploads-s3.sock"
    extra = (f"--s3-listen=unix:{s3_sock}",)
    srv = start_backend(area, ALICE, mounts, name="uploads", extra=extra)
    srv.proc.wait_until(s3_sock.exists, what="S3 socket")
    yield srv, s3_sock
    srv.stop()


@pytest.fixture
def dav(server: tuple[Server, Path]) -> Iterator[httpx.Client]:
    with server[0].client() as client:
        yield client


def _swept(server: Server, mount: str) -> bool:
    return f"stale uploads: mount {mount}: removed" in server.proc.log_path.read_text()


def test_stale_uploads_of_the_user_are_removed_at_start(
    server: tuple[Server, Path], area: Path
) -> None:
    srv = server[0]
    srv.proc.wait_until(lambda: _swept(srv, "home") and _swept(srv, "physics"), what="sweep")
    home = area / "home"
    assert not (home / ".old.txt.kubepie-upload-0123456789ab").exists()
    assert not (home / "sub" / ".deep.bin.kubepie-upload-0123456789ac").exists()
    assert (home / ".fresh.txt.kubepie-upload-0123456789ad").exists()  # may be in flight
    assert (home / "kept.txt").exists()
    assert (home / ".dir.kubepie-upload-0123456789ae").is_dir()
    assert (area / "physics" / ".bobs.txt.kubepie-upload-0123456789af").exists()  # bob's


def _slow_put(
    sock_path: Path, request_line: str, headers: dict[str, str], half: bytes
) -> socket.socket:
    """Send the request line, headers and the first half of a body of twice ``len(half)``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(sock_path))
    lines = [request_line, "Host: fs", f"Content-Length: {2 * len(half)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + half)
    return sock


def _finish(sock: socket.socket, half: bytes) -> int:
    sock.sendall(half)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    return int(data.split(b" ", 2)[1])


def _temp_files(directory: Path, name: str) -> list[Path]:
    return [
        p for p in directory.iterdir() if is_upload_name(p.name) and p.name[1:].startswith(name)
    ]


@pytest.mark.parametrize(
    ("protocol", "extra"),
    [("dav", {}), ("dav", {"X-OC-Mtime": "1700000000"}), ("s3", {})],
    ids=["dav-fast", "dav-wsgidav", "s3"],
)
def test_an_upload_in_flight_is_private(
    server: tuple[Server, Path], area: Path, protocol: str, extra: dict[str, str]
) -> None:
    srv, s3_sock = server
    name = f"slow-{protocol}-{len(extra)}.bin"
    sock_path = Path(srv.uds or "") if protocol == "dav" else s3_sock
    url = f"/dav/home/{name}" if protocol == "dav" else f"/home/{name}"
    half = b"h" * (256 << 10)
    headers = {"X-KubePie-Server-Secret": SERVER_SECRET, **extra}
    sock = _slow_put(sock_path, f"PUT {url} HTTP/1.1", headers, half)
    deadline = time.monotonic() + 20
    while not _temp_files(area / "home", name) and time.monotonic() < deadline:
        time.sleep(0.02)
    temps = _temp_files(area / "home", name)
    assert len(temps) == 1
    assert stat.S_IMODE(temps[0].stat().st_mode) == 0o600
    assert _finish(sock, half) in (200, 201, 204)
    mask = os.umask(0)
    os.umask(mask)
    final = area / "home" / name
    assert final.stat().st_size == 2 * len(half)
    assert stat.S_IMODE(final.stat().st_mode) == 0o666 & ~mask
    assert _temp_files(area / "home", name) == []


def test_create_only_never_replaces_or_deletes(dav: httpx.Client, area: Path) -> None:
    existing = _file(area / "home" / "existing.txt", b"original")
    _file(area / "home" / "source.txt", b"source")
    put = dav.put("/dav/home/existing.txt", content=b"replaced", headers=CREATE_ONLY)
    assert put.status_code == 403
    wsgidav_put = {**CREATE_ONLY, "X-OC-Mtime": "1700000000"}
    assert dav.put("/dav/home/existing.txt", content=b"r", headers=wsgidav_put).status_code == 403
    assert dav.delete("/dav/home/existing.txt", headers=CREATE_ONLY).status_code == 403
    for method, extra in [
        ("COPY", {"Overwrite": "T"}),
        ("COPY", {"Overwrite": "F"}),
        ("MOVE", {"Overwrite": "T"}),
    ]:
        response = dav.request(
            method,
            "/dav/home/source.txt",
            headers={**CREATE_ONLY, **extra, "Destination": "/dav/home/existing.txt"},
        )
        assert response.status_code in (403, 412), (method, extra)
    proppatch = (
        '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set>'
        "<D:prop><Z:tag>x</Z:tag></D:prop></D:set></D:propertyupdate>"
    )
    patched = dav.request(
        "PROPPATCH", "/dav/home/existing.txt", content=proppatch, headers=CREATE_ONLY
    )
    assert patched.status_code == 403 or "403" in patched.text
    locked = dav.request("LOCK", "/dav/home/existing.txt", content=LOCK_BODY, headers=CREATE_ONLY)
    assert locked.status_code == 403
    assert existing.read_bytes() == b"original"
    assert (area / "home" / "source.txt").read_bytes() == b"source"
    # Creating is what create-only allows.
    assert dav.put("/dav/home/created.txt", content=b"new", headers=CREATE_ONLY).status_code == 201
    copied = dav.request(
        "COPY", "/dav/home/source.txt", headers={**CREATE_ONLY, "Destination": "/dav/home/c.txt"}
    )
    assert copied.status_code == 201
    assert (area / "home" / "c.txt").read_bytes() == b"source"


def _create_concurrently(srv: Server, url: str, headers: dict[str, str], writers: int) -> list[int]:
    """PUT ``url`` from ``writers`` threads released at once; their statuses."""
    statuses: list[int] = []
    start = threading.Barrier(writers)

    def create(n: int) -> None:
        with srv.client() as client:
            start.wait()
            body = f"writer {n}".encode() * 1000
            statuses.append(client.put(url, content=body, headers=headers).status_code)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize("path", ["fast", "wsgidav"])
def test_racing_creates_have_exactly_one_winner(
    server: tuple[Server, Path], area: Path, path: str
) -> None:
    extra = {"X-OC-Mtime": "1700000000"} if path == "wsgidav" else {}
    for round_ in range(5):
        name = f"race-{path}-{round_}.txt"
        url = f"/dav/home/{name}"
        statuses = _create_concurrently(server[0], url, {**CREATE_ONLY, **extra}, 8)
        assert sorted(statuses) == [201] + [403] * 7, statuses
        content = (area / "home" / name).read_bytes()
        assert content in {f"writer {n}".encode() * 1000 for n in range(8)}
