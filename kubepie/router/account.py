"""Privilege separation: the router started as root runs as its own account (``router_user``).

Only the fork helper of the local backend needs root (it starts each user's server as that
user). As sshd does with its unprivileged child, ``kubepie serve`` started as root does what
needs root first (start the helper, bind both listeners, so ports below 1024 work; open the
credential databases and the accounting file) and then, before the first request, drops the
router process to :class:`RouterAccount` for good: ``setgroups`` to the account's own group,
``setresgid``/``setresuid``, proven by failing to regain root, with ``PR_SET_NO_NEW_PRIVS``
(set once at start, before any thread exists, so every thread has it). Its capabilities are
gone with uid 0. The helper stays root and checks every request it gets (see
:mod:`kubepie.backends.zygote`).

What the router keeps using afterwards is handed to the account first (:func:`hand_over`):
``state_dir`` and the files directly in it (SQLite creates its journal beside a database),
and the run directory where the users' sockets are. Files opened before the drop (the
accounting file, the static directory) are used through their open descriptors.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from kubepie.fileserver.privileges import (
    Credentials,
    PrivilegeError,
    drop_privileges,
    no_new_privileges,
)
from kubepie.router.errors import PrivilegeDropFailed


@dataclass(frozen=True, slots=True)
class RouterAccount:
    """The unprivileged account the router runs as once it has dropped root."""

    name: str
    uid: int
    gid: int

    @property
    def ids(self) -> tuple[int, int]:
        return self.uid, self.gid


def lookup(name: str) -> RouterAccount:
    """The account ``name`` (a name or a number), or :class:`PrivilegeDropFailed` saying how
    to create it."""
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise PrivilegeDropFailed(
            f"router_user: there is no account {name!r}; create it (useradd --system "
            f"--no-create-home --shell /usr/sbin/nologin {name}) or name another "
            "unprivileged account"
        ) from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise PrivilegeDropFailed(
            f"router_user: {name!r} has uid or gid 0; the router must not keep root"
        )
    return RouterAccount(entry.pw_name, entry.pw_uid, entry.pw_gid)


def forbid_new_privileges() -> None:
    """``PR_SET_NO_NEW_PRIVS`` for this thread and every thread and child started after it."""
    try:
        no_new_privileges()
    except PrivilegeError as exc:
        raise PrivilegeDropFailed(str(exc)) from exc


def hand_over(state_dir: Path, run_dir: Path, account: RouterAccount) -> None:
    """Give ``state_dir``, the regular files directly in it and ``run_dir`` to ``account``
    (symbolic links are never followed)."""
    try:
        for path in (state_dir, run_dir):
            os.chown(path, *account.ids, follow_symlinks=False)
        with os.scandir(state_dir) as entries:
            for entry in entries:
                if stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                    os.chown(entry.path, *account.ids, follow_symlinks=False)
    except OSError as exc:
        raise PrivilegeDropFailed(
            f"cannot give {exc.filename or state_dir} to {account.name}: {exc.strerror}"
        ) from exc


def drop_to(account: RouterAccount) -> None:
    """Become ``account`` irrevocably (root only); :class:`PrivilegeDropFailed` otherwise."""
    try:
        drop_privileges(Credentials(account.uid, account.gid, ()))
    except PrivilegeError as exc:
        raise PrivilegeDropFailed(f"cannot drop to {account.name}: {exc}") from exc
