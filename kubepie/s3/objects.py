"""Objects as files: key → path, object metadata in xattrs, atomic writes (blocking I/O).

Keys map to paths inside the bucket's mount: ``a/b/c`` → ``<root>/a/b/c``; directories are
implied prefixes, and a key ending in ``/`` (a folder marker, as rclone and web consoles make)
is a directory. A key is checked segment by segment (no ``..``, NUL bytes or empty segments)
and then opened *beneath* its mount root in one step (:meth:`Mount.open` /
:meth:`Mount.open_parent`), so symlinks leading out of the mount root are refused
(``AccessDenied``) whatever the kernel would allow, even when swapped in during the request;
all later work uses the descriptors. Only regular files are objects: a FIFO, socket or device
is opened with ``O_NONBLOCK`` (it cannot hold a worker thread) and answered ``NoSuchKey``.
Names starting with ``.kubepie-s3`` (the multipart staging directory) and the names of uploads
in flight (:func:`~kubepie.fileserver.uploads.is_upload_name`) are reserved: such keys
are refused and listings never show them.

ETag strategy: an MD5 of a large file is too expensive to compute on every HEAD or listing, so
objects written through this API get their MD5 (or multipart ``md5-of-md5s-N``) computed while
the bytes stream in, stored in the ``user.kubepie.s3`` xattr together with the size and mtime
(ns) it belongs to, and the content type and checksum. When that record is missing or stale
(the file was written by WebDAV, a notebook, ``cp``...), the ETag is derived from inode, size
and mtime and ends in ``-1``, which clients (rclone, boto3) read as "not an MD5" rather than a
wrong MD5. User metadata ``x-amz-meta-NAME`` lives in ``user.s3.meta.NAME`` xattrs. On a
filesystem without user xattrs everything still works, with derived ETags and no metadata.

Writes go through the file server's :class:`~kubepie.fileserver.uploads.Upload`, as WebDAV's
do: a temporary file (``O_EXCL``, mode ``0600`` until it is complete) in the target directory,
renamed into place only when the whole body arrived and every digest matched, so a reader sees
the old object or the new one, never a part, and a dropped upload leaves no trace. Create-only
requests (the router's header) refuse an existing key and rename with ``RENAME_NOREPLACE``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from kubepie.fileserver.beneath import fd_path
from kubepie.fileserver.errors import FileServerError
from kubepie.fileserver.mounts import Mount, check_segment
from kubepie.fileserver.uploads import Upload, is_upload_name
from kubepie.s3 import errors
from kubepie.s3.checksums import Hasher
from kubepie.s3.models import ObjectInfo

RESERVED_PREFIX = ".kubepie-s3"
RECORD_XATTR = "user.kubepie.s3"
META_XATTR_PREFIX = "user.s3.meta."
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
DIRECTORY_CONTENT_TYPE = "application/x-directory"
EMPTY_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'
MAX_KEY_BYTES = 1024
_READ = os.O_RDONLY | os.O_NONBLOCK


@dataclass(frozen=True, slots=True)
class ObjectPath:
    """A checked key of a mount: its path ``segments``; ``is_marker`` for keys ending in ``/``.
    Nothing is resolved on disk until an operation opens it."""

    mount: Mount
    key: str
    segments: tuple[str, ...]
    is_marker: bool

    @property
    def parent(self) -> tuple[str, ...]:
        return self.segments[:-1]

    @property
    def name(self) -> str:
        return self.segments[-1]


@contextlib.contextmanager
def closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def key_segments(key: str) -> tuple[list[str], bool]:
    """The path segments of ``key`` and whether it is a folder marker; refuses unsafe keys."""
    if not key:
        raise errors.InvalidArgument("the key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise errors.InvalidArgument("the key is longer than 1024 bytes")
    marker = key.endswith("/")
    parts = (key[:-1] if marker else key).split("/")
    for part in parts:
        if not part:
            raise errors.InvalidArgument("the key has an empty path segment")
        try:
            check_segment(part)
        except FileServerError as exc:
            raise errors.AccessDenied(str(exc), resource=key) from exc
        if part.startswith(RESERVED_PREFIX) or is_upload_name(part):
            raise errors.AccessDenied("the key uses a reserved name", resource=key)
    return parts, marker


def resolve(mount: Mount, key: str) -> ObjectPath:
    parts, marker = key_segments(key)
    return ObjectPath(mount, key, tuple(parts), marker)


def open_in(mount: Mount, segments: Sequence[str], flags: int, key: str) -> int:
    """:meth:`Mount.open` with our errors (``AccessDenied`` for paths leaving the mount)."""
    try:
        return mount.open(segments, flags)
    except FileServerError as exc:
        raise errors.from_fileserver(exc, key) from exc
    except OSError as exc:
        raise errors.from_oserror(exc, key) from exc


def derived_etag(st: os.stat_result) -> str:
    token = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()
    return f'"{hashlib.md5(token, usedforsecurity=False).hexdigest()}-1"'


def _read_xattr(target: int | str, name: str) -> bytes | None:
    try:
        return os.getxattr(target, name)
    except OSError:
        return None


def read_record(target: int | str, st: os.stat_result) -> dict[str, object]:
    """The ``user.kubepie.s3`` record if it still describes this file's content, else ``{}``."""
    raw = _read_xattr(target, RECORD_XATTR)
    if raw is None:
        return {}
    try:
        record = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(record, dict):
        return {}
    if record.get("size") != st.st_size or record.get("mtime_ns") != st.st_mtime_ns:
        return {}
    return record


