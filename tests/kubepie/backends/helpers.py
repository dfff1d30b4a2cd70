"""Shared pieces of the backend tests: the test population, a storage area, process checks.

The population is the shared one, by number (no passwd entries needed): alice (10001; groups
physics 20001, beamline-x 20002), bob (10002; physics), carol (10003; beamline-x), dave
(10004). Everything the dropped servers touch lives under a world-traversable directory in
``/tmp`` (pytest's ``tmp_path`` is 0700 root, which a dropped process cannot enter).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from identity.models import Identity
from identity.storage import MountSpec
from kubepie.backends.base import Upstream
from kubepie.backends.readiness import SECRET_HEADER

ISSUER = "https://issuer.test"
ALICE = Identity(
    ISSUER, "sub-alice", "alice", 10001, 10001, (20001, 20002), ("beamline-x", "physics")
)
BOB = Identity(ISSUER, "sub-bob", "bob", 10002, 10002, (20001,), ("physics",))
CAROL = Identity(ISSUER, "sub-carol", "carol", 10003, 10003, (20002,), ("beamline-x",))
DAVE = Identity(ISSUER, "sub-dave", "dave", 10004, 10004)


@contextlib.contextmanager
def storage_area() -> Iterator[Path]:
    """``<area>/home/<user>`` (0700, the user's, with ``hello.txt``) for alice, bob and carol;
    dave has no home directory. Removed afterwards."""
    area = Path(tempfile.mkdtemp(prefix="kpb-", dir="/tmp"))
    os.chmod(area, 0o755)  # noqa: S103 (dropped servers must enter it)
    (area / "home").mkdir(mode=0o755)
    for who in (ALICE, BOB, CAROL):
        home = area / "home" / who.username
        home.mkdir(mode=0o700)
        (home / "hello.txt").write_text(f"hello {who.username}\n")
        for path in (home, home / "hello.txt"):
            os.chown(path, who.uid, who.gid)
    try:
        yield area
    finally:
        shutil.rmtree(area, ignore_errors=True)


def home_mounts(area: Path) -> tuple[MountSpec, ...]:
    return (MountSpec("home", str(area / "home" / "{username}")),)


def get(
    upstream: Upstream, path: str, secret: str | None = None, *, s3: bool = False
) -> httpx.Response:
    """``GET path`` on the server behind ``upstream`` (with its secret unless told otherwise),
    on its WebDAV listener or, with ``s3``, its S3 listener."""
    address = upstream.s3_address if s3 else upstream.address
    assert address is not None
    assert address.startswith("unix:")
    transport = httpx.HTTPTransport(uds=address.removeprefix("unix:"))
    with httpx.Client(base_url="http://fileserver", transport=transport, timeout=10) as client:
        return client.get(path, headers={SECRET_HEADER: secret or upstream.secret})


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` as a dict of its ``Key: value`` lines."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (zombies included)."""
    found: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found.update(int(c) for c in (task / "children").read_text().split())
    return found


def proc_file(pid: int, name: str) -> bytes:
    """The bytes of ``/proc/<pid>/<name>``."""
    return Path(f"/proc/{pid}/{name}").read_bytes()


def socket_exists(address: str) -> bool:
    """True when the unix socket of an ``unix:/path`` address is still there."""
    return Path(address.removeprefix("unix:")).exists()


def gone(pid: int) -> bool:
    """True when ``pid`` no longer exists (not even as a zombie)."""
    return not Path(f"/proc/{pid}").exists()


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait (letting the event loop run) until ``condition()`` holds; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)
