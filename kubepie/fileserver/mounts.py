"""Storage mounts and path confinement (pure, apart from resolving symlinks).

A :class:`Mount` is a named directory tree, possibly read-only. :meth:`Mount.resolve` turns a
path *inside* the mount into a filesystem path and refuses, with :class:`PathRefused`, anything
that could leave the mount root: ``.``/``..`` segments, NUL bytes, and symlinks (anywhere in the
path) whose target lies outside the root. :func:`split_url_path` does the URL-level part:
percent-decoding segment by segment and refusing an encoded separator (``%2F``). A backslash is
an ordinary byte of a POSIX file name, not a separator: it is accepted, so that a directory
holding such a name can still be listed and the file reached.

Limits: the check resolves symlinks at request time; a symlink swapped in between the check and
the open is not caught here. The server runs as the user, so such a race reaches at most what
the user's own UID may reach.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from kubepie.fileserver.errors import NoSuchMount, PathRefused, ReadOnlyMount

_FORBIDDEN_SEGMENTS = frozenset({".", ".."})


def check_segment(segment: str) -> str:
    """``segment`` if it is a safe single path component, else :class:`PathRefused`."""
    if "\x00" in segment:
        raise PathRefused("path contains a NUL byte")
    if "/" in segment:
        raise PathRefused("path contains an encoded separator")
    if segment in _FORBIDDEN_SEGMENTS:
        raise PathRefused(f"path contains a {segment!r} segment")
    return segment


def split_path(path: str) -> list[str]:
    """Split an already-decoded path on ``/`` into checked segments (empty ones dropped)."""
    if "\x00" in path:
        raise PathRefused("path contains a NUL byte")
    return [check_segment(part) for part in path.split("/") if part]


def split_url_path(raw: str) -> list[str]:
    """Split a raw (still percent-encoded) URL path and decode each segment on its own.

    ``a%2Fb`` is refused rather than read as two segments, so an encoded slash can never
    smuggle a ``..`` past a proxy or a path check.
    """
    segments: list[str] = []
    for part in raw.split("/"):
        if not part:
            continue
        try:
            decoded = unquote(part, errors="strict")
        except UnicodeDecodeError as exc:
            raise PathRefused("path is not valid UTF-8") from exc
        segments.append(check_segment(decoded))
    return segments


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True, slots=True)
class Mount:
    """A named storage area: ``root`` is an absolute directory; ``read_only`` refuses writes."""

    name: str
    root: Path
    read_only: bool = False
    _real_root: Path = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_segment(self.name)
        if not self.root.is_absolute():
            raise ValueError(f"mount {self.name!r}: root {self.root} is not absolute")
        object.__setattr__(self, "_real_root", Path(os.path.realpath(self.root)))

    def resolve(self, segments: Iterable[str]) -> Path:
        """The filesystem path for ``segments`` inside this mount, confined to its root.

        The returned path is not symlink-resolved (so that DELETE or MOVE of a symlink acts on
        the link itself), but every symlink along it has been checked to stay inside the root.
        """
        parts = [check_segment(s) for s in segments]
        candidate = self.root.joinpath(*parts)
        real = Path(os.path.realpath(candidate))
        if not _inside(real, self._real_root):
            raise PathRefused(f"path leaves mount {self.name!r}")
        return candidate

    def check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyMount(f"mount {self.name!r} is read-only")


class Mounts(Mapping[str, Mount]):
    """The mounts a server serves, by name, in configuration order."""

    def __init__(self, mounts: Iterable[Mount]) -> None:
        self._by_name: dict[str, Mount] = {}
        for mount in mounts:
            if mount.name in self._by_name:
                raise ValueError(f"mount {mount.name!r} is configured twice")
            self._by_name[mount.name] = mount

    def __getitem__(self, name: str) -> Mount:
        try:
            return self._by_name[name]
        except KeyError:
            raise NoSuchMount(f"no mount named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)
