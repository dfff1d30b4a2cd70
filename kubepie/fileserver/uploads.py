"""Atomic replacement of a file by an upload, for every protocol: temp file, then rename.

Every upload path (WebDAV through wsgidav, :mod:`kubepie.fileserver.dav_provider`; the plain
WebDAV fast path, :mod:`kubepie.fileserver.dav_put`; S3 PutObject, UploadPart, CopyObject and
CompleteMultipartUpload in :mod:`kubepie.s3`) writes through :class:`Upload` and finishes with
:meth:`Upload.commit`: readers see the old version until the new one is complete, and a failed
or cut upload only ever leaves (then removes) a hidden temporary file next to the target.
That file is created ``0600`` (nobody else may read an upload in flight) and gets its final
mode just before the rename; everything is done relative to the directory's descriptor, which
the caller resolved beneath its mount (:meth:`kubepie.fileserver.mounts.Mount.open_parent`).
An *exclusive* upload (create-only callers) renames with ``RENAME_NOREPLACE``.

Replacing by rename needs write permission on the *directory*; the kernel would also let a
user rename over a file they may not write (when the directory is not sticky). To keep the
meaning of an upload ("write this file"), :func:`check_replaceable` refuses an existing file
that the user cannot write, exactly as an in-place ``open(O_TRUNC)`` would.

A streamed body goes through :class:`BlockWriter`: received pieces are gathered (not copied)
into blocks, and each block is hashed and written in worker threads while the event loop
receives the next (``hashlib``, ``zlib`` and ``os.writev`` release the GIL on large buffers, so
network, hashing and disk overlap on separate cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import stat
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from kubepie.fileserver.beneath import rename_noreplace

#: Marks the temporary file of an upload in progress; such names are hidden from listings.
UPLOAD_MARK = ".kubepie-upload-"
#: The dead-property xattrs (:mod:`kubepie.fileserver.dav_props`) a replaced file passes on.
_DEAD_PREFIX = "user.kubepie.dav."

Buffer = bytes | bytearray | memoryview
_IOV_MAX = 1024


def new_upload_name(name: str) -> str:
    """A fresh temporary name for an upload of ``name`` (hidden in listings)."""
    return f".{name}{UPLOAD_MARK}{secrets.token_hex(6)}"


def is_upload_name(name: str) -> bool:
    return name.startswith(".") and UPLOAD_MARK in name


def _current_umask() -> int:
    """This process's umask, read without changing it (``/proc``; 022 where unreadable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def check_replaceable(directory: int, name: str) -> None:
    """Raise ``PermissionError`` when ``name`` exists in ``directory`` and this process may
    not write it (a symlink is judged by what it is, the link: it is the name replaced)."""
    try:
        st = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISLNK(st.st_mode) and not os.access(name, os.W_OK, dir_fd=directory):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)


def refuse_existing(directory: int, name: str) -> None:
    """Raise ``PermissionError`` when ``name`` exists in ``directory`` (create-only uploads).

    Only an early answer: :meth:`Upload.commit` of an exclusive upload re-checks atomically.
    """
    try:
        os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return
    raise PermissionError(errno.EACCES, "create only: the name exists already", name)


