"""Dropping root to one user's UID, GID and supplementary GIDs, for good.

The order is fixed: ``setgroups`` (needs root), ``setgid`` (needs root once the groups are
set), ``setuid`` last (after it nothing else may change). ``setresgid``/``setresuid`` set the
real, effective and saved ids together, so no saved id can bring root back. :func:`verify_dropped`
then checks what the kernel reports and that ``setuid(0)`` fails; a process that cannot prove
the drop refuses to go on (:class:`PrivilegeError`). Last, ``PR_SET_NO_NEW_PRIVS`` is set, so
not even a set-uid program could hand privileges back.

:func:`run_dropped` forks a child of an already-imported parent, drops in the child and runs a
callable there, without ``exec`` (the parent's interpreter may live in a directory the dropped
user cannot read).
"""

from __future__ import annotations

import ctypes
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from kubepie.fileserver.errors import FileServerError

_PR_SET_NO_NEW_PRIVS = 38


class PrivilegeError(FileServerError):
    """Dropping to the target identity failed or could not be verified."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """The POSIX ids a process runs with: ``gids`` are the supplementary groups."""

    uid: int
    gid: int
    gids: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.uid == 0 or self.gid == 0:
            raise PrivilegeError("refusing to run a user's file server as uid 0 or gid 0")
        if self.uid < 0 or self.gid < 0 or any(g < 0 for g in self.gids):
            raise PrivilegeError("ids must not be negative")
        object.__setattr__(self, "gids", tuple(sorted({self.gid, *self.gids})))


def current() -> Credentials | None:
    """The credentials of this process, or None while it is (effectively) root."""
    if os.geteuid() == 0 or os.getegid() == 0:
        return None
    return Credentials(os.getuid(), os.getgid(), tuple(os.getgroups()))


def drop_privileges(target: Credentials) -> None:
    """Become ``target`` irrevocably; call only from a root process, before opening user paths.

    Raises :class:`PrivilegeError` when this process is not root or the drop cannot be verified.
    """
    if os.geteuid() != 0:
        raise PrivilegeError("dropping privileges needs root (or CAP_SETUID and CAP_SETGID)")
    try:
        os.setgroups(list(target.gids))
        os.setresgid(target.gid, target.gid, target.gid)
        os.setresuid(target.uid, target.uid, target.uid)
    except OSError as exc:
        raise PrivilegeError(f"could not drop to uid {target.uid}: {exc.strerror}") from exc
    verify_dropped(target)
    no_new_privileges()


def no_new_privileges() -> None:
    """``PR_SET_NO_NEW_PRIVS``: no exec'd program (set-uid binaries included) gains privileges."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(err)}")


def verify_dropped(target: Credentials) -> None:
    """Check that this process runs exactly as ``target`` and cannot become root again."""
    if os.getresuid() != (target.uid, target.uid, target.uid):
        raise PrivilegeError(f"uids are {os.getresuid()}, expected {target.uid}")
    if os.getresgid() != (target.gid, target.gid, target.gid):
        raise PrivilegeError(f"gids are {os.getresgid()}, expected {target.gid}")
    if tuple(sorted(set(os.getgroups()))) != target.gids:
        raise PrivilegeError(f"groups are {os.getgroups()}, expected {list(target.gids)}")
    for regain in (os.setuid, os.seteuid, os.setgid):
        try:
            regain(0)
        except PermissionError:
            continue
        raise PrivilegeError("the process could regain root after dropping privileges")


def fork_child(body: Callable[[], int]) -> int:
    """Fork; the child runs ``body`` and ``os._exit``s with its result; return the child's pid.

    The child never returns into the caller's stack: an exception is printed to stderr and
    ends the child with status 70.
    """
    pid = os.fork()
    if pid:
        return pid
    status = 70
    try:
        status = body()
    except BaseException:
        traceback.print_exc(file=sys.stderr)
    finally:
        sys.stderr.flush()
        os._exit(status)


def run_dropped(target: Credentials, body: Callable[[], int]) -> int:
    """Fork; in the child drop to ``target``, then ``os._exit(body())``; return the child's pid.

    A failed drop ends the child with status 70 before ``body`` runs.
    """

    def dropped() -> int:
        drop_privileges(target)
        return body()

    return fork_child(dropped)
