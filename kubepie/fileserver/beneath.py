"""Open a path *beneath* a directory descriptor, atomically, and rename without replacing.

Checking a path and then opening it by name is a race: between the two, a directory along the
path can be swapped for a symlink leading out of the mount (``/etc``). Here the kernel resolves
the whole path relative to the root descriptor in one step and refuses to leave it:
``openat2(2)`` with ``RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`` (Linux 5.6). Symlinks that stay
beneath the root are followed; ``..`` may not climb above it; bind mounts below the root are
crossed (no ``RESOLVE_NO_XDEV``).

Where ``openat2`` is missing (``ENOSYS``), and for absolute symlinks (which ``RESOLVE_BENEATH``
always refuses, even when they point back inside), :func:`open_beneath` walks the path one
component at a time instead: every directory is opened with ``O_NOFOLLOW`` relative to the
previous descriptor, a symlink is read with ``readlinkat`` and its target walked the same way
(an absolute target only when it lies under the root's real path), and ``..`` pops a descriptor
and never goes above the root. Either way the answer is a descriptor of exactly what was
checked; every later operation uses it (``*at`` calls), never the path again.

:func:`rename_noreplace` is ``renameat2(RENAME_NOREPLACE)``: the rename fails with ``EEXIST``
instead of replacing a name, with no window between a check and the rename. Where the kernel
or filesystem lacks it, a regular file falls back to ``link`` (which never replaces) and
``unlink`` of the old name.

Only this module calls into libc with ``ctypes``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
from collections.abc import Sequence

from kubepie.fileserver.errors import PathRefused

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RENAME_NOREPLACE = 0x1

#: ``openat2`` has the same number on every architecture that has the unified syscall table.
_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437, "ppc64le": 437, "s390x": 437}
_MAX_LINKS = 40
_PATH_FLAGS = os.O_PATH | os.O_CLOEXEC
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_renameat2 = getattr(_libc, "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)
    _renameat2.argtypes += (ctypes.c_uint,)
    _renameat2.restype = ctypes.c_int

_NUMBER = _OPENAT2.get(platform.machine(), -1)
#: Whether to try ``openat2`` at all (cleared once the kernel says ``ENOSYS``).
_state = {"openat2": _NUMBER > 0}


def _openat2(dir_fd: int, path: str, flags: int, mode: int) -> int:
    # The kernel wants a mode only when one is used (O_TMPFILE includes O_DIRECTORY's bit).
    creating = flags & os.O_CREAT or flags & os.O_TMPFILE == os.O_TMPFILE
    how = _OpenHow(flags, mode if creating else 0)
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
    encoded = os.fsencode(path)
    fd = _syscall(
        ctypes.c_long(_NUMBER),
        ctypes.c_int(dir_fd),
        ctypes.c_char_p(encoded),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def open_beneath(
    root_fd: int,
    root_real: str,
    segments: Sequence[str],
    flags: int,
    mode: int = 0o600,
) -> int:
    """A descriptor of ``segments`` (checked names) resolved beneath ``root_fd``.

    ``flags`` are ``open(2)`` flags (``O_CLOEXEC`` is added); with ``O_NOFOLLOW`` a final
    symlink is not followed (``ELOOP``), as with ``open``. ``root_real`` is the root's
    symlink-free path, used only to accept absolute symlinks that point back inside.
    Raises :class:`PathRefused` when the path would leave the root, else ``OSError``.
    """
    flags |= os.O_CLOEXEC
    if _state["openat2"]:
        path = "/".join(segments) or "."
        for _ in range(3):
            try:
                return _openat2(root_fd, path, flags, mode)
            except OSError as exc:
                if exc.errno == errno.ENOSYS:
                    _state["openat2"] = False
                    break
                if exc.errno == errno.EAGAIN:  # a rename raced with ".." resolution
                    continue
                if exc.errno not in (errno.EXDEV, errno.ELOOP):
                    raise
                if exc.errno == errno.ELOOP and flags & os.O_NOFOLLOW:
                    raise
                break  # an absolute or outward symlink: the walk decides
    return _walk(root_fd, root_real, list(segments), flags, mode)


def _walk(root_fd: int, root_real: str, todo: list[str], flags: int, mode: int) -> int:
    """The component-by-component resolution (see the module documentation)."""
    stack: list[int] = []  # descriptors of the directories below the root, innermost last
    links = 0
    todo.reverse()  # pop() takes the next component

    def current() -> int:
        return stack[-1] if stack else root_fd

    try:
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if not stack:
                    raise PathRefused("path leaves its mount")
                os.close(stack.pop())
                continue
            last = not todo
            if last and flags & os.O_NOFOLLOW:
                return os.open(name, flags, mode, dir_fd=current())
            try:
                probe = os.open(name, _PATH_FLAGS | os.O_NOFOLLOW, dir_fd=current())
            except FileNotFoundError:
                if last and flags & os.O_CREAT:
                    return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=current())
                raise
            st = os.fstat(probe)
            if stat.S_ISLNK(st.st_mode):
                os.close(probe)
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name)
                target = os.readlink(name, dir_fd=current())
                if target.startswith("/"):
                    if target != root_real and not target.startswith(root_real.rstrip("/") + "/"):
                        raise PathRefused("a symlink leads out of its mount")
                    target = target[len(root_real) :]
                    while stack:
                        os.close(stack.pop())
                todo.extend(reversed(target.split("/")))
                continue
            if last:
                os.close(probe)
                # O_NOFOLLOW: if the name became a symlink since the probe, refuse (ELOOP).
                return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=current())
            if not stat.S_ISDIR(st.st_mode):
                os.close(probe)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), name)
            stack.append(probe)
        # Nothing left: the path named the root or a directory reached by "..".
        return os.open(".", flags, mode, dir_fd=current())
    finally:
        for fd in stack:
            os.close(fd)


def rename_noreplace(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (``FileExistsError``), atomically."""
    if _renameat2 is not None:
        result = _renameat2(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), RENAME_NOREPLACE)
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), dst)
    # No RENAME_NOREPLACE here: link() never replaces a name; then drop the old one.
    os.link(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
    os.unlink(src, dir_fd=src_dir)


def fd_path(fd: int) -> str:
    """A path naming the open file ``fd`` itself (for calls that take no descriptor)."""
    return f"/proc/self/fd/{fd}"


def use_openat2(enabled: bool) -> None:
    """Turn ``openat2`` off (or back on, where the machine has it): tests of the walk."""
    _state["openat2"] = enabled and _NUMBER > 0
