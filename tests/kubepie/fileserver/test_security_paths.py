"""Paths are resolved beneath the mount root atomically, not checked and then opened.

A real backend server (alice, uid 10001, WebDAV and S3) while another process keeps swapping a
directory of alice's for a symlink to ``/etc`` (``renameat2(RENAME_EXCHANGE)``, so the name
always exists): reads of ``dir/passwd`` by WebDAV (fast path and wsgidav) and S3 must never
return ``/etc/passwd``, and writes through the swapped name must never land outside the mount.
(The resolution itself is tested in ``test_security_beneath.py``.)
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.kubepie.fileserver.servers import ALICE, Server, shared_area, start_backend, user_dir

pytestmark = pytest.mark.root

SAFE = b"inside the mount\n"
TRIES = 1000
SECONDS = 15.0
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (both exist at every instant)."""
    if _libc.renameat2(-100, bytes(a), -100, bytes(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class Swapper:
    """Swaps ``home/dir`` (a real directory) with ``home/alt`` (a symlink) until stopped."""

    def __init__(self, home: Path, outside: str) -> None:
        self.one, self.other = home / "dir", home / "alt"
        self.stop = threading.Event()
        self.swaps = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        (home / "alt").symlink_to(outside)
        os.lchown(home / "alt", ALICE.uid, ALICE.gid)

    def _run(self) -> None:
        while not self.stop.is_set():
            exchange(self.one, self.other)
            self.swaps += 1

    def __enter__(self) -> Swapper:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        if self.one.is_symlink():
            exchange(self.one, self.other)
        self.other.unlink()


@pytest.fixture(scope="module")
def area() -> Iterator[Path]:
    with shared_area() as path:
        yield path


@pytest.fixture(scope="module")
def servers(area: Path) -> Iterator[tuple[Server, httpx.Client]]:
    home = user_dir(area / "home", ALICE)
    inside = user_dir(home / "dir", ALICE)
    (inside / "passwd").write_bytes(SAFE)
    os.chown(inside / "passwd", ALICE.uid, ALICE.gid)
    user_dir(area / "outside", ALICE, 0o777)
    s3_sock = area / "paths-s3.sock"
    mounts: list[dict[str, object]] = [{"name": "home", "path": str(home)}]
    server = start_backend(
        area, ALICE, mounts, name="paths", extra=(f"--s3-listen=unix:{s3_sock}",)
    )
    server.proc.wait_until(s3_sock.exists, what="S3 socket")
    s3 = httpx.Client(
        transport=httpx.HTTPTransport(uds=str(s3_sock)),
        base_url="http://fs",
        headers=server.headers,
        timeout=30,
    )
    yield server, s3
    s3.close()
    server.stop()


def _race(
    home: Path, outside: str, request: httpx.Client, method: str, url: str, **kw: object
) -> list[httpx.Response]:
    """Answers of ``method url`` sent while ``dir`` is swapped with a symlink to ``outside``."""
    answers: list[httpx.Response] = []
    deadline = time.monotonic() + SECONDS
    with Swapper(home, outside) as swapper:
        while len(answers) < TRIES and time.monotonic() < deadline:
            try:
                answers.append(request.request(method, url, **kw))  # type: ignore[arg-type]
            except httpx.RemoteProtocolError:
                continue  # a body cut short (the server saw the file change under it)
    assert swapper.swaps > len(answers)  # the swapper really ran during the requests
    return answers


@pytest.mark.parametrize(
    ("which", "url", "headers"),
    [
        ("dav", "/dav/home/dir/passwd", {}),  # the plain GET fast path
        ("dav", "/dav/home/dir/passwd", {"Range": "bytes=0-"}),  # wsgidav
        ("s3", "/home/dir/passwd", {}),
    ],
)
def test_a_swapped_directory_never_leaks_etc_passwd(
    servers: tuple[Server, httpx.Client], area: Path, which: str, url: str, headers: dict[str, str]
) -> None:
    server, s3 = servers
    with server.client() as dav:
        client = dav if which == "dav" else s3
        answers = _race(area / "home", "/etc", client, "GET", url, headers=headers)
    leaked = [r for r in answers if b"root:" in r.content]
    assert not leaked, f"{len(leaked)} of {len(answers)} answers were /etc/passwd"
    assert any(r.content == SAFE for r in answers)  # the inside file was served meanwhile


def test_writes_through_a_swapped_directory_stay_inside(
    servers: tuple[Server, httpx.Client], area: Path
) -> None:
    server, s3 = servers
    outside = area / "outside"
    with server.client() as dav:
        _race(area / "home", str(outside), dav, "PUT", "/dav/home/dir/w.txt", content=b"x")
        _race(area / "home", str(outside), s3, "PUT", "/home/dir/s.txt", content=b"x")
        _race(area / "home", str(outside), dav, "MKCOL", "/dav/home/dir/c")
    assert sorted(os.listdir(outside)) == []


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        ("GET", "/dav/home/dir/", {}),  # the HTML listing for browsers
        ("PROPFIND", "/dav/home/dir/", {"Depth": "1"}),
    ],
)
def test_a_swapped_directory_never_lists_etc(
    servers: tuple[Server, httpx.Client], area: Path, method: str, url: str, headers: dict[str, str]
) -> None:
    server, _ = servers
    foreign = {name for name in os.listdir("/etc") if name != "passwd"}
    with server.client() as dav:
        answers = _race(area / "home", "/etc", dav, method, url, headers=headers)
    listed = [r for r in answers if any(f"{name}<" in r.text for name in foreign)]
    assert not listed, f"{len(listed)} of {len(answers)} answers listed /etc"
    assert any("passwd" in r.text for r in answers)