def read_metadata(target: int | str) -> dict[str, str]:
    try:
        names = os.listxattr(target)
    except OSError:
        return {}
    meta: dict[str, str] = {}
    for name in names:
        if name.startswith(META_XATTR_PREFIX):
            value = _read_xattr(target, name)
            if value is not None:
                meta[name[len(META_XATTR_PREFIX) :]] = value.decode("utf-8", "replace")
    return meta


def info_from_stat(
    key: str, target: int | str, st: os.stat_result, *, metadata: bool = False
) -> ObjectInfo:
    """The description of a file or directory; ``target`` (a descriptor, or a ``/proc`` path of
    one) is where its xattrs are read."""
    if stat.S_ISDIR(st.st_mode):
        return ObjectInfo(key, 0, st.st_mtime, EMPTY_ETAG, DIRECTORY_CONTENT_TYPE)
    record = read_record(target, st)
    etag = record.get("etag")
    content_type = record.get("content_type")
    checksums = record.get("checksums")
    return ObjectInfo(
        key=key,
        size=st.st_size,
        mtime=st.st_mtime,
        etag=etag if isinstance(etag, str) else derived_etag(st),
        content_type=content_type if isinstance(content_type, str) else DEFAULT_CONTENT_TYPE,
        metadata=read_metadata(target) if metadata else {},
        checksums=checksums if isinstance(checksums, dict) else {},
    )


def stat_object(obj: ObjectPath) -> tuple[os.stat_result, ObjectInfo]:
    """Stat and describe an existing object; ``NoSuchKey`` for what is not one."""
    with closing(open_in(obj.mount, obj.segments, os.O_PATH, obj.key)) as fd:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode) != obj.is_marker or not (
            stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)
        ):
            raise errors.NoSuchKey("The specified key does not exist.", resource=obj.key)
        return st, info_from_stat(obj.key, fd_path(fd), st, metadata=True)


def open_object(obj: ObjectPath) -> tuple[int, ObjectInfo]:
    """An open read-only descriptor of a regular file and its description.

    ``O_NONBLOCK``: opening a FIFO must not wait for a writer (it is then refused as not a
    regular file, checked on the open descriptor).
    """
    if obj.is_marker:
        raise errors.NoSuchKey("a folder marker has no content", resource=obj.key)
    fd = open_in(obj.mount, obj.segments, _READ, obj.key)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise errors.NoSuchKey("The specified key does not exist.", resource=obj.key)
        return fd, info_from_stat(obj.key, fd, st, metadata=True)
    except BaseException:
        os.close(fd)
        raise


def read_small(obj: ObjectPath, limit: int) -> tuple[int, ObjectInfo, bytes | None]:
    """:func:`open_object`, and for a file of at most ``limit`` bytes its content too.

    Small objects are then served with one trip to a worker thread instead of two; their
    descriptor is closed here and answered as ``-1``.
    """
    fd, info = open_object(obj)
    if info.size > limit:
        return fd, info, None
    try:
        data = os.pread(fd, info.size, 0)
    except OSError as exc:
        raise errors.from_oserror(exc, obj.key) from exc
    finally:
        os.close(fd)
    if len(data) != info.size:
        raise errors.S3Error("the object changed while it was read", resource=obj.key)
    return -1, info, data


def open_directory(obj: ObjectPath, segments: Sequence[str]) -> int:
    """A descriptor of the directory ``segments``, created (with the directories above it)
    as the key implies; a file in the way is ``InvalidArgument``."""
    try:
        try:
            return obj.mount.open_dir(segments)
        except FileNotFoundError:
            pass
        for depth in range(len(segments)):
            with (
                closing(obj.mount.open_dir(segments[:depth])) as parent,
                contextlib.suppress(FileExistsError),
            ):
                os.mkdir(segments[depth], 0o777, dir_fd=parent)
        return obj.mount.open_dir(segments)
    except NotADirectoryError as exc:
        raise errors.InvalidArgument(
            "a prefix of this key is an object, so the key cannot be a path", resource=obj.key
        ) from exc
    except FileServerError as exc:
        raise errors.from_fileserver(exc, obj.key) from exc
    except OSError as exc:
        raise errors.from_oserror(exc, obj.key) from exc


