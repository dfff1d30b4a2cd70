"""ListObjects over a directory tree: keys in S3 order, prefixes, delimiters, markers.

S3 lists keys in UTF-8 byte order, which is Python's code-point order. Walking each directory
with its entries sorted by *key* (a directory sorts as ``name/``) yields every key of the
tree in that global order, lazily, so a page stops reading the tree once it is full. The walk
prunes: it skips directories whose keys cannot match the prefix or all lie at or before the
marker, and a directory that a delimiter rolls up into one common prefix is not entered. Only
the entries returned are stat'ed. Empty directories appear as ``name/`` folder markers.
The file server's own hidden names (``.kubepie-s3*`` multipart staging directories, uploads in
flight of either protocol), names that are not UTF-8, unreadable subdirectories, anything that
is not a regular file or directory (FIFOs, sockets, devices: GET could not serve them) and
symlinks that leave the mount or point at directories are left out.

The walk works on directory descriptors: each directory is opened beneath the mount root
(:meth:`Mount.open`) and its entries are stat'ed relative to it, so a directory swapped for a
symlink while the listing runs cannot make it read outside the mount.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Generator

from kubepie.fileserver.beneath import fd_path
from kubepie.fileserver.errors import FileServerError
from kubepie.fileserver.mounts import Mount
from kubepie.s3 import errors
from kubepie.s3.models import ListPage, ListQuery, ObjectInfo
from kubepie.s3.objects import RESERVED_PREFIX, closing, info_from_stat

_Entry = tuple[str, bool, bool, tuple[str, ...]]  # key, is_dir, is_link, path segments
#: Hidden names holding this are the file server's own (staging directories start with
#: ``.kubepie-s3``; uploads in flight, S3 or WebDAV, are ``.<name>.kubepie-upload-<token>``).
_INTERNAL_MARK = ".kubepie-"
_DIR = os.O_RDONLY | os.O_DIRECTORY
#: Where a returned file is: (directory descriptor, name), valid while its walk step runs.
_Place = tuple[int, str, bool, tuple[str, ...]]
_Steps = Generator[tuple[str, bool, _Place], None, None]


def _entries(mount: Mount, directory: int, base: str, segments: tuple[str, ...]) -> list[_Entry]:
    found: list[_Entry] = []
    with os.scandir(directory) as scan:
        for entry in scan:
            name = entry.name
            if name.startswith(".") and _INTERNAL_MARK in name:
                continue
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_link = entry.is_symlink()
                if not (is_dir or is_link or entry.is_file(follow_symlinks=False)):
                    continue  # a FIFO, socket or device is no object
            except OSError:
                continue
            path = (*segments, name)
            if is_link and not _link_to_file(mount, path):
                continue
            found.append((base + name + ("/" if is_dir else ""), is_dir, is_link, path))
    found.sort()
    return found


def _link_to_file(mount: Mount, path: tuple[str, ...]) -> bool:
    """Whether a symlink leads to a regular file inside the mount."""
    try:
        return stat.S_ISREG(mount.stat(path).st_mode)
    except (OSError, FileServerError):
        return False


class _Walk:
    def __init__(self, mount: Mount, query: ListQuery) -> None:
        self.mount = mount
        self.prefix = query.prefix
        self.delimiter = query.delimiter
        self.marker = query.marker

    def _rollup(self, key: str) -> str | None:
        if not self.delimiter or not key.startswith(self.prefix):
            return None
        index = key.find(self.delimiter, len(self.prefix))
        return None if index < 0 else key[: index + len(self.delimiter)]

    def walk(self, directory: int, entries: list[_Entry]) -> _Steps:
        """``(key, is_common_prefix, place)`` in key order; ``directory`` holds ``entries``."""
        for key, is_dir, is_link, path in entries:
            if is_dir:
                yield from self._directory(directory, key, path)
                continue
            if not key.startswith(self.prefix) or key <= self.marker:
                continue
            common = self._rollup(key)
            if common is None:
                yield key, False, (directory, path[-1], is_link, path)
            elif common > self.marker:
                yield common, True, (-1, "", False, ())

    def _directory(self, parent: int, key: str, path: tuple[str, ...]) -> _Steps:
        if not (key.startswith(self.prefix) or self.prefix.startswith(key)):
            return
        if self.marker and key <= self.marker and not self.marker.startswith(key):
            return
        common = self._rollup(key)
        if common is not None and len(common) <= len(key):
            if common > self.marker:
                yield common, True, (-1, "", False, ())
            return
        try:
            # The entry was a directory, not a symlink: open it as such, relative to its parent.
            flags = _DIR | os.O_NOFOLLOW | os.O_CLOEXEC
            directory = os.open(path[-1], flags, dir_fd=parent)
        except OSError:
            return
        with closing(directory):
            try:
                children = _entries(self.mount, directory, key, path)
            except OSError:
                return
            if children:
                yield from self.walk(directory, children)
            elif key.startswith(self.prefix) and key > self.marker:
                yield key, False, (parent, path[-1], False, path)


def _start(mount: Mount, prefix: str) -> tuple[int, tuple[str, ...], str] | None:
    """A descriptor of the deepest existing directory the prefix lies in, its path and key."""
    base = prefix.rpartition("/")[0]
    if not base:
        return mount.open([], _DIR), (), ""
    parts = tuple(base.split("/"))
    if any(not p or p.startswith(RESERVED_PREFIX) for p in parts):
        return None
    try:
        # O_NOFOLLOW: the listing of a prefix never starts at a symlink (as before).
        return mount.open(parts, _DIR | os.O_NOFOLLOW), parts, base + "/"
    except (FileServerError, OSError):
        return None


def _describe(mount: Mount, key: str, place: _Place) -> ObjectInfo | None:
    """The description of a listed file, or None if it is gone or no longer a regular file."""
    directory, name, is_link, path = place
    try:
        if is_link:
            fd = mount.open(path, os.O_PATH)
        else:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
    except (OSError, FileServerError):
        return None
    with closing(fd):
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode) and not is_link:
            return info_from_stat(key, fd, st)  # an empty directory: a folder marker
        if not stat.S_ISREG(st.st_mode):
            return None
        return info_from_stat(key, fd_path(fd), st)


def list_page(mount: Mount, query: ListQuery) -> ListPage:
    """One page of the listing (blocking: run it in a thread)."""
    try:
        start = _start(mount, query.prefix)
    except FileNotFoundError:
        raise errors.NoSuchBucket(
            "The specified bucket does not exist", resource=mount.name
        ) from None
    except OSError as exc:
        raise errors.from_oserror(exc, mount.name) from exc
    if start is None:
        return ListPage((), (), False)
    directory, parts, base = start
    with closing(directory):
        try:
            entries = _entries(mount, directory, base, parts)
        except OSError as exc:
            raise errors.from_oserror(exc, mount.name) from exc
        contents: list[ObjectInfo] = []
        prefixes: list[str] = []
        last = ""
        walk = _Walk(mount, query).walk(directory, entries)
        with contextlib.closing(walk):
            for key, is_prefix, place in walk:
                if is_prefix and key == last:
                    continue
                if len(contents) + len(prefixes) >= query.max_keys:
                    return ListPage(tuple(contents), tuple(prefixes), True, last)
                if is_prefix:
                    prefixes.append(key)
                else:
                    info = _describe(mount, key, place)
                    if info is None:
                        continue
                    contents.append(info)
                last = key
    return ListPage(tuple(contents), tuple(prefixes), False, last)
