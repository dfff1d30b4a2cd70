"""S3 served by real ``kubepie fileserver`` processes that dropped to real numeric users.

The kernel decides: alice cannot read bob's 0600 file, a member of ``physics`` reads the
group's 0640 file and a non-member does not, nobody replaces a file they may not write, and a
symlink to ``/etc/shadow`` is refused whatever the process could open.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.kubepie.fileserver.servers import (
    ALICE,
    BOB,
    CAROL,
    PHYSICS,
    shared_area,
    start_backend,
    user_dir,
)
from tests.support import ManagedProcess

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def area() -> Iterator[Path]:
    with shared_area() as path:
        bob = user_dir(path / "bob-home", BOB, 0o755)
        private = bob / "private.txt"
        private.write_text("bob only\n")
        os.chown(private, BOB.uid, BOB.gid)
        os.chmod(private, 0o600)
        group = path / "physics"
        group.mkdir()
        os.chmod(group, 0o777)  # noqa: S103 (not sticky: the kernel would allow renames over)
        plan = group / "plan.txt"
        plan.write_text("physics plan\n")
        os.chown(plan, BOB.uid, PHYSICS)
        os.chmod(plan, 0o640)
        home = user_dir(path / "alice-home", ALICE, 0o700)
        (home / "shadow").symlink_to("/etc/shadow")
        user_dir(path / "carol-home", CAROL, 0o700)
        yield path


def _serve(area: Path, user_name: str) -> Iterator[httpx.Client]:
    user = {"alice": ALICE, "carol": CAROL}[user_name]
    mounts: list[dict[str, object]] = [
        {"name": "home", "path": str(area / f"{user_name}-home")},
        {"name": "bob", "path": str(area / "bob-home")},
        {"name": "physics", "path": str(area / "physics")},
    ]
    s3_sock = area / f"{user_name}-s3.sock"
    server = start_backend(
        area, user, mounts, name=f"s3-{user_name}", extra=(f"--s3-listen=unix:{s3_sock}",)
    )
    proc: ManagedProcess = server.proc
    proc.wait_until(s3_sock.exists, what="S3 socket")
    transport = httpx.HTTPTransport(uds=str(s3_sock))
    with httpx.Client(
        transport=transport, base_url="http://fs", headers=server.headers, timeout=30
    ) as client:
        yield client
    server.stop()


@pytest.fixture(scope="module")
def alice(area: Path) -> Iterator[httpx.Client]:
    yield from _serve(area, "alice")


@pytest.fixture(scope="module")
def carol(area: Path) -> Iterator[httpx.Client]:
    yield from _serve(area, "carol")


def _code(response: httpx.Response) -> str:
    start = response.text.find("<Code>")
    return response.text[start + 6 : response.text.find("</Code>")] if start >= 0 else ""


def test_another_users_private_file_is_refused(alice: httpx.Client) -> None:
    response = alice.get("/bob/private.txt")
    assert response.status_code == 403
    assert _code(response) == "AccessDenied"
    assert alice.head("/bob/private.txt").status_code == 403  # as GET, though stat would work
    copy = alice.put("/home/stolen.txt", headers={"x-amz-copy-source": "/bob/private.txt"})
    assert copy.status_code == 403


def test_group_file_readable_by_members_only(alice: httpx.Client, carol: httpx.Client) -> None:
    assert alice.get("/physics/plan.txt").content == b"physics plan\n"
    refused = carol.get("/physics/plan.txt")
    assert refused.status_code == 403
    assert _code(refused) == "AccessDenied"


def test_a_file_the_user_may_not_write_is_not_replaced(alice: httpx.Client, area: Path) -> None:
    response = alice.put("/physics/plan.txt", content=b"overwritten by alice")
    assert response.status_code == 403
    assert (area / "physics" / "plan.txt").read_text() == "physics plan\n"
    assert alice.put("/bob/new.txt", content=b"x").status_code == 403
    assert not (area / "bob-home" / "new.txt").exists()


def test_writes_belong_to_the_user(alice: httpx.Client, area: Path) -> None:
    assert alice.put("/home/mine.txt", content=b"mine").status_code == 200
    st = os.stat(area / "alice-home" / "mine.txt")
    assert (st.st_uid, st.st_gid) == (ALICE.uid, ALICE.gid)
    upload = alice.post("/home/big.bin?uploads")
    assert upload.status_code == 200
    staging = area / "alice-home" / f".kubepie-s3-uploads-{ALICE.uid}"
    assert os.stat(staging).st_uid == ALICE.uid


def test_symlink_to_etc_shadow_is_refused(alice: httpx.Client) -> None:
    response = alice.get("/home/shadow")
    assert response.status_code == 403
    assert _code(response) == "AccessDenied"
    listing = alice.get("/home?list-type=2")
    assert "shadow" not in listing.text


def test_members_of_a_shared_area_each_stage_their_own_uploads(
    alice: httpx.Client, carol: httpx.Client, area: Path
) -> None:
    for client in (alice, carol):
        assert client.post("/physics/shared-upload.bin?uploads").status_code == 200
    for client, user in ((alice, ALICE), (carol, CAROL)):
        listing = client.get("/physics?uploads")
        assert listing.text.count("<Upload>") == 1
        staging = area / "physics" / f".kubepie-s3-uploads-{user.uid}"
        assert os.stat(staging).st_uid == user.uid
        assert os.stat(staging).st_mode & 0o777 == 0o700