def make_parents(obj: ObjectPath, segments: Sequence[str]) -> None:
    """Create the directories a key implies (:func:`open_directory`, descriptor closed)."""
    os.close(open_directory(obj, segments))


def xattrs_for(
    *,
    etag: str,
    st: os.stat_result,
    content_type: str,
    checksums: Mapping[str, str],
    metadata: Mapping[str, str],
) -> dict[str, bytes]:
    record = {
        "etag": etag,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "content_type": content_type,
        "checksums": dict(checksums),
    }
    values = {RECORD_XATTR: json.dumps(record, separators=(",", ":")).encode()}
    for name, value in metadata.items():
        values[META_XATTR_PREFIX + name.lower()] = value.encode("utf-8")
    return values


def set_xattrs(target: int, values: Mapping[str, bytes], *, replace_meta: bool) -> None:
    """Store ``values``; with ``replace_meta`` drop user metadata not among them first."""
    if replace_meta:
        with contextlib.suppress(OSError):
            for name in os.listxattr(target):
                if name.startswith(META_XATTR_PREFIX) and name not in values:
                    os.removexattr(target, name)
    for name, value in values.items():
        try:
            os.setxattr(target, name, value)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                return  # no user xattrs here: derived ETags, no metadata
            if exc.errno in (errno.E2BIG, errno.ERANGE, errno.ENOSPC):
                raise errors.InvalidArgument("metadata too large to store") from exc
            raise errors.from_oserror(exc) from exc


def open_upload(
    obj: ObjectPath, *, fsync: bool, exclusive: bool = False, segments: Sequence[str] | None = None
) -> Upload:
    """The temporary file of an upload of ``obj`` (into the directory ``segments``, its
    parent by default, created as needed; see :mod:`kubepie.fileserver.uploads`: an existing
    file the user may not write is refused, as ``open(O_TRUNC)`` would, and an ``exclusive``
    upload refuses an existing key)."""
    directory = open_directory(obj, obj.parent if segments is None else segments)
    try:
        return Upload(directory, obj.name, fsync=fsync, exclusive=exclusive)
    except OSError as exc:
        raise errors.from_oserror(exc, obj.key) from exc
    finally:
        os.close(directory)


def commit_upload(
    upload: Upload, xattrs: Mapping[str, bytes] | None, resource: str
) -> os.stat_result:
    """Attach ``xattrs`` (built from :meth:`Upload.stat`), then rename into place."""

    def attach(fd: int) -> None:
        if xattrs:
            set_xattrs(fd, xattrs, replace_meta=False)

    try:
        return upload.commit(attach)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise errors.InvalidArgument(
                "the key names a directory that holds other objects", resource=resource
            ) from exc
        raise errors.from_oserror(exc, resource) from exc


def copy_range(src_fd: int, dst: Upload, offset: int, length: int, md5: Hasher | None) -> None:
    """Copy ``length`` bytes from ``src_fd`` at ``offset``, hashing them into ``md5``.

    With ``md5`` ``None`` the kernel copies (``copy_file_range``: no bytes through Python,
    reflinks where the filesystem can); otherwise the bytes are read, hashed and written.
    """
    try:
        if md5 is None:
            _kernel_copy(src_fd, dst, offset, length)
            return
        pos = offset
        end = offset + length
        while pos < end:
            data = os.pread(src_fd, min(1 << 20, end - pos), pos)
            if not data:
                raise errors.InvalidRange("the source object changed while it was copied")
            md5.update(data)
            dst.write(data)
            pos += len(data)
    except OSError as exc:
        raise errors.from_oserror(exc) from exc


def _kernel_copy(src_fd: int, dst: Upload, offset: int, length: int) -> None:
    end = offset + length
    pos = offset
    while pos < end:
        try:
            n = os.copy_file_range(src_fd, dst.fd, end - pos, pos)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                copy_range(src_fd, dst, pos, end - pos, hashlib.md5(usedforsecurity=False))
                return
            raise
        if n == 0:
            raise errors.InvalidRange("the source object changed while it was copied")
        pos += n
        dst.written += n


def remove_empty_parents(mount: Mount, segments: Sequence[str]) -> None:
    """Remove now-empty directories from ``segments`` up to (not including) the mount root."""
    for depth in range(len(segments), 0, -1):
        try:
            with closing(mount.open_dir(segments[: depth - 1])) as parent:
                os.rmdir(segments[depth - 1], dir_fd=parent)
        except (OSError, FileServerError):
            return
