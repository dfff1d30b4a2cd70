"""Remove the temporary files that crashed uploads left behind, once, when a server starts.

An upload writes a hidden ``.<name>.kubepie-upload-<token>`` file beside its target
(:mod:`kubepie.fileserver.uploads`) and removes it when it finishes or fails; only a process
that dies in between leaves one behind, and nothing else would ever remove it. At start the
server walks each writable mount once, in a background thread, and removes such files that are

* regular files (never a directory or a symlink),
* owned by the user the server runs as (another user's upload in a shared area is theirs), and
* older than :data:`STALE_AFTER` (an upload in flight writes to its file and keeps it recent).

The walk is descriptor-based (``os.fwalk`` beneath the mount's root descriptor, never following
symlinks), skips the hidden directories of the file server (other users' multipart staging)
and visits at most :data:`MAX_DIRECTORIES` directories per mount, so a huge tree costs a
bounded amount of work. It logs one line per mount when done.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Iterable

from kubepie.fileserver.mounts import Mount
from kubepie.fileserver.uploads import is_upload_name

logger = logging.getLogger(__name__)

#: Seconds since its last write after which a temporary upload file counts as abandoned.
STALE_AFTER = 24 * 3600.0
#: At most this many directories are visited per mount.
MAX_DIRECTORIES = 200_000
_INTERNAL = ".kubepie-"


def sweep_mount(mount: Mount, *, older_than: float, max_directories: int = MAX_DIRECTORIES) -> int:
    """Remove this user's abandoned upload files in ``mount``; answers how many."""
    removed = 0
    uid = os.geteuid()
    visited = 0
    walk = os.fwalk(".", dir_fd=mount.root_fd(), follow_symlinks=False)
    for _, dirnames, filenames, directory in walk:
        visited += 1
        if visited > max_directories:
            logger.info(
                "stale uploads: mount %s: stopped after %d directories", mount.name, max_directories
            )
            break
        # Other users' staging directories are closed to us anyway; our own is walked.
        dirnames[:] = [d for d in dirnames if not d.startswith(_INTERNAL) or _own_staging(d, uid)]
        for name in filenames:
            if not is_upload_name(name):
                continue
            try:
                st = os.stat(name, dir_fd=directory, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_uid == uid and st.st_mtime < older_than:
                    os.unlink(name, dir_fd=directory)
                    removed += 1
            except OSError:
                continue
    return removed


def _own_staging(name: str, uid: int) -> bool:
    return name.endswith(f"-{uid}")


def sweep(mounts: Iterable[Mount], *, max_age: float = STALE_AFTER) -> None:
    """Sweep every writable mount (blocking); logs what was removed."""
    older_than = time.time() - max_age
    for mount in mounts:
        if mount.read_only:
            continue
        try:
            removed = sweep_mount(mount, older_than=older_than)
        except OSError as exc:
            logger.warning("stale uploads: mount %s: %s", mount.name, exc.strerror or exc)
            continue
        logger.info("stale uploads: mount %s: removed %d", mount.name, removed)


def start_sweep(mounts: Iterable[Mount], *, max_age: float = STALE_AFTER) -> threading.Thread:
    """Run :func:`sweep` in a daemon thread (the server answers meanwhile)."""
    thread = threading.Thread(
        target=sweep,
        args=(list(mounts),),
        kwargs={"max_age": max_age},
        daemon=True,
        name="upload-sweep",
    )
    thread.start()
    return thread
