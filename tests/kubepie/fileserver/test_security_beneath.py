"""Resolution beneath a mount root on a real directory tree: ``openat2(RESOLVE_BENEATH)`` and
the component walk used where it is missing follow symlinks that stay inside (relative or
absolute) and refuse those leading out; ``rename_noreplace`` never replaces a name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubepie.fileserver import beneath
from kubepie.fileserver.errors import PathRefused
from kubepie.fileserver.mounts import Mount


def _tree(root: Path) -> Mount:
    (root / "mount" / "sub").mkdir(parents=True)
    (root / "mount" / "sub" / "file.txt").write_text("inside\n")
    (root / "secret.txt").write_text("outside\n")
    (root / "mount" / "rel-link").symlink_to("sub/file.txt")
    (root / "mount" / "abs-link").symlink_to(root / "mount" / "sub" / "file.txt")
    (root / "mount" / "sub" / "up-link").symlink_to("../sub")
    (root / "mount" / "out-rel").symlink_to("../secret.txt")
    (root / "mount" / "out-abs").symlink_to(root / "secret.txt")
    (root / "mount" / "out-dir").symlink_to(root)
    return Mount("m", root / "mount")


@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "walk"])
def test_resolution_follows_inside_links_and_refuses_outward_ones(
    tmp_path: Path, openat2: bool
) -> None:
    mount = _tree(tmp_path)

    def read(*segments: str) -> str:
        fd = mount.open(segments, os.O_RDONLY)
        try:
            return os.read(fd, 100).decode()
        finally:
            os.close(fd)

    beneath.use_openat2(openat2)
    try:
        assert read("sub", "file.txt") == "inside\n"
        assert read("rel-link") == "inside\n"
        assert read("abs-link") == "inside\n"  # absolute, but back inside the root
        assert read("sub", "up-link", "file.txt") == "inside\n"
        for segments in (("out-rel",), ("out-abs",), ("out-dir", "secret.txt")):
            with pytest.raises(PathRefused):
                read(*segments)
        with pytest.raises(PathRefused):
            mount.open_parent(["out-dir", "x"])
        with pytest.raises(OSError, match="symbolic links"):  # O_NOFOLLOW: ELOOP
            mount.open(["rel-link"], os.O_RDONLY | os.O_NOFOLLOW)
    finally:
        beneath.use_openat2(True)


def test_rename_noreplace_never_replaces(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(FileExistsError):
            beneath.rename_noreplace(fd, "a", fd, "b")
        assert (tmp_path / "b").read_text() == "b"
        beneath.rename_noreplace(fd, "a", fd, "c")
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == ["b", "c"]