class Upload:
    """The temporary file of one upload, counting the bytes written to it (blocking calls).

    The upload goes to ``name`` in the directory ``directory`` (a descriptor, resolved
    beneath its mount by the caller; this object keeps its own duplicate). The temporary file
    is created ``0600`` (``O_EXCL | O_NOFOLLOW``) beside the target, so nobody else can read
    a file in flight; :meth:`commit` gives it its final mode before the rename. ``name`` may
    be changed before :meth:`commit` (an S3 part learns its final name from its MD5 only once
    it is complete). With ``fsync`` the data reaches the disk before the rename. An
    ``exclusive`` upload never replaces an existing name (``RENAME_NOREPLACE``): two racing
    creates give exactly one winner, the other gets ``PermissionError``.
    """

    def __init__(
        self, directory: int, name: str, *, fsync: bool = False, exclusive: bool = False
    ) -> None:
        if exclusive:
            refuse_existing(directory, name)
        else:
            check_replaceable(directory, name)
        self.dir_fd = os.dup(directory)
        self.name = name
        self.temp = new_upload_name(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self.fd = os.open(self.temp, flags, 0o600, dir_fd=self.dir_fd)
        except BaseException:
            os.close(self.dir_fd)
            raise
        self.written = 0
        self._fsync = fsync
        self.exclusive = exclusive
        #: A hidden extra link to the replaced version, dropped by :meth:`release_old`.
        self.retired: str | None = None

    def write(self, data: Buffer) -> int:
        view = memoryview(data)
        while view:
            count = os.write(self.fd, view)
            view = view[count:]
            self.written += count
        return len(data)

    def write_all(self, buffers: Sequence[Buffer]) -> None:
        """Write ``buffers`` in order with as few ``writev`` calls as the kernel allows."""
        views = [memoryview(b) for b in buffers if len(b)]
        while views:
            count = os.writev(self.fd, views[:_IOV_MAX])
            self.written += count
            while views and count >= len(views[0]):
                count -= len(views[0])
                views.pop(0)
            if count:
                views[0] = views[0][count:]

    def stat(self) -> os.stat_result:
        return os.fstat(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _close_dir(self) -> None:
        if self.dir_fd >= 0 and self.retired is None:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def discard(self) -> None:
        """Close and remove the temporary file (the target is untouched)."""
        with contextlib.suppress(OSError):
            self.close()
        self.fd = -1
        if self.dir_fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp, dir_fd=self.dir_fd)
            self._close_dir()

    def commit(self, prepare: Callable[[int], None] | None = None) -> os.stat_result:
        """Rename the complete upload over the target and answer the new file's stat.

        The new file gets ``0666 & ~umask``, or a replaced regular file's mode; the replaced
        file's group and dead properties carry over too. ``prepare`` then gets the open
        descriptor (to attach more xattrs) before the rename. On failure the temporary file
        is removed and the target is untouched.
        """
        try:
            if self.fd < 0:  # closed by its writer (wsgidav closes before end_write)
                flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
                self.fd = os.open(self.temp, flags, dir_fd=self.dir_fd)
            old: os.stat_result | None = None
            if not self.exclusive:
                check_replaceable(self.dir_fd, self.name)
                with contextlib.suppress(FileNotFoundError):
                    old = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
            if old is not None and stat.S_ISREG(old.st_mode):
                os.fchmod(self.fd, stat.S_IMODE(old.st_mode))
                with contextlib.suppress(OSError):
                    os.fchown(self.fd, -1, old.st_gid)
                self._copy_dead_properties()
            else:
                os.fchmod(self.fd, 0o666 & ~_umask())
            if prepare is not None:
                prepare(self.fd)
            if self._fsync:
                os.fsync(self.fd)
            st = os.fstat(self.fd)
            self.close()
            if self.exclusive:
                try:
                    rename_noreplace(self.dir_fd, self.temp, self.dir_fd, self.name)
                except FileExistsError as exc:
                    raise PermissionError(
                        errno.EACCES, "create only: the name exists already", self.name
                    ) from exc
            else:
                if old is not None and stat.S_ISREG(old.st_mode):
                    self.retired = self._keep_old_alive()
                os.rename(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            self._close_dir()
            return st
        except BaseException:
            self.discard()
            self.release_old()
            raise

    def _copy_dead_properties(self) -> None:
        """Best effort: the replaced file's dead properties onto the new one."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            old = os.open(self.name, flags, dir_fd=self.dir_fd)
        except OSError:
            return
        try:
            for attr in os.listxattr(old):
                if attr.startswith(_DEAD_PREFIX):
                    with contextlib.suppress(OSError):
                        os.setxattr(self.fd, attr, os.getxattr(old, attr))
        except OSError:
            return
        finally:
            os.close(old)

    def _keep_old_alive(self) -> str | None:
        """Link the old version under a hidden name, so that the rename does not free its
        blocks (a third of a second for 1 GiB on ext4) while the client waits for the answer.
        None when the link is not allowed (e.g. ``fs.protected_hardlinks``): then the rename
        frees the old version itself."""
        retired = new_upload_name(self.name)
        try:
            os.link(
                self.name,
                retired,
                src_dir_fd=self.dir_fd,
                dst_dir_fd=self.dir_fd,
                follow_symlinks=False,
            )
        except OSError:
            return None
        return retired

    def release_old(self) -> None:
        """Drop the replaced version (call after answering; slow for large files)."""
        retired, self.retired = self.retired, None
        if retired is not None and self.dir_fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(retired, dir_fd=self.dir_fd)
        self._close_dir()


_UMASK: list[int] = []


def _umask() -> int:
    if not _UMASK:
        _UMASK.append(_current_umask())
    return _UMASK[0]


class Hasher(Protocol):
    """What :class:`BlockWriter` feeds every byte to (``hashlib`` objects, CRCs, digest sets)."""

    def update(self, data: Buffer, /) -> None: ...


#: Writes one block, in order (blocking; runs in a worker thread). The buffers are the received
#: ones, not copies: :meth:`Upload.write_all` writes a block with one ``writev``.
Sink = Callable[[Sequence[Buffer]], None]


class BlockWriter:
    """Feeds a streamed body, in order, to ``hashers`` and ``sink`` off the event loop.

    Pieces given to :meth:`feed` are gathered into blocks of about ``block_size`` bytes. Each
    block is hashed on one worker thread and written on another while the caller receives the
    next, so a write held up by the kernel's dirty-page throttling does not hold up hashing
    (and the other way round). At most ``depth`` blocks are in flight: memory stays at about
    ``depth * block_size`` whatever the size of the body. Use as an async context manager:
    leaving it, even by an exception, waits for the work in flight, so the caller may then
    close and remove the file.
    """

    def __init__(
        self, sink: Sink, hashers: Sequence[Hasher] = (), *, block_size: int, depth: int = 2
    ) -> None:
        self._sink = sink
        self._hashers = tuple(hashers)
        self._block_size = block_size
        self._depth = max(1, depth)
        self._batch: list[Buffer] = []
        self._batched = 0
        self.total = 0
        self._pending: deque[tuple[asyncio.Future[None], ...]] = deque()
        self._workers: list[ThreadPoolExecutor] = []

    async def __aenter__(self) -> BlockWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Never leave a write running on a file the caller is about to close and remove.
        while self._pending:
            for future in self._pending.popleft():
                with contextlib.suppress(Exception):
                    await future
        for worker in self._workers:
            worker.shutdown(wait=False)
        self._workers.clear()

    async def feed(self, piece: Buffer) -> None:
        """Take the next piece of the body (kept, not copied: do not reuse its buffer)."""
        if not piece:
            return
        self._batch.append(piece)
        self._batched += len(piece)
        if self._batched >= self._block_size:
            while len(self._pending) >= self._depth or (
                self._pending and all(f.done() for f in self._pending[0])
            ):
                await self._settle()
            self._submit()

    async def finish(self) -> int:
        """Hash and write what is left; wait for all of it; answer the body's size."""
        if self._batch and not self._workers:
            # The whole body fits in one block: one trip to a worker thread, no threads made.
            batch = self._take()
            await asyncio.to_thread(self._hash_and_write, batch)
        elif self._batch:
            self._submit()
        while self._pending:
            await self._settle()
        return self.total

    def _take(self) -> list[Buffer]:
        batch, self._batch = self._batch, []
        self.total += self._batched
        self._batched = 0
        return batch

    def _hash(self, batch: Sequence[Buffer]) -> None:
        # One update per block rather than per received piece (about 64 KiB each): every
        # update gives the GIL up and must win it back from the busy event loop, which costs
        # more than joining the block (measured: S3 PutObject +10 %).
        data = batch[0] if len(batch) == 1 else b"".join(batch)
        for hasher in self._hashers:
            hasher.update(data)

    def _hash_and_write(self, batch: Sequence[Buffer]) -> None:
        self._hash(batch)
        self._sink(batch)

    def _submit(self) -> None:
        if not self._workers:
            stages = 2 if self._hashers else 1
            self._workers = [
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload")
                for _ in range(stages)
            ]
        batch = self._take()
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(self._workers[-1], self._sink, batch)]
        if self._hashers:
            futures.insert(0, loop.run_in_executor(self._workers[0], self._hash, batch))
        self._pending.append(tuple(futures))

    async def _settle(self) -> None:
        futures = self._pending.popleft()
        try:
            for future in futures[:-1]:
                await future
        finally:
            await futures[-1]
