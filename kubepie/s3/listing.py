"""ListObjects over a directory tree: keys in S3 order, prefixes, delimiters, markers.

S3 lists keys in UTF-8 byte order, which is Python's code-point order. Walking each directory
with its entries sorted by *key* (a directory sorts as ``name/``) yields every key of the
tree in that global order, lazily, so a page stops reading the tree once it is full. The walk
prunes: it skips directories whose keys cannot match the prefix or all lie at or before the
marker, and a directory that a delimiter rolls up into one common prefix is not entered. Only
the entries returned are stat'ed. Empty directories appear as ``name/`` folder markers.
The file server's own hidden names (``.kubepie-s3*`` multipart staging directories, uploads in
flight of either protocol), names that are not UTF-8, unreadable subdirectories and symlinks
that leave the mount or point at directories are left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from kubepie.fileserver.errors import FileServerError
from kubepie.fileserver.mounts import Mount
from kubepie.s3 import errors
from kubepie.s3.models import ListPage, ListQuery, ObjectInfo
from kubepie.s3.objects import RESERVED_PREFIX, info_from_stat

_Entry = tuple[str, bool, str]  # key, is_dir, filesystem path
#: Hidden names holding this are the file server's own (staging directories start with
#: ``.kubepie-s3``; uploads in flight, S3 or WebDAV, are ``.<name>.kubepie-upload-<token>``).
_INTERNAL_MARK = ".kubepie-"


def _entries(mount_real: str, directory: str, base: str) -> list[_Entry]:
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
            is_dir = entry.is_dir(follow_symlinks=False)
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if not (real == mount_real or real.startswith(mount_real + os.sep)):
                    continue
                if os.path.isdir(real):
                    continue
            found.append((base + name + ("/" if is_dir else ""), is_dir, entry.path))
    found.sort()
    return found


class _Walk:
    def __init__(self, mount_real: str, query: ListQuery) -> None:
        self.mount_real = mount_real
        self.prefix = query.prefix
        self.delimiter = query.delimiter
        self.marker = query.marker

    def _rollup(self, key: str) -> str | None:
        if not self.delimiter or not key.startswith(self.prefix):
            return None
        index = key.find(self.delimiter, len(self.prefix))
        return None if index < 0 else key[: index + len(self.delimiter)]

    def walk(self, entries: list[_Entry]) -> Iterator[tuple[str, bool, str]]:
        """``(key, is_common_prefix, path)`` in key order."""
        for key, is_dir, path in entries:
            if is_dir:
                yield from self._directory(key, path)
                continue
            if not key.startswith(self.prefix) or key <= self.marker:
                continue
            common = self._rollup(key)
            if common is None:
                yield key, False, path
            elif common > self.marker:
                yield common, True, ""

    def _directory(self, key: str, path: str) -> Iterator[tuple[str, bool, str]]:
        if not (key.startswith(self.prefix) or self.prefix.startswith(key)):
            return
        if self.marker and key <= self.marker and not self.marker.startswith(key):
            return
        common = self._rollup(key)
        if common is not None and len(common) <= len(key):
            if common > self.marker:
                yield common, True, ""
            return
        try:
            children = _entries(self.mount_real, path, key)
        except OSError:
            return
        if children:
            yield from self.walk(children)
        elif key.startswith(self.prefix) and key > self.marker:
            yield key, False, path


def _start(mount: Mount, prefix: str) -> tuple[Path, str] | None:
    """The deepest existing directory the prefix lies in, and its key."""
    base = prefix.rpartition("/")[0]
    if not base:
        return mount.root, ""
    parts = base.split("/")
    if any(not p or p.startswith(RESERVED_PREFIX) for p in parts):
        return None
    try:
        directory = mount.resolve(parts)
    except FileServerError:
        return None
    if not directory.is_dir() or directory.is_symlink():
        return None
    return directory, base + "/"


def list_page(mount: Mount, query: ListQuery) -> ListPage:
    """One page of the listing (blocking: run it in a thread)."""
    start = _start(mount, query.prefix)
    if start is None:
        return ListPage((), (), False)
    directory, base = start
    mount_real = os.path.realpath(mount.root)
    try:
        entries = _entries(mount_real, str(directory), base)
    except FileNotFoundError:
        if base:
            return ListPage((), (), False)
        raise errors.NoSuchBucket(
            "The specified bucket does not exist", resource=mount.name
        ) from None
    except OSError as exc:
        raise errors.from_oserror(exc, mount.name) from exc
    contents: list[ObjectInfo] = []
    prefixes: list[str] = []
    last = ""
    for key, is_prefix, path in _Walk(mount_real, query).walk(entries):
        if is_prefix and key == last:
            continue
        if len(contents) + len(prefixes) >= query.max_keys:
            return ListPage(tuple(contents), tuple(prefixes), True, last)
        if is_prefix:
            prefixes.append(key)
        else:
            try:
                st = os.stat(path)
            except OSError:
                continue
            contents.append(info_from_stat(key, path, st))
        last = key
    return ListPage(tuple(contents), tuple(prefixes), False, last)
