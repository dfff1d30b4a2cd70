"""The sample tree: owners and modes as root, checked by running commands as the demo users."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from identity.static import StaticDirectory
from kubepie.demo.accounts import DEMO_USERS, single_user, static_directory
from kubepie.demo.errors import SampleDataError
from kubepie.demo.sample import create_sample_tree

pytestmark = pytest.mark.root


@pytest.fixture
def root() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="kubepie-demo-", dir="/tmp"))
    os.chmod(base, 0o755)  # noqa: S103 (the demo users must enter it)
    yield base / "storage"
    shutil.rmtree(base)


def as_user(name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    user = DEMO_USERS.get(name)
    assert user is not None
    return subprocess.run(
        argv,
        user=user.uid,
        group=user.gid,
        extra_groups=list(user.gids),
        capture_output=True,
        text=True,
        check=False,
    )


def owner_mode(path: Path) -> tuple[int, int, str]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.filemode(st.st_mode)


def test_owners_and_modes_as_root(root: Path) -> None:
    tree = create_sample_tree(root, DEMO_USERS, as_root=True)
    assert owner_mode(tree.home_of("alice")) == (10001, 10001, "drwx------")
    assert owner_mode(tree.home_of("bob") / "private-notes.txt") == (10002, 10002, "-rw-------")
    assert owner_mode(tree.group_dir("physics")) == (0, 20001, "drwxrws---")
    assert owner_mode(tree.group_dir("beamline-x")) == (0, 20002, "drwxrws---")
    assert owner_mode(tree.data / "README.md") == (0, 0, "-rw-r--r--")
    assert (tree.data / "scans" / "scan-0001.h5").read_bytes().startswith(b"\x89HDF\r\n\x1a\n")


def test_the_kernel_keeps_users_apart(root: Path) -> None:
    tree = create_sample_tree(root, DEMO_USERS, as_root=True)
    private = tree.home_of("bob") / "private-notes.txt"
    assert as_user("bob", "cat", str(private)).stdout.startswith("Bob's private notes")
    refused = as_user("alice", "cat", str(private))
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr
    assert as_user("alice", "ls", str(tree.home_of("bob"))).returncode != 0
    # Group areas: members write, and new files stay in the group (setgid directory).
    new = tree.group_dir("physics") / "from-alice.txt"
    assert as_user("alice", "touch", str(new)).returncode == 0
    assert new.stat().st_gid == 20001
    assert as_user("carol", "touch", str(tree.group_dir("physics") / "x")).returncode != 0
    assert as_user("carol", "ls", str(tree.group_dir("beamline-x"))).returncode == 0
    # The shared data is readable by everyone and writable by no demo user.
    assert as_user("carol", "cat", str(tree.data / "calibration.csv")).returncode == 0
    assert as_user("alice", "touch", str(tree.data / "mine")).returncode != 0


def test_rerun_keeps_content_and_restores_modes(root: Path) -> None:
    tree = create_sample_tree(root, DEMO_USERS, as_root=True)
    notes = tree.home_of("alice") / "notes.txt"
    notes.write_text("changed by alice\n")
    os.chmod(tree.home_of("bob") / "private-notes.txt", 0o644)
    create_sample_tree(root, DEMO_USERS, as_root=True)
    assert notes.read_text() == "changed by alice\n"
    assert owner_mode(tree.home_of("bob") / "private-notes.txt")[2] == "-rw-------"


def test_single_user_tree_has_only_that_home(root: Path) -> None:
    population = single_user("alice", 10001, 10001)
    tree = create_sample_tree(root, population, as_root=False)
    assert sorted(p.name for p in (root / "home").iterdir()) == ["alice"]
    assert list((root / "group").iterdir()) == []
    assert (tree.data / "README.md").is_file()


def test_unenterable_parent_is_named(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(SampleDataError, match=f"{closed} is not enterable"):
        create_sample_tree(closed / "storage", DEMO_USERS, as_root=True)


async def test_static_directory_matches_the_population(root: Path) -> None:
    homes = {u.username: f"/demo/home/{u.username}" for u in DEMO_USERS.users}
    directory = StaticDirectory.parse(yaml.safe_dump(static_directory(DEMO_USERS, homes)))
    alice = await directory.lookup_user("alice")
    assert alice is not None
    assert (alice.uid, alice.gid, alice.home) == (10001, 10001, "/demo/home/alice")
    groups = await directory.groups_for(alice)
    assert sorted((g.name, g.gid) for g in groups) == [("beamline-x", 20002), ("physics", 20001)]
    bob = await directory.lookup_user("bob")
    assert bob is not None
    assert [g.name for g in await directory.groups_for(bob)] == ["physics"]
