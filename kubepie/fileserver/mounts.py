"""Storage mounts and path confinement.

A :class:`Mount` is a named directory tree, possibly read-only. Every path inside it is
resolved *beneath* a descriptor of its root, atomically (:mod:`kubepie.fileserver.beneath`:
``openat2`` with ``RESOLVE_BENEATH``, or a component walk with ``O_NOFOLLOW``): ``.``/``..``
segments and NUL bytes are refused up front (:class:`PathRefused`), and a symlink anywhere
along the path is followed only while it stays inside the root, even if it is swapped in
while the request runs. The answers are descriptors (:meth:`Mount.open`,
:meth:`Mount.open_parent`), and all later work on them uses ``*at`` calls, never the path
again. :func:`split_url_path` does the URL-level part: percent-decoding segment by segment and
refusing an encoded separator (``%2F``). A backslash is an ordinary byte of a POSIX file name,
not a separator: it is accepted, so that a directory holding such a name can still be listed
and the file reached.

The root is opened on first use, as the user the server runs as (after privileges are
dropped), and kept open for the life of the process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from kubepie.fileserver.beneath import open_beneath
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
    _root_fd: list[int] = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_segment(self.name)
        if not self.root.is_absolute():
            raise ValueError(f"mount {self.name!r}: root {self.root} is not absolute")
        object.__setattr__(self, "_real_root", Path(os.path.realpath(self.root)))
        object.__setattr__(self, "_root_fd", [])
        object.__setattr__(self, "_lock", threading.Lock())

    def root_fd(self) -> int:
        """An ``O_PATH`` descriptor of the root directory, opened once and kept."""
        if self._root_fd:
            return self._root_fd[0]
        with self._lock:
            if not self._root_fd:
                fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                self._root_fd.append(fd)
            return self._root_fd[0]

    def open(self, segments: Sequence[str], flags: int, mode: int = 0o600) -> int:
        """A descriptor of ``segments`` opened with ``flags``, resolved beneath the root.

        A final symlink is followed (while it stays inside) unless ``flags`` has
        ``O_NOFOLLOW``. The caller closes the descriptor.
        """
        parts = [check_segment(s) for s in segments]
        return open_beneath(self.root_fd(), str(self._real_root), parts, flags, mode)

    def open_dir(self, segments: Sequence[str]) -> int:
        """An ``O_PATH`` descriptor of the directory ``segments`` (``NotADirectoryError``)."""
        return self.open(segments, os.O_PATH | os.O_DIRECTORY)

    def open_parent(self, segments: Sequence[str]) -> tuple[int, str]:
        """``(descriptor of the parent directory, final name)`` for ``segments``.

        The parent is resolved beneath the root; the final name is *not* resolved, so the
        caller acts on it with ``*at`` calls (a symlink there is the link itself).
        """
        if not segments:
            raise PathRefused(f"the root of mount {self.name!r} has no parent")
        name = check_segment(segments[-1])
        return self.open_dir(segments[:-1]), name

    def stat(self, segments: Sequence[str]) -> os.stat_result:
        """``stat`` of ``segments`` (a final symlink followed while it stays inside)."""
        fd = self.open(segments, os.O_PATH)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def resolve(self, segments: Iterable[str]) -> Path:
        """The filesystem path for ``segments``, checked to stay inside the root *now*.

        Only for naming things (e.g. in logs): the check is by path, so a symlink swapped in
        afterwards is not caught. To act on a file, use :meth:`open` or :meth:`open_parent`.
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
