"""The demo's sample data: home, group and shared areas with realistic owners and modes.

Layout under the storage root (``{root}``)::

    {root}/home/<user>/          0700 user:user   notes, an analysis CSV; bob also has a
                                                  0600 private-notes.txt
    {root}/group/<group>/        2770 root:group  setgid, so new files stay in the group;
                                                  files 0660 owned by a member
    {root}/data/                 0755 root:root   a read-only shared area: README, CSVs and
                                                  small HDF5 files (signature, superblock)

As root every path gets the owner and mode above. Without root (the single-user demo) the tree
holds only the invoking user's home and the shared data, owned by that user. Existing files
are left as they are (a rerun never overwrites what a user changed), but owners and modes are
set again. The storage root and all its ancestors must be enterable by the demo users;
otherwise :class:`~kubepie.demo.errors.SampleDataError` names the directory to fix.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubepie.demo.accounts import DemoUser, Population
from kubepie.demo.errors import SampleDataError

#: Every file of a user's home, as (relative path, content, mode).
_HOME_FILES: tuple[tuple[str, str, int], ...] = (
    ("notes.txt", "Notes of {name}: beamtime plans, to-do list.\n", 0o644),
    ("analysis/run-001.csv", "time_s,counts\n0.0,120\n0.5,131\n1.0,127\n1.5,140\n", 0o644),
)
#: The file no one but bob may read: the demo checks that alice cannot.
PRIVATE_FILE = ("bob", "private-notes.txt", "Bob's private notes. Only bob can read this.\n")


@dataclass(frozen=True, slots=True)
class SampleTree:
    """Where the areas of a storage root are; ``home``/``group`` are the mount templates."""

    root: Path

    @property
    def home(self) -> str:
        return f"{self.root}/home/{{username}}"

    @property
    def group(self) -> str:
        return f"{self.root}/group/{{group}}"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def home_of(self, username: str) -> Path:
        return self.root / "home" / username

    def group_dir(self, group: str) -> Path:
        return self.root / "group" / group


def hdf5_blob(samples: int, seed: int) -> bytes:
    """A small file that starts like HDF5 (signature, version-0 superblock) with float data."""
    signature = b"\x89HDF\r\n\x1a\n"
    superblock = bytes([0, 0, 0, 0, 0, 8, 8, 0]) + struct.pack("<HH", 4, 16) + b"\0" * 4
    values = [((seed * 7919 + i * 104729) % 1000) / 10.0 for i in range(samples)]
    return signature + superblock + struct.pack(f"<{samples}d", *values)


def _data_files() -> Iterator[tuple[str, bytes]]:
    yield (
        "README.md",
        b"# Shared demo data\n\nRead-only measurements every demo user can read:\n\n"
        b"* `calibration.csv`: detector calibration\n"
        b"* `scans/scan-000N.h5`: raw scans (HDF5 headers, synthetic values)\n",
    )
    yield (
        "calibration.csv",
        b"channel,gain,offset\n"
        + b"".join(b"%d,%.3f,%.2f\n" % (c, 1 + c / 100, c / 10) for c in range(16)),
    )
    for n in range(1, 4):
        yield f"scans/scan-{n:04d}.h5", hdf5_blob(256, n)


def _write_new(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(content)


def _own(path: Path, mode: int, uid: int | None, gid: int | None, as_root: bool) -> None:
    if as_root:
        os.chown(path, uid if uid is not None else 0, gid if gid is not None else 0)
    os.chmod(path, mode)


def closed_ancestor(path: Path) -> tuple[Path, int] | None:
    """The first of ``path`` and its ancestors other users cannot enter, with its mode."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except FileNotFoundError:
            continue
        if not mode & stat.S_IXOTH:
            return parent, mode
    return None


def check_enterable(path: Path) -> None:
    """:class:`SampleDataError` unless every ancestor of ``path`` lets other users in."""
    closed = closed_ancestor(path)
    if closed is not None:
        parent, mode = closed
        raise SampleDataError(
            f"{parent} is not enterable by other users (mode {stat.filemode(mode)}): the "
            "demo users' servers could not reach their files; choose another --dir or "
            f"run 'chmod o+x {parent}'"
        )


def _home(tree: SampleTree, user: DemoUser, as_root: bool) -> None:
    home = tree.home_of(user.username)
    home.mkdir(parents=True, exist_ok=True)
    for rel, text, mode in _HOME_FILES:
        path = home / rel
        _write_new(path, text.format(name=user.username).encode())
        _own(path.parent, 0o755, user.uid, user.gid, as_root)
        _own(path, mode, user.uid, user.gid, as_root)
    if user.username == PRIVATE_FILE[0]:
        path = home / PRIVATE_FILE[1]
        _write_new(path, PRIVATE_FILE[2].encode())
        _own(path, 0o600, user.uid, user.gid, as_root)
    _own(home, 0o700, user.uid, user.gid, as_root)


def _group(
    tree: SampleTree, name: str, gid: int, members: tuple[str, ...], population: Population
) -> None:
    area = tree.group_dir(name)
    area.mkdir(parents=True, exist_ok=True)
    owner = population.get(members[0])
    assert owner is not None
    path = area / "shared-plan.md"
    _write_new(path, f"# {name}\n\nShared by: {', '.join(members)}.\n".encode())
    _own(path, 0o660, owner.uid, gid, True)
    _own(area, 0o2770, 0, gid, True)


def create_sample_tree(root: Path, population: Population, *, as_root: bool) -> SampleTree:
    """Create (or bring up to date) the sample tree of ``population`` under ``root``."""
    tree = SampleTree(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if population.multi_user:
            check_enterable(root)
        for sub in ("home", "group", "data"):
            (root / sub).mkdir(exist_ok=True)
            _own(root / sub, 0o755, None, None, as_root)
        _own(root, 0o755, None, None, as_root)
        for name, content in _data_files():
            path = tree.data / name
            _write_new(path, content)
            _own(path.parent, 0o755, None, None, as_root)
            _own(path, 0o644, None, None, as_root)
        for user in population.users:
            _home(tree, user, as_root)
        if as_root and population.multi_user:
            for name, (gid, members) in population.shared_groups.items():
                _group(tree, name, gid, members, population)
    except OSError as exc:
        raise SampleDataError(f"cannot create the sample data under {root}: {exc}") from exc
    return tree
